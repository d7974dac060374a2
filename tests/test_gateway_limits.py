"""Every named limit of a session, hit: what the client gets and that others keep going."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time

import msgspec
import pytest
from test_gateway_harness import SERIES, run, running_server
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from engine.commands import Side
from engine.events import Reason
from gateway.client.client import ConnectionLost, RequestRejected
from gateway.server.auth import sign_logon
from gateway.server.clock import NS_PER_S as S
from gateway.server.clock import ManualClock
from gateway.server.session import Limits, TokenBucket
from gateway.wire import protocol as p


def test_token_bucket_allows_the_burst_then_the_rate():
    clock = ManualClock(0)
    bucket = TokenBucket(rate=10, burst=3, monotonic_ns=clock.monotonic_ns)
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    clock.advance(S // 10)
    assert bucket.take() and not bucket.take()
    clock.advance(10 * S)
    assert sum(bucket.take() for _ in range(10)) == 3


@pytest.mark.parametrize("transport", ["tcp", "ws"])
def test_messages_over_the_rate_are_rejected_as_rate_limited(transport):
    async def body():
        async with running_server(limits=Limits(messages_per_s=1, burst_messages=5)) as env:
            c = await env.connect(transport)
            mark = c.received
            await c.send(*[p.Heartbeat(req_id=100 + i) for i in range(8)])
            last = await c.wait_for(lambda m: getattr(m, "req_id", 0) == 107, since=mark)
            answers = [m for m in list(c.history)[mark:] if getattr(m, "req_id", 0) >= 100]
            assert [type(m).__name__ for m in answers] == ["ServerHeartbeat"] * 5 + ["Reject"] * 3
            assert last.reason is Reason.RATE_LIMITED
            assert env.server.counters["rate_limited"] == 3

    run(body)


@pytest.mark.parametrize("transport", ["tcp", "ws"])
def test_open_orders_over_the_limit_are_rejected(transport):
    async def body():
        async with running_server(limits=Limits(open_orders_max=2)) as env:
            c = await env.connect(transport, 1)
            await c.place(SERIES, Side.BUY, qty=1, price=10)
            await c.place(SERIES, Side.BUY, qty=1, price=11)
            with pytest.raises(RequestRejected) as e:
                await c.place(SERIES, Side.BUY, qty=1, price=12)
            assert e.value.reason is Reason.TOO_MANY_OPEN_ORDERS

    run(body)


def test_an_oversized_tcp_frame_gets_a_goodbye_and_a_disconnect_and_others_go_on():
    async def body():
        async with running_server(limits=Limits(frame_bytes_max=1024)) as env:
            bystander = await env.tcp(2)
            c = await env.tcp()
            await c.send_raw(struct.pack(">I", 1025) + b"\x00" * 16)
            lost = await c.wait_closed()
            assert lost.reason == Reason.FRAME_TOO_LARGE.value
            assert (await bystander.heartbeat()).ts > 0
            assert env.server.counters["frames_too_large"] == 1

    run(body)


def test_an_oversized_websocket_message_closes_that_connection_only():
    async def body():
        async with running_server(limits=Limits(frame_bytes_max=1024)) as env:
            bystander = await env.ws(2)
            c = await env.ws()
            await c.send_raw(b"[" + b" " * 2000 + b"]")
            await c.wait_closed()
            assert not c.connected
            assert (await bystander.heartbeat()).ts > 0

    run(body)


def test_an_idle_session_gets_heartbeats_then_is_disconnected():
    clock = ManualClock()

    async def body():
        limits = Limits(heartbeat_s=10, idle_timeout_s=30)
        async with running_server(limits=limits, clock=clock) as env:
            c = await env.tcp(1, keepalive=False)
            assert clock.advance(10 * S - 1) == 0  # not quiet for heartbeat_s yet: no timer
            clock.advance(1)  # heartbeat_s without a write: a heartbeat, at once
            hb = await c.wait_for(lambda m: isinstance(m, p.ServerHeartbeat) and not m.req_id)
            assert hb.ts == clock.now
            assert not env.server.counters.get("idle_timeouts")
            clock.advance(20 * S)  # idle_timeout_s since the logon, the last thing received
            assert env.server.counters["idle_timeouts"] == 1
            lost = await c.wait_closed()
            assert lost.reason == Reason.IDLE_TIMEOUT.value

    run(body)


def test_a_client_with_keepalive_outlives_the_idle_timeout():
    clock = ManualClock()

    async def body():
        limits = Limits(heartbeat_s=10, idle_timeout_s=30)
        async with running_server(limits=limits, clock=clock) as env:
            c = await env.ws(1)  # keepalive is the default; it shares the server's clock
            for _ in range(10):  # 100 s, over three times the idle timeout
                mark, beats = c.received, [0]

                def second_beat(m, beats=beats):
                    beats[0] += isinstance(m, p.ServerHeartbeat)
                    return beats[0] == 2

                clock.advance(10 * S)
                # the server's heartbeat, and its answer to the client's keepalive
                await c.wait_for(second_beat, since=mark)
            assert c.connected and (await c.heartbeat()).ts > 0
            assert env.server.counters.get("idle_timeouts", 0) == 0

    run(body)


def test_a_connection_that_never_logs_on_is_closed():
    clock = ManualClock()

    async def body():
        async with running_server(limits=Limits(logon_timeout_s=10), clock=clock) as env:
            c = await env.tcp()
            await env.server.wait_counter("sessions_opened", 1)
            assert clock.advance(10 * S - 1) == 0 and c.connected
            assert clock.advance(1) == 1
            lost = await c.wait_closed()
            assert lost.reason == Reason.NOT_LOGGED_ON.value
            assert env.server.counters["logon_timeouts"] == 1

    run(body)


@pytest.mark.parametrize("transport", ["tcp", "ws"])
def test_a_connection_over_sessions_max_is_refused_and_the_others_go_on(transport):
    async def body():
        async with running_server(limits=Limits(sessions_max=2)) as env:
            a = await env.connect(transport, 1)
            b = await env.connect(transport, 2)
            c = await env.connect(transport)
            lost = await c.wait_closed()
            assert lost.reason == Reason.TOO_MANY_SESSIONS.value
            assert (await a.heartbeat()).ts > 0 and (await b.heartbeat()).ts > 0

    run(body)


async def _deep_book(env, levels: int) -> None:
    maker = await env.tcp(1)
    coids = [f"deep-{i}" for i in range(levels)]
    futs = [maker.order_future(c) for c in coids]
    await maker.send(
        *[
            p.NewOrder(client_order_id=c, series=SERIES, side=Side.SELL, qty=1, price=1000 + i)
            for i, c in enumerate(coids)
        ]
    )
    await asyncio.gather(*futs)


def _logon(key: tuple[str, str]) -> p.Logon:
    key_id, secret = key
    ts = time.time_ns()
    nonce = f"slow-{ts}"
    return p.Logon(
        key_id=key_id, ts=ts, nonce=nonce, signature=sign_logon(secret, key_id, ts, nonce)
    )


def test_a_tcp_client_that_does_not_read_is_disconnected_as_a_slow_consumer():
    async def body():
        limits = Limits(out_bytes_max=64 << 10, burst_messages=100_000)
        async with running_server(limits=limits) as env:
            await _deep_book(env, 400)
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(("127.0.0.1", env.server.tcp_port))
            reader, writer = await asyncio.open_connection(sock=sock)
            writer.write(p.encode_frame([_logon(env.keys[3])]))
            frame = p.encode_frame([p.Subscribe(series=[SERIES]) for _ in range(50)])
            try:
                for _ in range(400):  # each frame asks for 50 snapshots of 400 levels
                    writer.write(frame)
                    await writer.drain()
                    if env.server.counters.get("slow_consumers"):
                        break
            except ConnectionError:
                pass
            await env.server.wait_counter("slow_consumers", 1)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
            other = await env.tcp(2)
            assert (await other.heartbeat()).ts > 0

    run(body)


def test_a_websocket_client_that_does_not_read_is_disconnected_as_a_slow_consumer():
    async def body():
        limits = Limits(out_bytes_max=64 << 10, burst_messages=100_000)
        async with running_server(limits=limits) as env:
            await _deep_book(env, 400)
            url = f"ws://127.0.0.1:{env.server.ws_port}"
            async with ws_connect(url, max_queue=1, compression=None, proxy=None) as ws:
                await ws.send(msgspec.json.encode([_logon(env.keys[3])]).decode())
                text = msgspec.json.encode([p.Subscribe(series=[SERIES])] * 50).decode()
                with contextlib.suppress(ConnectionError, Exception):
                    for _ in range(400):
                        await ws.send(text)
                        if env.server.counters.get("slow_consumers"):
                            break
                await env.server.wait_counter("slow_consumers", 1)
            other = await env.ws(2)
            assert (await other.heartbeat()).ts > 0

    run(body)


async def _slow_tcp_reader(env):
    """A TCP client logged on that asks for far more than it reads, until the server finds
    it slow; its reader (it never read before) and writer."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", env.server.tcp_port))
    reader, writer = await asyncio.open_connection(sock=sock)
    writer.write(p.encode_frame([_logon(env.keys[3])]))
    frame = p.encode_frame([p.Subscribe(series=[SERIES]) for _ in range(50)])
    with contextlib.suppress(ConnectionError):
        for _ in range(400):  # each frame asks for 50 snapshots of 400 levels
            writer.write(frame)
            await writer.drain()
            if env.server.counters.get("slow_consumers"):
                break
    await env.server.wait_counter("slow_consumers", 1)
    return reader, writer


