"""`tonne serve`: the exchange on TCP (msgpack) and WebSocket (JSON), on the embedded store.

    tonne serve [--data DIR] [--host 127.0.0.1] [--tcp-port 7001] [--ws-port 7002]
                [--messages-per-s N] [--frame-bytes-max N] [--open-orders-max N]
                [--out-bytes-max N] [--heartbeat-s S] [--idle-timeout-s S]
                [--reads-in-flight-max N] [--inbox-frames-max N] [--logon-failures-max N]
                [--slow-consumer-linger-s S]
                [--snapshot-every N] [--batch-max N] [--window-ms MS]
                [--journal-writer process|thread] [--archive]
                [--archive-segment-rows N] [--keys-check-s S]
                [--http-port N] [--http-host 127.0.0.1]

On an empty data folder it stores the genesis reference data (the fee schedule, the demo's
series on real projects from data/, and every project), then recovers the core from the
store (both chains checked from genesis, snapshot + journal replay, checked), opens every
account provisioned with `tonne accounts add`, and serves. It prints one JSON line when
ready ({"tcp_port", "ws_port", "seq", "state_hash", "recovery", "compiled": whether the
core runs compiled, README "The compiled core"}), and on SIGINT/SIGTERM
stops accepting, commits, snapshots and exits 0. `--snapshot-every N` snapshots after
every N commands as well as every 300 s (the default N is the journal's, 100 000); `--batch-max` and
`--window-ms` bound each group commit (defaults 2 048 commands, no extra wait). The journal
commits in a writer process (`--journal-writer thread`: in a thread of this one); with
`--archive` (or its older name `--archive-journal`) it moves the journal rows and the
settlement-log records the oldest kept snapshot covers to segment files after each snapshot,
one segment per commit turn (gateway/durability/archive.py). The key
file is looked at every `--keys-check-s` (1 s): keys added can log on, and the sessions of a
revoked key end.

`--http-port N` also serves the operator console, `/metrics` (Prometheus) and `/healthz`
on that port, from this process and event loop (gateway/console/app.py); it binds to
`--http-host`, loopback unless told otherwise. It is off unless asked. An operator token
for it is printed to stderr at start (a new one each start); operator keys work too.

With `--journal nats://HOST:PORT[,...] --stream NAME [--standby]` the journal of record is a
NATS JetStream stream and the folder this node's local copy of it: a node of a replicated
exchange, with a primary and standbys (gateway/replication/; README, "High availability").
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvloop

from gateway.cli.accounts import key_file_lock
from gateway.console.app import Console
from gateway.console.metrics import ServerMetrics
from gateway.durability.journal import (
    BATCH_MAX,
    SNAPSHOT_EVERY,
    WINDOW_S,
    WINDOW_S_MAX,
    Journal,
    JournalFailed,
)
from gateway.durability.recovery import REF_SERIES, RecoveryError, recover, save_genesis
from gateway.durability.store import ARCHIVE_SEGMENT_ROWS, SQLiteStore, StoreError, default_data_dir
from gateway.server.auth import Authenticator, KeyFile, KeyStore, KeyStoreError
from gateway.server.clock import Clock, SystemClock
from gateway.server.gcpolicy import tune_for_serving
from gateway.server.server import Server
from gateway.server.session import Limits
from settlement.build import compiled

log = logging.getLogger("tonne.serve")
KEYS_CHECK_S = 1.0  # how often the key file is looked at for added and revoked keys

# The fee schedule a new exchange starts with (basis points of the notional, rounded down;
# settlement/README.md). Part of the genesis reference data, so replay always agrees.
GENESIS_FEES = {"maker_fee_bps": 5, "taker_fee_bps": 15}


def genesis_listing() -> tuple[list[Any], list[Any]]:
    """(series, projects) a new exchange starts with: the demo's listings on real projects."""
    from gateway.cli.demo import list_series
    from gateway.refdata import load_projects

    projects = load_projects()
    return [s for s, _, _ in list_series(projects)], list(projects.values())


