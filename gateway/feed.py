"""A minimal command feed: the durable core served on loopback, for the crash test.

It stands in for the network gateway (gateway/server/server.py) until that carries the journal, and
does exactly what the gateway must: recover the core from the store, then for every read,
stamp and apply each command, append it and its settlement records to the journal, await one
`flush()`, and only then answer. An answer is therefore a promise that the command is durable.

Wire: 4-byte big-endian length, then msgpack.
    request   [req_id, cmd]          cmd = `settlement.commands.encode_command` bytes
              [req_id, "hash"]       after a flush: [req_id, seq, state_hash, log_head]
    answer    [req_id, seq, events]  events = msgpack bytes of the core's event list
              [req_id, 0, error]     a frame that does not decode (nothing applied)

The crash test's proof that it catches a server that answers early serves a subclass of
`Feed` with `answer` reordered (tests/feed_acks_early.py), through `main(feed_class=...)`.

On start it prints one JSON line to stdout: {"port", "seq", "state_hash", "log_head",
"recovery"}; on SIGTERM/SIGINT it commits, writes a final snapshot and exits 0.

    python -m gateway.feed --data DIR [--port 0] [--batch-max N] [--window-ms MS]
                          [--snapshot-every N] [--snapshot-interval-s S]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import struct
import sys
from typing import Any

import msgspec
import uvloop

from gateway.durability import journal as journal_mod
from gateway.durability.journal import Journal, JournalFailed, SettlementCodec
from gateway.durability.recovery import RecoveryError, recover
from gateway.durability.store import SQLiteStore, StoreError
from gateway.server.clock import Clock, SystemClock

HEADER = struct.Struct(">I")
FRAME_BYTES_MAX = 1 << 20  # a larger frame closes the connection
FRAMES_PER_READ_MAX = 1024  # commands applied before one flush, per connection
READ_BYTES = 1 << 16


class Feed:
    """The core, its journal, and the loopback listener."""

    def __init__(self, core: Any, journal: Journal, codec: Any, clock: Clock | None = None) -> None:
        self.clock = clock or SystemClock()  # `main` passes none: the real time
        self.core = core
        self.journal = journal
        self.codec = codec
        self.last_ts = 0
        self.encode = msgspec.msgpack.Encoder().encode
        self.decode_request = msgspec.msgpack.Decoder(tuple[int, Any]).decode
        self.stop = asyncio.Event()
        self.failed: BaseException | None = None

    def stamp(self) -> int:
        """Strictly increasing command time (ns), so that replay order equals time order."""
        now = self.clock.now_ns()
        self.last_ts = now if now > self.last_ts else self.last_ts + 1
        return self.last_ts

    def handle(self, body: bytes) -> bytes:
        """Apply one request; its answer (sent only after the next flush)."""
        try:
            req_id, what = self.decode_request(body)
            if what == "hash":
                return b""  # answered after the flush, see `answer_hash`
            if not isinstance(what, bytes):
                raise ValueError(f"unknown request {what!r}")
            cmd = self.codec.decode_command(what)
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
            return self.encode([-1, 0, f"bad request: {exc}"])
        cmd = msgspec.structs.replace(cmd, ts=self.stamp())
        events = self.core.apply(cmd)
        seq = self.journal.append(cmd, self.core.drain_records())
        return self.encode([req_id, seq, self.encode(events)])

    def answer_hash(self, body: bytes) -> bytes:
        req_id, _ = self.decode_request(body)
        j = self.journal
        return self.encode([req_id, j.seq, self.core.state_hash(), j.log_head])

    async def serve_client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        buf = bytearray()
        try:
            while True:
                bodies, used = _frames(buf, FRAMES_PER_READ_MAX)
                if used < 0:
                    return  # oversized frame: not ours to parse
                del buf[:used]
                if not bodies:
                    data = await reader.read(READ_BYTES)
                    if not data:
                        return
                    buf += data
                    continue
                answers: list[bytes] = []
                hashes: list[bytes] = []
                for body in bodies:
                    answer = self.handle(body)
                    if answer:
                        answers.append(answer)
                    else:
                        hashes.append(body)
                await self.answer(writer, answers, hashes)
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        except JournalFailed as exc:  # the core is ahead of the store: answer nothing more
            self.failed = exc
            self.stop.set()
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def answer(
        self, writer: asyncio.StreamWriter, answers: list[bytes], hashes: list[bytes]
    ) -> None:
        """Commit what this read applied, then send its answers and the hashes asked for:
        nothing is answered before it is durable."""
        await self.journal.flush()
        writer.write(frames(answers + [self.answer_hash(b) for b in hashes]))
        await writer.drain()


def frames(bodies: list[bytes]) -> bytes:
    """The bodies as wire frames, each behind its length."""
    return b"".join(HEADER.pack(len(b)) + b for b in bodies)


def _frames(buf: bytearray, frames_max: int) -> tuple[list[bytes], int]:
    """Complete frame bodies at the start of `buf` (at most `frames_max`) and the bytes they
    use; -1 when a frame is larger than FRAME_BYTES_MAX."""
    bodies: list[bytes] = []
    pos = 0
    while len(bodies) < frames_max and len(buf) - pos >= HEADER.size:
        (size,) = HEADER.unpack_from(buf, pos)
        if size > FRAME_BYTES_MAX:
            return bodies, -1
        end = pos + HEADER.size + size
        if len(buf) < end:
            break
        bodies.append(bytes(buf[pos + HEADER.size : end]))
        pos = end
    return bodies, pos


async def serve(args: argparse.Namespace, feed_class: type[Feed] = Feed) -> int:
    codec = SettlementCodec()
    store = SQLiteStore(args.data)
    try:
        got = recover(store, codec=codec)
    except (RecoveryError, StoreError) as exc:
        store.close()
        print(f"feed: refusing to start: {exc}", file=sys.stderr)
        return 1
    journal = Journal(
        store,
        codec=codec,
        seq=got.seq,
        log_seq=got.log_seq,
        log_head=got.log_head,
        batch_max=args.batch_max,
        window_s=args.window_ms / 1000,
        core=got.core,
        snapshot_every=args.snapshot_every,
        snapshot_interval_s=args.snapshot_interval_s,
    )
    journal.start()
    feed = feed_class(got.core, journal, codec)
    server = await asyncio.start_server(feed.serve_client, "127.0.0.1", args.port)
    port = server.sockets[0].getsockname()[1]
    line = {
        "port": port,
        "seq": got.seq,
        "state_hash": got.state_hash,
        "log_head": got.log_head,
        "recovery": got.summary(),
    }
    print(json.dumps(line), flush=True)
    stop = feed.stop
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        server.close()
        await server.wait_closed()
        await journal.close(snapshot=feed.failed is None)
        store.close()
    if feed.failed is not None:
        print(f"feed: stopping, the journal failed: {feed.failed}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None, feed_class: type[Feed] = Feed) -> int:
    """The command line; `feed_class` is the feed to serve (a test's variant of `Feed`)."""
    parser = argparse.ArgumentParser(prog="python -m gateway.feed", description=__doc__)
    parser.add_argument("--data", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--batch-max", type=int, default=journal_mod.BATCH_MAX)
    parser.add_argument("--window-ms", type=float, default=journal_mod.WINDOW_S * 1000)
    parser.add_argument("--snapshot-every", type=int, default=journal_mod.SNAPSHOT_EVERY)
    parser.add_argument(
        "--snapshot-interval-s", type=float, default=journal_mod.SNAPSHOT_INTERVAL_S
    )
    args = parser.parse_args(argv)
    return uvloop.run(serve(args, feed_class))


if __name__ == "__main__":
    sys.exit(main())