def test_a_tcp_slow_consumer_reads_its_goodbye_last_when_it_reads_again():
    async def body():
        limits = Limits(out_bytes_max=64 << 10, burst_messages=100_000, slow_consumer_linger_s=10)
        async with running_server(limits=limits) as env:
            await _deep_book(env, 400)
            reader, writer = await _slow_tcp_reader(env)
            frames, msgs = p.FrameReader(1 << 30), []
            async with asyncio.timeout(10):  # everything buffered, then the end of the stream
                while data := await reader.read(1 << 16):
                    for body in frames.feed(data):
                        msgs.extend(p.decode_server_msgpack(body))
            goodbyes = [m for m in msgs if isinstance(m, p.Goodbye)]
            assert goodbyes == [msgs[-1]] and msgs[-1].reason is Reason.SLOW_CONSUMER
            assert any(isinstance(m, p.BookSnapshot) for m in msgs)  # what came before it
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
            await env.server.wait_counter("lingering_closed", 1)  # it ended by itself
            assert env.server.counters.get("slow_consumer_aborts", 0) == 0
            assert not env.server.lingering

    run(body)


def test_a_tcp_slow_consumer_that_never_reads_is_aborted_after_the_linger():
    clock = ManualClock()

    async def body():
        limits = Limits(out_bytes_max=64 << 10, burst_messages=100_000, slow_consumer_linger_s=2)
        async with running_server(limits=limits, clock=clock) as env:
            await _deep_book(env, 400)
            reader, writer = await _slow_tcp_reader(env)
            clock.advance(2 * S - 1)
            assert env.server.lingering and not env.server.counters.get("slow_consumer_aborts")
            clock.advance(1)
            assert env.server.counters["slow_consumer_aborts"] == 1
            assert not env.server.lingering
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
            assert (await (await env.tcp(2)).heartbeat()).ts > 0

    run(body)