async def open_accounts(server: Server, keys: KeyStore) -> int:
    """Open every provisioned account the core does not know yet; how many were opened."""
    from engine.events import Rejected
    from settlement.commands import OpenAccount

    known = server.ledger.accounts if server.ledger is not None else {}
    new = sorted(set(keys.accounts()) - set(known))
    # applied one after the other at once, so that they share one commit
    answers = await asyncio.gather(
        *[server.operator(OpenAccount(account=a)) for a in new], return_exceptions=True
    )
    opened = 0
    for answer in answers:  # each awaited above: raise the first failure, leave none unread
        if isinstance(answer, BaseException):
            raise answer
        opened += not (len(answer) == 1 and isinstance(answer[0], Rejected))
    return opened


async def list_contracts(server: Server) -> int:
    """List the shipped standardized contracts (gateway/contracts.py) that the exchange does
    not list yet, as operator commands (journaled, each with its rule-version record); how
    many were listed. `running` calls it on a new folder only."""
    from engine.events import Rejected
    from gateway.contracts import CONTRACTS
    from settlement.commands import ListContract

    listed = 0
    for c in CONTRACTS:
        if c.series.id not in server.exchange.books:
            events = await server.operator(ListContract(series=c.series, rule=c.rule))
            assert not any(isinstance(e, Rejected) for e in events), events
            listed += 1
    return listed


async def watch_keys(server: Server, key_file: KeyFile, every_s: float) -> None:
    """Every `every_s`, if the key file changed: reload it, open the accounts of new keys
    (in one commit), then check logons against the new keys and end the sessions of keys
    revoked or re-issued (`Server.replace_keys`), so that a new key never logs on to an
    account not yet open. A file that cannot be read (or is missing) keeps the keys in use
    (logged once, counted as `key_reload_failed`). Runs until cancelled: no error stops it."""
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(every_s)
        try:
            if not await loop.run_in_executor(None, key_file.changed):
                continue
            keys = await loop.run_in_executor(None, key_file.load)
        except (KeyStoreError, OSError) as exc:
            log.error("key file not reloaded, the keys in use stay: %s", exc)
            server.count("key_reload_failed")
            continue
        try:
            await open_accounts(server, keys)
        except Exception as exc:  # a failed server refuses operator commands
            log.error("accounts of new keys not opened: %r", exc)
            server.count("key_reload_failed")
        ended = server.replace_keys(keys)
        log.info("key file reloaded: %d keys, %d sessions ended", len(keys.describe()), ended)


@dataclass(frozen=True)
class JournalSettings:
    """How the server journals: group-commit batch bounds and snapshot cadence."""

    batch_max: int = BATCH_MAX  # commands per transaction, at most
    window_s: float = WINDOW_S  # extra wait for more commands before a commit
    snapshot_every: int = SNAPSHOT_EVERY  # commands between snapshots (also every 300 s)
    writer_process: bool = True  # commit in a writer process (False: a thread of this one)
    archive_segment_rows: int = 0  # archive covered rows in segments of this many (0: off)


@dataclass(frozen=True)
class HttpSettings:
    """Where the operator console listens (`--http-host`, `--http-port`); `token`: the
    operator token to accept (empty: a new random one, printed at start)."""

    host: str = "127.0.0.1"
    port: int = 0
    token: str = ""


def http_host_shown(http: HttpSettings | None) -> str:
    host = "127.0.0.1" if http is None else http.host
    return f"[{host}]" if ":" in host else host


class Running:
    """An exchange open on a data folder: the recovered core, its journal and the server."""

    def __init__(
        self,
        store: SQLiteStore,
        journal: Journal,
        server: Server,
        info: dict[str, Any],
        console: Console | None = None,
    ):
        self.store = store
        self.journal = journal
        self.server = server
        self.info = info
        self.console = console


