"""Running a node until it stops: `serve_node`, what `tonne serve --journal` calls.

A node (node.py) opens, says it is ready (`{"role": "standby" | "primary-elect", ...}`),
follows until it holds the lease, catches up and promotes, then serves as the primary
(`{"role": "primary", "tcp_port", ...}`): the journal on the stream, the server, the key
watcher, until SIGINT/SIGTERM (exit 0, the lease released so that a standby takes over at
once) or a failure (exit 1; EXIT_UNEXPECTED, 5, for an error nothing here expected, its
traceback logged). A deposed primary, or one that lost its lease, never returns:
it exits at once (node.py, `exit_now`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nats.errors

from gateway.durability.recovery import RecoveryError
from gateway.durability.store import StoreError
from gateway.replication.node import EXIT_UNEXPECTED, Node, ReplicationSettings
from gateway.replication.stream import ReplicationError
from gateway.replication.writer import Deposed, Unavailable
from gateway.server.clock import Clock

log = logging.getLogger("tonne.replication")


async def serve_node(
    data_dir: Path,
    settings: ReplicationSettings,
    *,
    host: str,
    tcp_port: int,
    ws_port: int,
    limits: Any,
    journaling: Any,
    keys_check_s: float,
    clock: Clock,
    ready: Callable[[dict[str, Any]], None] | None = None,
    stop: asyncio.Event | None = None,
) -> int:
    """Run one node until stopped (0), or until it fails (1); a deposed primary or one that
    lost its lease does not return (`exit_now`)."""
    stop = stop or asyncio.Event()
    say = ready or (lambda info: print(json.dumps(info), flush=True))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
    node = Node(data_dir, settings, clock, snapshot_every=journaling.snapshot_every)
    try:
        await node.open()
        assert node.follower is not None
        say(
            {
                "role": "standby" if settings.standby else "primary-elect",
                "node": node.name,
                "seq": node.follower.seq,
                "stream_seq": node.follower.stream_seq,
            }
        )
        if not await node.follow(stop):
            return 0 if not node.failed else _failed(node.failed)
        stream_seq = await node.catch_up_and_promote()
        return await _serve(
            node,
            stream_seq,
            host,
            tcp_port,
            ws_port,
            limits,
            journaling,
            keys_check_s,
            clock,
            say,
            stop,
        )
    except (RecoveryError, StoreError, ReplicationError, Unavailable) as exc:
        return _failed(f"refusing to serve: {exc}")
    except Deposed as exc:
        return _failed(f"deposed while starting: {exc}")
    except (nats.errors.Error, TimeoutError, OSError) as exc:  # not answered past its limits
        return _failed(f"refusing to serve, NATS failed: {exc!r}")
    except Exception as exc:  # nobody would serve after a traceback: say so, stop, be restarted
        log.exception("unexpected error")
        print(f"tonne serve: unexpected error, stopping: {exc!r}", file=sys.stderr)
        return EXIT_UNEXPECTED
    finally:
        await node.close(release=True)  # if still held: a standby need not wait for the TTL


def _failed(why: str) -> int:
    print(f"tonne serve: {why}", file=sys.stderr)
    return 1


async def _serve(
    node: Node,
    stream_seq: int,
    host: str,
    tcp_port: int,
    ws_port: int,
    limits: Any,
    journaling: Any,
    keys_check_s: float,
    clock: Clock,
    say: Callable[[dict[str, Any]], None],
    stop: asyncio.Event,
) -> int:
    from gateway.cli.accounts import key_file_lock
    from gateway.cli.serve import list_contracts, open_accounts, watch_keys
    from gateway.server.auth import Authenticator, KeyFile
    from gateway.server.server import Server

    assert node.follower is not None
    core = node.follower.core
    key_file = KeyFile(node.data_dir)
    with key_file_lock(node.data_dir):
        keys = key_file.load(create=True)
    journal = node.journal(stream_seq, journaling)
    journal.start()
    server = Server(
        core, journal, Authenticator(keys, skew_s=limits.logon_skew_s), limits=limits, clock=clock
    )
    watcher: asyncio.Task[None] | None = None
    try:
        if not node.follower.seq:
            await list_contracts(server)
        await open_accounts(server, keys)
        await server.start(host, tcp_port, ws_port)
        node.serving(f"{host}:{server.tcp_port}")
        watcher = asyncio.create_task(watch_keys(server, key_file, keys_check_s))
        say(
            {
                "role": "primary",
                "node": node.name,
                "tcp_port": server.tcp_port,
                "ws_port": server.ws_port,
                "seq": journal.seq,
                "stream_seq": stream_seq,
                "term": node.lease.term if node.lease else 0,
                "state_hash": core.state_hash(),
            }
        )
        waits = [asyncio.ensure_future(e.wait()) for e in (stop, server.failure, node.failure)]
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for w in waits:
            w.cancel()
    finally:
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await watcher
        await server.close()
        healthy = server.failed is None and journal.failed is None and not node.failed
        if healthy and journal.seq > journal.snapshot_seq:
            journal.snapshot_now()
        with contextlib.suppress(Exception):
            await journal.close()
    why = server.failed or journal.failed or node.failed
    if why:
        node.fail(str(why))
        return _failed(f"stopping, the core or journal failed: {why!r}")
    return 0