def test_a_websocket_slow_consumer_reads_its_goodbye_last_then_the_close():
    async def body():
        limits = Limits(out_bytes_max=64 << 10, burst_messages=100_000, slow_consumer_linger_s=10)
        async with running_server(limits=limits) as env:
            await _deep_book(env, 400)
            url = f"ws://127.0.0.1:{env.server.ws_port}"
            async with ws_connect(url, max_queue=1, compression=None, proxy=None) as ws:
                await ws.send(msgspec.json.encode([_logon(env.keys[3])]).decode())
                text = msgspec.json.encode([p.Subscribe(series=[SERIES])] * 50).decode()
                with contextlib.suppress(ConnectionError, Exception):
                    for _ in range(400):
                        await ws.send(text)
                        if env.server.counters.get("slow_consumers"):
                            break
                await env.server.wait_counter("slow_consumers", 1)
                msgs = []
                async with asyncio.timeout(10):
                    with contextlib.suppress(ConnectionClosed):
                        async for data in ws:  # it reads again: what was sent, then the end
                            msgs.extend(p.decode_server_json(data))
                assert isinstance(msgs[-1], p.Goodbye), msgs[-1]
                assert msgs[-1].reason is Reason.SLOW_CONSUMER
                assert ws.close_code == 1008 and ws.close_reason == Reason.SLOW_CONSUMER.value
            await env.server.wait_counter("lingering_closed", 1)
            assert env.server.counters.get("slow_consumer_aborts", 0) == 0

    run(body)


def test_a_websocket_slow_consumer_that_never_reads_is_aborted_after_the_linger():
    clock = ManualClock()

    async def body():
        limits = Limits(out_bytes_max=64 << 10, burst_messages=100_000, slow_consumer_linger_s=2)
        async with running_server(limits=limits, clock=clock) as env:
            await _deep_book(env, 400)
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(("127.0.0.1", env.server.ws_port))
            url = f"ws://127.0.0.1:{env.server.ws_port}"
            async with ws_connect(url, sock=sock, max_queue=1, compression=None) as ws:
                await ws.send(msgspec.json.encode([_logon(env.keys[3])]).decode())
                # answers small enough to be written one by one, until the socket is full
                text = msgspec.json.encode([p.Subscribe(series=[SERIES])] * 2).decode()
                with contextlib.suppress(ConnectionError, Exception):
                    for _ in range(2_000):
                        await ws.send(text)
                        if env.server.counters.get("slow_consumers"):
                            break
                await env.server.wait_counter("slow_consumers", 1)
                clock.advance(2 * S - 1)
                assert env.server.lingering and not env.server.counters.get("slow_consumer_aborts")
                clock.advance(1)
                assert env.server.counters["slow_consumer_aborts"] == 1
                assert not env.server.lingering
            assert (await (await env.ws(2)).heartbeat()).ts > 0

    run(body)