@contextlib.asynccontextmanager
async def running(
    data_dir: Path,
    *,
    host: str = "127.0.0.1",
    tcp_port: int | None = 7001,
    ws_port: int | None = 7002,
    limits: Limits | None = None,
    journaling: JournalSettings = JournalSettings(),
    keys_check_s: float = KEYS_CHECK_S,
    clock: Clock | None = None,
    http: HttpSettings | None = None,
) -> AsyncIterator[Running]:
    """Genesis (on an empty folder), recovery, journal, accounts opened, server started;
    on exit: server closed, journal committed and snapshotted, store closed. Raises
    `RecoveryError`/`StoreError` when the folder cannot be trusted."""
    clock = clock or SystemClock()  # one clock for recovery, journal and server
    data_dir.mkdir(parents=True, exist_ok=True)
    store = SQLiteStore(data_dir)
    try:
        if not store.head().seq and not store.reference(REF_SERIES):
            series, projects = genesis_listing()
            save_genesis(store, series=series, projects=projects, config=dict(GENESIS_FEES))
        got = recover(store, clock=clock)
        key_file = KeyFile(data_dir)
        with key_file_lock(data_dir):  # not while `tonne accounts` makes the master key
            keys = key_file.load(create=True)  # a bad key file: refuse before starting
    except BaseException:
        store.close()
        raise
    journal = Journal(
        store,
        seq=got.seq,
        log_seq=got.log_seq,
        log_head=got.log_head,
        core=got.core,
        batch_max=journaling.batch_max,
        window_s=journaling.window_s,
        snapshot_every=journaling.snapshot_every,
        writer_process=journaling.writer_process,
        archive_segment_rows=journaling.archive_segment_rows,
        clock=clock,
    )
    journal.start()
    limits = limits or Limits()
    server: Server | None = None
    watcher: asyncio.Task[None] | None = None
    console: Console | None = None
    try:
        server = Server(
            got.core,
            journal,
            Authenticator(keys, skew_s=limits.logon_skew_s),
            limits=limits,
            clock=clock,
            metrics=ServerMetrics() if http is not None else None,
        )
        if not got.seq:  # a new exchange: its first commands list the shipped contracts
            await list_contracts(server)
        opened = await open_accounts(server, keys)
        await server.start(host, tcp_port, ws_port)
        watcher = asyncio.create_task(watch_keys(server, key_file, keys_check_s))
        info = {
            "tcp_port": server.tcp_port if tcp_port is not None else None,
            "ws_port": server.ws_port if ws_port is not None else None,
            "seq": journal.seq,
            "state_hash": got.core.state_hash(),
            "accounts_opened": opened,
            "recovery": got.summary(),
            "compiled": compiled(),
        }
        if http is not None:
            assert server.metrics is not None
            console = Console(
                server, journal, data_dir, info, server.metrics, token=http.token or None
            )
            info["http_port"] = await console.start(http.host, http.port)
        yield Running(store, journal, server, info, console)
    finally:
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await watcher
        try:
            if console is not None:
                await console.close()
            if server is not None:
                await server.close()
            # never snapshot a core that failed: its state may be half-applied (a broken
            # invariant), and a snapshot would make it the next start's state
            healthy = server is None or server.failed is None
            if healthy and journal.failed is None and journal.seq > journal.snapshot_seq:
                journal.snapshot_now()
            await journal.close()
        finally:
            store.close()


