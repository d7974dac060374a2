"""The operator console over HTTP: aiohttp on the server's own event loop.

    tonne serve --http-port 7003 [--http-host 127.0.0.1]

serves, from the same process and loop as the exchange:

- `GET /healthz` — `ok` (no credential: for a load balancer or a process supervisor);
- `GET /` — the console, one page (static/console.html, .js, .css: no build step, no CDN);
- `GET /metrics` — Prometheus text format (gateway/console/metrics.py);
- `GET /api/health` — sessions, commands/s, commit latency and batch size, writer lag, last
  snapshot, recovery at start, state hash, log head;
- `GET /api/log` — a page of the settlement log: `before=SEQ` (newest first) or `after=SEQ`
  (oldest first; with `wait=S` it waits up to S seconds for a record to come), `limit`,
  `kind` (comma-separated), `account`, `series`, `serial` (gateway/console/records.py);
- `GET /api/market` — top of book and status of every series, recent trades, prices to chart;
- `GET /api/registry` — registry events (labels, suspensions, reinstatements, reversals,
  contract rules) and the halted series;
- `GET /api/certificate?id=RC-…` — the records a certificate names, checked against the log's
  hash chain (settlement/certificate_proof.py).

Every path but `/healthz` needs an operator credential, sent as HTTP Basic: the user is the
id of a key with the `operator` permission (`tonne accounts add --permissions operator`) and
the password its secret, or the user `token` and the token `tonne serve` prints when it
starts (`Authorization: Bearer TOKEN` works too, for scripts). Anything else gets 401 and
nothing more, whatever the path. A request with a credential and a bad query (an unknown
parameter, a number that is not one or out of range, a query longer than
`QUERY_BYTES_MAX`) gets 400 naming the parameter. Basic sends the secret in the clear: on
loopback that stays on the machine; anywhere else, put TLS in front (README).

The console reads the settlement log from a read-only store of its own in one worker thread,
so SQLite never blocks the loop; it follows the log as batches are released (the server's
`on_release` hook), keeping bounded recent trades, registry events and a certificate index.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hmac
import logging
import secrets
from array import array
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import msgspec
from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from gateway.console.metrics import ServerMetrics, TonneCollector, percentiles, session_counts
from gateway.console.records import (
    KINDS,
    PAGE_MAX,
    REGISTRY_KINDS,
    SERIAL_FILTER_MAX,
    LogFilter,
    newest_first,
    oldest_first,
    records_in,
    view,
)
from gateway.server.clock import NS_PER_S
from settlement.certificate_proof import ProofError
from settlement.log import LogRecord, decode_record

log = logging.getLogger("tonne.console")

QUERY_BYTES_MAX = 2048  # a query string longer than this: 400
WAIT_S_MAX = 25.0  # a long poll waits at most this long
TRADES_KEPT = 200  # recent trades kept, per series and in all
REGISTRY_KEPT = 200  # recent registry events kept
CERTIFICATES_INDEXED_MAX = 4_000_000  # certificates the console can look up by id (64 MB)
FOLLOW_RECORDS_MAX = 50_000  # records the follower reads per turn (then it goes on)
RATE_SAMPLES = 10  # seconds of commands/s kept
STATE_HASH_EVERY_S = 2.0  # the state hash is recomputed at most this often
TOKEN_BYTES = 24
FOLLOW_RETRY_S = 1.0
RATE_EVERY_S = 1.0
SHUTDOWN_S = 1.0  # closing: connections still open after this are dropped
SEGMENTS_CACHED = 4  # archived log segments the console's store keeps read (~7 MB each)
REALM = 'Basic realm="tonne operator console", charset="UTF-8"'
STATIC = {
    "/": ("console.html", "text/html"),
    "/console.js": ("console.js", "text/javascript"),
    "/console.css": ("console.css", "text/css"),
}


NOTED_KINDS = frozenset({"fill", "contract_fill", "retirement", "fill_retirement"}) | REGISTRY_KINDS


@dataclass
class Noted:
    """What one turn of the follower read: (seq, ts, kind, body, record) of the records
    it keeps something of, and how far it read."""

    last_seq: int
    head: int
    items: list[tuple[int, int, str, Any, LogRecord]] = field(default_factory=list)


def cert_number(cert_id: str) -> int:
    """n of `RC-n` (0: not a certificate id)."""
    digits = cert_id[3:]
    if cert_id[:3] != "RC-" or not (digits.isascii() and digits.isdigit()) or len(digits) > 18:
        return 0
    return int(digits)


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


class BadQuery(ValueError):
    """A query the console does not answer: 400, naming the parameter."""


class Query:
    """A request's query parameters, each taken once and checked."""

    def __init__(self, request: web.Request, allowed: frozenset[str]) -> None:
        if len(request.query_string) > QUERY_BYTES_MAX:
            raise BadQuery(f"the query is longer than {QUERY_BYTES_MAX} bytes")
        self.q = request.query
        for name in self.q:
            if name not in allowed:
                raise BadQuery(f"unknown parameter {name!r}")
            if len(self.q.getall(name)) > 1:
                raise BadQuery(f"parameter {name!r} given twice")

    def number(self, name: str, low: int, high: int, default: int | None = None) -> int | None:
        raw = self.q.get(name)
        if raw is None or raw == "":
            return default
        if not (raw.isascii() and raw.isdigit()) or len(raw) > 19:
            raise BadQuery(f"{name} must be a whole number")
        value = int(raw)
        if not low <= value <= high:
            raise BadQuery(f"{name} must be within [{low}, {high}]")
        return value

    def text(self, name: str, max_chars: int) -> str:
        raw = self.q.get(name, "")
        if len(raw) > max_chars:
            raise BadQuery(f"{name} is longer than {max_chars} characters")
        if not raw.isprintable():
            raise BadQuery(f"{name} has characters that cannot be printed")
        return raw


