"""Malformed, truncated and random input on both ports: the server answers or disconnects
that one connection, never crashes, and keeps serving everyone else."""

from __future__ import annotations

import asyncio
import contextlib
import struct

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_gateway_harness import SERIES, run, running_server
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from engine.commands import OrderType, Side, TimeInForce
from gateway.server.session import Limits
from gateway.wire import protocol as p

TAGS = [
    "logon",
    "new_order",
    "amend",
    "cancel",
    "mass_cancel",
    "deposit",
    "withdraw",
    "retire",
    "open_orders",
    "balances",
    "holdings",
    "series",
    "subscribe",
    "unsubscribe",
    "heartbeat",
    "nope",
]
FIELDS = [
    "key_id",
    "ts",
    "nonce",
    "signature",
    "client_order_id",
    "series",
    "side",
    "qty",
    "price",
    "order_type",
    "tif",
    "order_id",
    "req_id",
    "currency",
    "amount",
    "x",
]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.text(max_size=20),
    st.sampled_from(["buy", "sell", "gtc", "ioc", "fok", "gtd", "limit", "market", SERIES]),
    st.floats(allow_nan=True),
)
message = st.fixed_dictionaries(
    {"type": st.sampled_from(TAGS)},
    optional={f: st.one_of(scalars, st.lists(scalars, max_size=3)) for f in FIELDS},
)
bodies = st.one_of(
    message,
    st.lists(message, max_size=5),
    st.recursive(
        scalars,
        lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
        max_leaves=10,
    ),
)
LIMITS = Limits(frame_bytes_max=4096)


def _frame(body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + body


tcp_chunks = st.one_of(
    st.binary(max_size=64),
    bodies.map(lambda b: _frame(msgspec.msgpack.encode(b))),
    bodies.map(lambda b: _frame(msgspec.msgpack.encode(b))[:-1]),  # truncated
    st.binary(max_size=64).map(_frame),
    st.integers(0, 2**32 - 1).map(lambda n: struct.pack(">I", n)),
)
ws_payloads = st.one_of(
    st.binary(max_size=64),
    st.text(max_size=64),
    bodies.map(lambda b: msgspec.json.encode(b).decode()),
    bodies.map(lambda b: msgspec.json.encode(b)[:-1]),
)

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


async def _healthy(env) -> None:
    """Another participant can still trade and is answered."""
    c = await env.tcp(2)
    ack = await c.place(SERIES, Side.BUY, qty=1, price=100)
    assert ack.order_id > 0
    w = await env.ws(3)
    assert (await w.heartbeat()).ts > 0


@FUZZ
@given(chunks=st.lists(tcp_chunks, min_size=1, max_size=6), logon_first=st.booleans())
def test_random_tcp_input_never_crashes_the_server(chunks, logon_first):
    async def body():
        async with running_server(limits=LIMITS) as env:
            if logon_first:
                c = await env.tcp(1)
                for chunk in chunks:
                    with contextlib.suppress(Exception):
                        await c.send_raw(chunk)
                with contextlib.suppress(Exception):
                    await c.heartbeat(timeout_s=0.5) if c.connected else None
            else:
                reader, writer = await asyncio.open_connection("127.0.0.1", env.server.tcp_port)
                with contextlib.suppress(ConnectionError):
                    for chunk in chunks:
                        writer.write(chunk)
                        await writer.drain()
                writer.close()
                with contextlib.suppress(ConnectionError):
                    await writer.wait_closed()
            await _healthy(env)
            assert env.server.failed is None

    run(body)


@FUZZ
@given(payloads=st.lists(ws_payloads, min_size=1, max_size=6))
def test_random_websocket_input_never_crashes_the_server(payloads):
    async def body():
        async with running_server(limits=LIMITS) as env:
            url = f"ws://127.0.0.1:{env.server.ws_port}"
            async with ws_connect(url, compression=None, proxy=None) as ws:
                with contextlib.suppress(ConnectionClosed):
                    for payload in payloads:
                        await ws.send(payload)
            await _healthy(env)
            assert env.server.failed is None

    run(body)


big_ints = st.one_of(st.integers(-(2**62), 2**62), st.sampled_from([0, 1, -1, 2**62, -(2**62)]))
names = st.one_of(st.sampled_from([SERIES, "GS-11236-2021", "USD", "HKD", ""]), st.text(max_size=8))
wellformed = st.one_of(
    st.builds(
        p.NewOrder,
        client_order_id=st.text(max_size=6),
        series=names,
        side=st.sampled_from(list(Side)),
        qty=big_ints,
        price=big_ints,
        order_type=st.sampled_from(list(OrderType)),
        tif=st.sampled_from(list(TimeInForce)),
        expire_ts=big_ints,
        post_only=st.booleans(),
        max_notional=big_ints,
    ),
    st.builds(p.Amend, order_id=big_ints, price=big_ints, qty=big_ints),
    st.builds(p.Cancel, order_id=big_ints, client_order_id=st.text(max_size=6)),
    st.builds(p.MassCancel, series=names),
    st.builds(p.Deposit, currency=names, amount=big_ints),
    st.builds(p.Withdraw, currency=names, amount=big_ints),
    st.builds(
        p.Retire,
        series=names,
        qty=big_ints,
        beneficiary=st.text(max_size=6),
        purpose=st.sampled_from(["voluntary", "corsia", "x"]),
        period_start=st.sampled_from(["", "2025-01-01", "2025-13-01", "junk"]),
        period_end=st.sampled_from(["", "2025-12-31", "2024-01-01"]),
    ),
    st.builds(p.Subscribe, series=st.lists(names, max_size=3)),
    st.builds(p.Unsubscribe, series=st.lists(names, max_size=3)),
    st.builds(p.QueryOpenOrders, series=names),
    st.just(p.QueryBalances()),
    st.just(p.QueryHoldings()),
)


@FUZZ
@given(
    msgs=st.lists(wellformed, min_size=1, max_size=12),
    transport=st.sampled_from(["tcp", "ws"]),
)
def test_wellformed_requests_with_extreme_values_never_break_the_core(msgs, transport):
    async def body():
        everything = frozenset({"trade", "fund", "retire"})
        async with running_server(limits=LIMITS, permissions=everything) as env:
            c = await env.connect(transport, 1)
            await c.send(*msgs)
            assert (await c.heartbeat()).ts > 0  # answered after everything before it
            assert env.server.failed is None
            env.server.core.check_invariants()
            await _healthy(env)

    run(body)