async def serve(
    data_dir: Path,
    *,
    host: str = "127.0.0.1",
    tcp_port: int = 7001,
    ws_port: int = 7002,
    limits: Limits | None = None,
    ready: Callable[[dict[str, Any]], None] | None = None,
    stop: asyncio.Event | None = None,
    journaling: JournalSettings = JournalSettings(),
    tune_gc: bool = False,
    keys_check_s: float = KEYS_CHECK_S,
    clock: Clock | None = None,
    http: HttpSettings | None = None,
) -> int:
    """Serve until `stop` is set (or SIGINT/SIGTERM); 0 on a clean stop. `tune_gc`: this
    process only serves, so use the serving GC policy (gateway/server/gcpolicy.py) once started."""
    stop = stop or asyncio.Event()
    try:
        async with running(
            data_dir,
            host=host,
            tcp_port=tcp_port,
            ws_port=ws_port,
            limits=limits,
            journaling=journaling,
            keys_check_s=keys_check_s,
            clock=clock,
            http=http,
        ) as ex:
            if tune_gc:
                tune_for_serving()
            if ex.console is not None:
                print(
                    f"tonne serve: operator console on http://{http_host_shown(http)}:"
                    f"{ex.console.port}/ (user token, password {ex.console.token}; or an "
                    "operator key's id and secret)",
                    file=sys.stderr,
                    flush=True,
                )
            if ready is not None:
                ready(ex.info)
            else:
                print(json.dumps(ex.info), flush=True)
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                try:
                    loop.add_signal_handler(sig, stop.set)
                except (RuntimeError, ValueError):  # not the main thread
                    break
            # until told to stop, or until the core or journal fails: a failed server stops
            # serving (its listeners close on the way out) and the process exits 1
            stopping = asyncio.ensure_future(stop.wait())
            failing = asyncio.ensure_future(ex.server.failure.wait())
            await asyncio.wait((stopping, failing), return_when=asyncio.FIRST_COMPLETED)
            for waiter in (stopping, failing):
                waiter.cancel()
            failed = ex.server.failed
            if failed is not None:
                print(
                    f"tonne serve: stopping, the core or journal failed: {failed!r}",
                    file=sys.stderr,
                )
        if failed is None and ex.journal.failed is not None:  # the closing commit or snapshot
            failed = ex.journal.failed
            print(f"tonne serve: the journal failed while stopping: {failed}", file=sys.stderr)
    except (RecoveryError, StoreError) as exc:
        print(f"tonne serve: refusing to start: {exc}", file=sys.stderr)
        return 1
    except JournalFailed as exc:
        print(f"tonne serve: the journal failed while stopping: {exc}", file=sys.stderr)
        return 1
    return 0 if failed is None else 1


def limits_arguments(parser: argparse.ArgumentParser) -> None:
    d = Limits()
    parser.add_argument("--frame-bytes-max", type=int, default=d.frame_bytes_max)
    parser.add_argument("--messages-per-s", type=int, default=d.messages_per_s)
    parser.add_argument("--burst-messages", type=int, default=d.burst_messages)
    parser.add_argument("--open-orders-max", type=int, default=d.open_orders_max)
    parser.add_argument("--out-bytes-max", type=int, default=d.out_bytes_max)
    parser.add_argument("--heartbeat-s", type=float, default=d.heartbeat_s)
    parser.add_argument("--idle-timeout-s", type=float, default=d.idle_timeout_s)
    parser.add_argument("--logon-skew-s", type=float, default=d.logon_skew_s)
    parser.add_argument("--logon-timeout-s", type=float, default=d.logon_timeout_s)
    parser.add_argument("--sessions-max", type=int, default=d.sessions_max)
    parser.add_argument("--logon-failures-max", type=int, default=d.logon_failures_max)
    parser.add_argument("--slow-consumer-linger-s", type=float, default=d.slow_consumer_linger_s)
    parser.add_argument("--inbox-frames-max", type=int, default=d.inbox_frames_max)
    parser.add_argument("--reads-in-flight-max", type=int, default=d.reads_in_flight_max)