def _static(name: str) -> bytes:
    return resources.files("gateway.console").joinpath("static", name).read_bytes()


class Console:
    """The HTTP side of one running server (gateway/cli/serve.py `Running`)."""

    def __init__(
        self,
        server: Any,
        journal: Any,
        data_dir: Path,
        info: dict[str, Any],
        metrics: ServerMetrics,
        *,
        token: str | None = None,
        open_store: Callable[[], Any] | None = None,
    ) -> None:
        self.server = server
        self.journal = journal
        self.data_dir = data_dir
        self.info = info
        self.metrics = metrics
        self.token = token or new_token()
        self._open_store = open_store or self._readonly_store
        self._now_ns: Callable[[], int] = server.clock.now_ns
        self._monotonic_ns: Callable[[], int] = server.clock.monotonic_ns
        self._started_ns = self._monotonic_ns()
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(TonneCollector(server, journal, metrics))
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="console-store")
        self._store: Any = None
        self._released = asyncio.Event()  # set when batches are released (new records)
        self._followed = asyncio.Event()  # set (then replaced) when the follower read more
        self.followed_seq = 0
        self.trades: deque[tuple[int, int, Any]] = deque(maxlen=TRADES_KEPT)  # (seq, ts, fill)
        self.prices: dict[str, deque[tuple[int, int]]] = {}
        self.registry_events: deque[LogRecord] = deque(maxlen=REGISTRY_KEPT)
        # certificate RC-n's records lie in seqs first[n-1]..last[n-1]: certificates are
        # numbered in log order, so two arrays index them all (16 bytes a certificate)
        self.cert_first = array("q")
        self.cert_last = array("q")
        self._closing = False
        self._timers: dict[str, Any] = {}  # what each armed timer is for -> the timer
        self._rates: deque[tuple[int, int]] = deque(maxlen=RATE_SAMPLES + 1)
        self._state_hash: tuple[int, str] = (-(1 << 62), "")
        self._tasks: list[asyncio.Task[None]] = []
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.pages = {path: (_static(name), kind) for path, (name, kind) in STATIC.items()}
        server.on_release.append(self._on_release)

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        app = web.Application(middlewares=[self._guard], client_max_size=1024)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/metrics", self.prometheus)
        app.router.add_get("/api/health", self.health)
        app.router.add_get("/api/log", self.log)
        app.router.add_get("/api/market", self.market)
        app.router.add_get("/api/registry", self.registry_view)
        app.router.add_get("/api/certificate", self.certificate)
        app.router.add_get("/api/certificate/proof", self.certificate_proof)
        for path in self.pages:
            app.router.add_get(path, self.page)
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_S
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        self._tasks = [asyncio.ensure_future(self._follow())]
        self._sample_rate()
        return self.port

    async def close(self) -> None:
        """Stop at once: long polls answer now (so that closing the HTTP side waits for
        no one), then the follower, the listener and the store's thread. Twice is once."""
        if self._closing:
            return
        self._closing = True
        self._followed.set()
        for timer in self._timers.values():
            timer.cancel()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._runner is not None:
            await self._runner.cleanup()
        if self._on_release in self.server.on_release:
            self.server.on_release.remove(self._on_release)
        await self._in_thread(self._close_store)
        self._pool.shutdown(wait=True)

    # -- the store, in its own thread --------------------------------------------------------

    def _readonly_store(self) -> Any:
        from gateway.durability.store import SQLiteStore

        return SQLiteStore(self.data_dir, readonly=True, log_segments_cached=SEGMENTS_CACHED)

    def _store_now(self) -> Any:
        if self._store is None:
            self._store = self._open_store()
        return self._store

    def _close_store(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    async def _in_thread(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    # -- following the log --------------------------------------------------------------------

    def _on_release(self, _batches: list[Any]) -> None:
        self._released.set()

    async def _follow(self) -> None:
        """Read what the log gained since the last turn: trades, registry events and
        certificates go to bounded memory; then wake the long polls. A failure is logged and
        the follower starts over after a pause (the console stays up, its views lag)."""
        while True:
            try:
                await self._follow_log()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("the console's log follower failed; retrying")
                retry = asyncio.Event()
                self._timers["retry"] = self.server.clock.call_later(FOLLOW_RETRY_S, retry.set)
                await retry.wait()

    async def _follow_log(self) -> None:
        while True:
            self._released.clear()  # before the read: a release during it wakes the next
            noted = await self._in_thread(self._read_new, self.followed_seq)
            for seq, ts, kind, body, record in noted.items:
                self._note(seq, ts, kind, body, record)
            self.followed_seq = noted.last_seq
            woken, self._followed = self._followed, asyncio.Event()
            woken.set()
            if noted.last_seq < noted.head:
                continue  # more to read now
            await self._released.wait()

    def _read_new(self, after: int) -> Noted:
        """In the store's thread: the records after `after` that the console keeps
        something of (trades, registry events, certificates), decoded no further."""
        store = self._store_now()
        head = store.head().log_seq
        out = Noted(last_seq=after, head=head)
        through = min(head, after + FOLLOW_RECORDS_MAX)
        for row in store.records(after, through):
            record = decode_record(row.record)
            out.last_seq = record.seq
            if record.kind in NOTED_KINDS:
                out.items.append((record.seq, record.ts, record.kind, record.movement(), record))
        return out

    def _note(self, seq: int, ts: int, kind: str, body: Any, record: LogRecord) -> None:
        if kind in ("fill", "contract_fill"):
            self.trades.append((seq, ts, body))
            prices = self.prices.get(body.series)
            if prices is None:
                prices = self.prices[body.series] = deque(maxlen=TRADES_KEPT)
            prices.append((ts, body.price))
        elif kind in REGISTRY_KINDS:
            self.registry_events.append(record)
        number = cert_number(getattr(body, "cert_id", ""))
        if number:
            first, last = self.cert_first, self.cert_last
            if number <= len(first):
                last[number - 1] = seq
            elif number <= CERTIFICATES_INDEXED_MAX:
                while len(first) < number - 1:  # never in a log the core wrote
                    first.append(0)
                    last.append(0)
                first.append(seq)
                last.append(seq)

    def certificate_span(self, cert_id: str) -> tuple[int, int] | None:
        """The first and last seq of certificate `cert_id`'s records (None: not seen)."""
        number = cert_number(cert_id)
        if not 0 < number <= len(self.cert_first) or not self.cert_first[number - 1]:
            return None
        return self.cert_first[number - 1], self.cert_last[number - 1]

    def _sample_rate(self) -> None:
        """Commands handled so far, once a second (on the server's clock): commands/s."""
        self._rates.append((self._monotonic_ns(), sum(self.metrics.commands.values())))
        if not self._closing:
            self._timers["rate"] = self.server.clock.call_later(RATE_EVERY_S, self._sample_rate)

    # -- the guard -------------------------------------------------------------------------

    @web.middleware
    async def _guard(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.path == "/healthz":
            return await handler(request)
        if not self.authorized(request.headers.get("Authorization", "")):
            return web.Response(
                status=401, text="an operator credential is needed\n",
                headers={"WWW-Authenticate": REALM},
            )  # fmt: skip
        try:
            return await handler(request)
        except BadQuery as exc:
            return web.json_response({"error": str(exc)}, status=400)

    def authorized(self, header: str) -> bool:
        """An operator key's id and secret (Basic), or the start token (Basic user `token`,
        or Bearer). Compared in constant time; a revoked key or one without the `operator`
        permission is refused like an unknown one."""
        scheme, _, value = header.partition(" ")
        scheme = scheme.lower()
        if scheme == "bearer":
            return hmac.compare_digest(value.strip().encode(), self.token.encode())
        if scheme != "basic" or len(value) > 1024:
            return False
        try:
            user, sep, password = (
                base64.b64decode(value.strip(), validate=True).decode().partition(":")
            )
        except (binascii.Error, UnicodeDecodeError):
            return False
        if not sep:
            return False
        if user == "token":
            return hmac.compare_digest(password.encode(), self.token.encode())
        key = self.server.auth.keys.get(user)
        if key is None or "operator" not in key.permissions:
            return False
        return bool(key.secret_is(password))

    # -- the endpoints ---------------------------------------------------------------------

    async def healthz(self, request: web.Request) -> web.Response:
        failed = self.server.failed is not None or self.journal.failed is not None
        return web.Response(status=503 if failed else 200, text="failed\n" if failed else "ok\n")

    async def page(self, request: web.Request) -> web.Response:
        Query(request, frozenset())
        body, kind = self.pages[request.path]
        return web.Response(body=body, content_type=kind, headers={"Cache-Control": "no-store"})

    async def prometheus(self, request: web.Request) -> web.Response:
        Query(request, frozenset())
        return web.Response(
            body=generate_latest(self.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    async def health(self, request: web.Request) -> web.Response:
        Query(request, frozenset())
        return self._json(await self.health_view())

    async def health_view(self) -> dict[str, Any]:
        server, journal, m = self.server, self.journal, self.metrics
        store_facts = await self._in_thread(self._store_facts)
        recent = list(m.recent_commits)
        lat = percentiles([x for x, _ in recent], (50, 90, 99, 100))
        size = percentiles([float(n) for _, n in recent], (50, 99, 100))
        sessions = session_counts(server)
        now = self._monotonic_ns()
        if now - self._state_hash[0] >= STATE_HASH_EVERY_S * NS_PER_S:
            self._state_hash = (now, server.core.state_hash())
        snap = store_facts["snapshot"]
        if snap is not None:
            snap["age_s"] = round(max(0, self._now_ns() - snap.pop("ts")) / NS_PER_S, 1)
        return {
            "sessions": {
                **sessions,
                "logged_on": sum(1 for s in server.sessions if s.logged_on),
            },
            "commands_per_s": self._rate(),
            "commands": sum(m.commands.values()),
            "commit": {
                "recent": len(recent),
                "latency_ms": {
                    k: round(v * 1000, 3)
                    for k, v in zip(("p50", "p90", "p99", "max"), lat, strict=True)
                },
                "batch_commands": {
                    k: int(v) for k, v in zip(("p50", "p99", "max"), size, strict=True)
                },
                "commits": getattr(journal, "commits", 0),
            },
            "writer": {
                "kind": "process" if getattr(journal, "writer_process", False) else "thread",
                "pid": getattr(journal, "writer_pid", None),
                "lag_commands": getattr(journal, "seq", 0) - getattr(journal, "durable_seq", 0),
                "failed": repr(journal.failed) if journal.failed is not None else None,
            },
            "journal": {
                "seq": getattr(journal, "seq", 0),
                "durable_seq": getattr(journal, "durable_seq", 0),
            },
            "snapshot": snap,
            "recovery": self.info.get("recovery", ""),
            "state_hash": self._state_hash[1],
            "log_head": store_facts["log_head"],
            "uptime_s": round((now - self._started_ns) / NS_PER_S, 1),
            "failed": repr(server.failed) if server.failed is not None else None,
        }

    def _store_facts(self) -> dict[str, Any]:
        store = self._store_now()
        head = store.head()
        snaps = store.snapshots()
        snap = None
        if snaps:
            last = max(snaps, key=lambda s: s.seq)
            snap = {"seq": last.seq, "state_hash": last.state_hash, "ts": last.ts}
        return {"log_head": {"seq": head.log_seq, "hash": head.log_head}, "snapshot": snap}

    def _rate(self) -> float:
        if len(self._rates) < 2:
            return 0.0
        (t0, n0), (t1, n1) = self._rates[0], self._rates[-1]
        return round((n1 - n0) / max(t1 - t0, 1) * NS_PER_S, 1)

    async def log(self, request: web.Request) -> web.Response:
        q = Query(
            request,
            frozenset({"before", "after", "limit", "kind", "account", "series", "serial", "wait"}),
        )
        before = q.number("before", 1, 1 << 62)
        after = q.number("after", 0, 1 << 62)
        if before is not None and after is not None:
            raise BadQuery("before and after: one or the other")
        limit = q.number("limit", 1, PAGE_MAX, 50) or 50
        wait_s = q.number("wait", 0, int(WAIT_S_MAX), 0) or 0
        if wait_s and after is None:
            raise BadQuery("wait goes with after")
        kinds = frozenset(k for k in q.text("kind", 400).split(",") if k)
        unknown = kinds - KINDS
        if unknown:
            raise BadQuery(f"kind {sorted(unknown)[0]!r} is not a record kind")
        flt = LogFilter(
            kinds=kinds,
            account=q.number("account", 0, 1 << 62),
            series=q.text("series", 64),
            serial=q.text("serial", SERIAL_FILTER_MAX),
        )
        if after is None:
            page = await self._in_thread(
                lambda: newest_first(self._store_now(), flt, limit, before)
            )
            return self._json(page.json())
        page = await self._in_thread(self._after, flt, limit, after)
        deadline = self._monotonic_ns() + wait_s * NS_PER_S
        scanned = page.scanned
        while not page.records and wait_s and not self._closing:  # a long poll: a record, or time
            left_s = (deadline - self._monotonic_ns()) / NS_PER_S
            if left_s <= 0:
                break
            waited = self._followed
            try:
                await asyncio.wait_for(waited.wait(), left_s)
            except TimeoutError:
                break
            start = page.last_seq
            page = await self._in_thread(self._after, flt, limit, start)
            scanned += page.scanned
            page.last_seq = max(page.last_seq, start)
        page.scanned = scanned
        return self._json(page.json())

    def _after(self, flt: LogFilter, limit: int, after: int) -> Any:
        return oldest_first(self._store_now(), flt, limit, after)

    async def market(self, request: web.Request) -> web.Response:
        Query(request, frozenset())
        books = []
        for sid, book in sorted(self.server.exchange.books.items()):
            bids, asks = book.depth(1)
            last = self.prices.get(sid)
            books.append(
                {
                    "series": sid,
                    "bid": bids[0] if bids else None,
                    "ask": asks[0] if asks else None,
                    "halted": book.halted,
                    "ref_price": book.ref_price,
                    "last": last[-1][1] if last else None,
                    "prices": [price for _, price in last] if last else [],
                }
            )
        trades = [
            {
                "seq": seq, "ts": ts, "series": b.series, "price": b.price, "qty": b.qty,
                "buyer": b.buyer, "seller": b.seller, "trade_id": b.trade_id,
                "serials": [str(r) for r in b.ranges],
            }
            for seq, ts, b in reversed(self.trades)
        ]  # fmt: skip
        return self._json({"books": books, "trades": trades})

    async def registry_view(self, request: web.Request) -> web.Response:
        Query(request, frozenset())
        halted = sorted(sid for sid, b in self.server.exchange.books.items() if b.halted)
        events = [view(r).json() for r in reversed(self.registry_events)]
        return self._json({"events": events, "halted": halted})

    def _certificate_asked(self, request: web.Request) -> tuple[str, list[int] | None]:
        """The `id` a request asks for, and the seqs of its records (None: not in the log)."""
        cert_id = Query(request, frozenset({"id"})).text("id", 32)
        if not cert_id:
            raise BadQuery("id is needed")
        span = self.certificate_span(cert_id)
        return cert_id, None if span is None else [span[0], span[1]]

    async def certificate(self, request: web.Request) -> web.Response:
        cert_id, seqs = self._certificate_asked(request)
        if seqs is None:
            return self._json({"id": cert_id, "found": False}, status=404)
        found = await self._in_thread(lambda: self._certificate_view(cert_id, seqs))
        return self._json(found)

    async def certificate_proof(self, request: web.Request) -> web.Response:
        """The certificate's proof file (`tonne-certificate-1`), for `tonne certificate
        verify` or anyone's own checker."""
        cert_id, seqs = self._certificate_asked(request)
        if seqs is None:
            return self._json({"id": cert_id, "found": False}, status=404)
        try:
            data = await self._in_thread(lambda: self._proof_bytes(cert_id, seqs))
        except ProofError as exc:
            raise BadQuery(f"no proof of {cert_id!r}: {exc}") from exc
        return web.Response(
            body=data,
            content_type="application/json",
            headers={"Content-Disposition": f'attachment; filename="{cert_id}.json"'},
        )

    def _proof_bytes(self, cert_id: str, seqs: list[int]) -> bytes:
        from gateway.console.proofs import proof_of
        from settlement.certificate_proof import encode_proof

        store = self._store_now()
        records = records_in(store, cert_id, seqs[0], seqs[1])
        return bytes(encode_proof(proof_of(store, cert_id, records, store.head().log_seq)))

    def _certificate_view(self, cert_id: str, seqs: list[int]) -> dict[str, Any]:
        from gateway.console.proofs import certificate_check

        store = self._store_now()
        return certificate_check(store, cert_id, records_in(store, cert_id, seqs[0], seqs[1]))

    def _json(self, obj: Any, status: int = 200) -> web.Response:
        return web.Response(
            body=msgspec.json.encode(obj),
            status=status,
            content_type="application/json",
            headers={"Cache-Control": "no-store"},
        )


__all__ = ["Console", "new_token"]