def test_a_second_logon_on_one_session_is_rejected():
    async def body():
        async with running_server() as env:
            c = await env.tcp(1)
            answer = await c.request(msgspec.structs.replace(_logon(env.keys[1]), req_id=5))
            assert isinstance(answer, p.LogonReject)
            assert answer.reason is Reason.ALREADY_LOGGED_ON

    run(body)


def test_a_closed_client_raises_connection_lost():
    async def body():
        async with running_server(limits=Limits(frame_bytes_max=64)) as env:
            c = await env.tcp()
            await c.send_raw(struct.pack(">I", 65))
            await c.wait_closed()
            with pytest.raises(ConnectionLost):
                await c.heartbeat()

    run(body)


@pytest.mark.parametrize("transport", ["tcp", "ws"])
def test_reads_are_applied_while_earlier_ones_commit_up_to_reads_in_flight_max(transport):
    """With every commit held back: a session's reads keep being applied (and journaled)
    until `reads_in_flight_max` are waiting; the next waits too, and nothing is answered
    until the commit; then all are."""

    async def body():
        async with running_server(limits=Limits(reads_in_flight_max=2)) as env:
            c = await env.connect(transport, 1)
            env.journal.gate = asyncio.Event()
            journaled = env.journal.commands
            acks = []
            for i in range(5):  # one read each: the next is sent once this one is applied
                o = p.NewOrder(
                    client_order_id=f"r{i}", series=SERIES, side=Side.BUY, qty=1, price=10 + i
                )
                acks.append(c.order_future(o.client_order_id))
                await c.send(o)
                if i < 3:  # reads 1..3 are applied: 3 in flight is the first past the limit
                    async with asyncio.timeout(5):
                        while len(journaled) < i + 1:
                            await asyncio.sleep(0.005)
            await asyncio.sleep(0.1)
            assert len(journaled) == 3  # reads 4 and 5 wait for the first commit
            assert not any(f.done() for f in acks)  # and nothing is answered yet
            env.journal.gate.set()
            async with asyncio.timeout(5):
                done = await asyncio.gather(*acks)
            assert [a.client_order_id for a in done] == [f"r{i}" for i in range(5)]
            assert len(journaled) == 5

    run(body)


def _bad_logon(key: tuple[str, str], i: int) -> p.Logon:
    key_id, _ = key
    ts = time.time_ns()
    return p.Logon(key_id=key_id, ts=ts, nonce=f"bad-{i}", signature="0" * 64, req_id=1_000 + i)


@pytest.mark.parametrize("transport", ["tcp", "ws"])
def test_bad_logons_in_one_frame_get_n_rejects_then_a_goodbye_and_the_rest_is_unread(transport):
    async def body():
        async with running_server(limits=Limits(logon_failures_max=5)) as env:
            c = await env.connect(transport)
            await c.send(*[_bad_logon(env.keys[1], i) for i in range(2_000)])
            lost = await c.wait_closed()
            assert lost.reason == Reason.TOO_MANY_LOGON_FAILURES.value
            kinds = [type(m).__name__ for m in c.history]
            assert kinds == ["LogonReject"] * 5 + ["Goodbye"]  # the goodbye after the rejects
            assert [m.req_id for m in list(c.history)[:5]] == [1_000 + i for i in range(5)]
            assert env.server.counters["logon_rejected"] == 5  # the other 1,995 never looked at
            assert env.server.counters["logon_failures_limited"] == 1
            ok = await env.connect(transport, 1)  # the key itself is not locked out
            assert (await ok.heartbeat()).ts > 0

    run(body)


@pytest.mark.parametrize("transport", ["tcp", "ws"])
def test_failed_logons_count_per_connection_across_frames_up_to_the_limit(transport):
    async def body():
        async with running_server(limits=Limits(logon_failures_max=3)) as env:
            c = await env.connect(transport)
            for i in range(2):  # under the limit: still connected, and a good logon works
                answer = await c.request(_bad_logon(env.keys[1], i))
                assert answer.reason is Reason.BAD_SIGNATURE
            key_id, secret = env.keys[1]
            assert (await c.logon(key_id, secret)).account == 1
            d = await env.connect(transport)
            for i in range(3):
                await c.heartbeat()  # the other connection is not counted against
                await d.send(_bad_logon(env.keys[2], 10 + i))
            lost = await d.wait_closed()
            assert lost.reason == Reason.TOO_MANY_LOGON_FAILURES.value
            assert (await c.heartbeat()).ts > 0

    run(body)