def limits_from(args: argparse.Namespace) -> Limits:
    return Limits(
        frame_bytes_max=args.frame_bytes_max,
        messages_per_s=args.messages_per_s,
        burst_messages=args.burst_messages,
        open_orders_max=args.open_orders_max,
        out_bytes_max=args.out_bytes_max,
        heartbeat_s=args.heartbeat_s,
        idle_timeout_s=args.idle_timeout_s,
        logon_skew_s=args.logon_skew_s,
        logon_timeout_s=args.logon_timeout_s,
        sessions_max=args.sessions_max,
        logon_failures_max=args.logon_failures_max,
        slow_consumer_linger_s=args.slow_consumer_linger_s,
        inbox_frames_max=args.inbox_frames_max,
        reads_in_flight_max=args.reads_in_flight_max,
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="tonne serve",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--data", default=default_data_dir())
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--tcp-port", type=int, default=7001)
    parser.add_argument("--ws-port", type=int, default=7002)
    parser.add_argument("--snapshot-every", type=int, default=SNAPSHOT_EVERY, metavar="N")
    parser.add_argument(
        "--batch-max",
        type=int,
        default=BATCH_MAX,
        metavar="N",
        help="commands per group commit, at most",
    )
    parser.add_argument(
        "--window-ms",
        type=float,
        default=WINDOW_S * 1000,
        metavar="MS",
        help=f"wait this long for more commands before a commit (<= {WINDOW_S_MAX * 1000:.0f})",
    )
    parser.add_argument(
        "--keys-check-s",
        type=float,
        default=KEYS_CHECK_S,
        metavar="S",
        help="look at the key file this often: new keys can log on, revoked keys' sessions end",
    )
    parser.add_argument(
        "--journal-writer",
        choices=["process", "thread"],
        default="process",
        help="commit in a writer process (default: SQLite work never holds this process's "
        "GIL) or in a thread of this process",
    )
    parser.add_argument(
        "--archive",
        "--archive-journal",
        dest="archive",
        action="store_true",
        help="after each snapshot, move the journal rows and settlement-log records the "
        "oldest kept snapshot covers to archive/journal-*.seg and archive/log-*.seg (the "
        "live db then stops growing); --archive-journal is its older name",
    )
    parser.add_argument(
        "--archive-segment-rows",
        type=int,
        default=ARCHIVE_SEGMENT_ROWS,
        metavar="N",
        help="journal rows or log records per archived segment",
    )
    parser.add_argument(
        "--http-port",
        type=int,
        metavar="N",
        help="serve the operator console, /metrics and /healthz on this port (0: any free)",
    )
    parser.add_argument(
        "--http-host",
        default="127.0.0.1",
        help="the console's address (loopback unless told otherwise)",
    )
    limits_arguments(parser)
    replication_arguments(parser)
    args = parser.parse_args(argv)
    if args.http_port is not None and not 0 <= args.http_port <= 65535:
        parser.error("--http-port must be within [0, 65535]")
    if args.archive_segment_rows < 1:
        parser.error("--archive-segment-rows must be at least 1")
    if args.batch_max < 1:
        parser.error("--batch-max must be at least 1")
    if args.keys_check_s <= 0:
        parser.error("--keys-check-s must be positive")
    if args.reads_in_flight_max < 1 or args.inbox_frames_max < 1:
        parser.error("--reads-in-flight-max and --inbox-frames-max must be at least 1")
    if args.logon_failures_max < 1:
        parser.error("--logon-failures-max must be at least 1")
    if args.slow_consumer_linger_s < 0:
        parser.error("--slow-consumer-linger-s must be 0 or more")
    if not 0 <= args.window_ms <= WINDOW_S_MAX * 1000:
        parser.error(f"--window-ms must be within [0, {WINDOW_S_MAX * 1000:.0f}]")
    journaling = JournalSettings(
        batch_max=args.batch_max,
        window_s=args.window_ms / 1000,
        snapshot_every=args.snapshot_every,
        writer_process=args.journal_writer == "process",
        archive_segment_rows=args.archive_segment_rows if args.archive else 0,
    )
    if args.journal != "sqlite":
        return serve_replicated(parser, args, journaling)
    return uvloop.run(
        serve(
            Path(args.data),
            host=args.host,
            tcp_port=args.tcp_port,
            ws_port=args.ws_port,
            limits=limits_from(args),
            journaling=journaling,
            tune_gc=True,
            keys_check_s=args.keys_check_s,
            clock=SystemClock(),  # the real time: GTD expiry timers, logon skew, stamps
            http=None if args.http_port is None else HttpSettings(args.http_host, args.http_port),
        )
    )


def replication_arguments(parser: argparse.ArgumentParser) -> None:
    from gateway.replication.node import LEASE_TTL_S
    from gateway.replication.stream import DUPLICATE_WINDOW_S
    from gateway.replication.writer import PUBLISH_DEADLINE_S

    parser.add_argument(
        "--journal",
        default="sqlite",
        metavar="sqlite|nats://HOST:PORT[,...]",
        help="where the journal of record is: the data folder's SQLite store (default), or "
        "a NATS JetStream stream (the folder is then this node's local copy)",
    )
    parser.add_argument("--stream", default="", metavar="NAME", help="the JetStream stream")
    parser.add_argument(
        "--standby",
        action="store_true",
        help="follow the stream and take over when the primary's lease expires",
    )
    parser.add_argument("--node-name", default="", help="this node's name (host:tcp-port)")
    parser.add_argument(
        "--replicas",
        type=int,
        default=None,
        help="copies of the stream (1, 3 or 5; default 1 when a primary creates it); a node "
        "given it refuses a stream that has another number",
    )
    parser.add_argument(
        "--lease-ttl-s",
        type=float,
        default=None,
        help=f"the lease's TTL (default {LEASE_TTL_S:g} when a primary creates the lease "
        "bucket); a node given it refuses a bucket that has another",
    )
    parser.add_argument(
        "--publish-deadline-s",
        type=float,
        default=PUBLISH_DEADLINE_S,
        help="retry a publish this long before the journal fails and the node stops "
        f"(under half the stream's {DUPLICATE_WINDOW_S:g} s de-duplication window)",
    )


def node_name(host: str, tcp_port: int) -> str:
    """A node's default name: where it listens, or (on port 0) its host and process."""
    import os
    import socket

    return f"{host}:{tcp_port}" if tcp_port else f"{socket.gethostname()}-{os.getpid()}"


def serve_replicated(
    parser: argparse.ArgumentParser, args: argparse.Namespace, journaling: JournalSettings
) -> int:
    """`tonne serve --journal nats://...`: a node of a replicated exchange
    (gateway/replication/node.py)."""
    from gateway.replication.node import ReplicationSettings
    from gateway.replication.run import serve_node
    from gateway.replication.stream import DUPLICATE_WINDOW_S, parse_servers, stream_names
    from gateway.replication.writer import PUBLISH_DEADLINE_MAX_S

    try:
        servers = parse_servers(args.journal)
        stream_names(args.stream)
    except ValueError as exc:
        parser.error(str(exc))
    if args.replicas not in (None, 1, 3, 5):
        parser.error("--replicas must be 1, 3 or 5")
    if (args.lease_ttl_s is not None and args.lease_ttl_s <= 0) or args.publish_deadline_s <= 0:
        parser.error("--lease-ttl-s and --publish-deadline-s must be positive")
    if args.publish_deadline_s >= PUBLISH_DEADLINE_MAX_S:
        parser.error(
            f"--publish-deadline-s must be under {PUBLISH_DEADLINE_MAX_S:g} (half the "
            f"stream's {DUPLICATE_WINDOW_S:g} s de-duplication window)"
        )
    if args.archive:
        parser.error("--archive is for the SQLite journal; the stream keeps the journal")
    if args.http_port is not None:
        parser.error("--http-port (the operator console) is for the SQLite journal, not yet a node")
    settings = ReplicationSettings(
        servers=servers,
        stream=args.stream,
        standby=args.standby,
        node=args.node_name or node_name(args.host, args.tcp_port),
        replicas=args.replicas,
        lease_ttl_s=args.lease_ttl_s,
        publish_deadline_s=args.publish_deadline_s,
    )
    return uvloop.run(
        serve_node(
            Path(args.data),
            settings,
            host=args.host,
            tcp_port=args.tcp_port,
            ws_port=args.ws_port,
            limits=limits_from(args),
            journaling=journaling,
            keys_check_s=args.keys_check_s,
            clock=SystemClock(),  # the real time, read here at the command line
        )
    )
