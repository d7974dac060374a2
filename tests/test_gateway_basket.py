"""Screened baskets and buy-and-retire over the wire (issue 14): the messages round-trip, a
basket's events reach the buyer (ack with series "", a fill per trade with its book and
serials, the cancel of the rest, the summary, the one certificate) and the makers (their
fills), refusals change nothing. A real server on loopback with the real settlement core
and store (tests/test_gateway_harness.py); the routing of a basket's events is also checked
on its own, with the events written out by hand."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

import settlement.log as slog
from engine.commands import Side, TimeInForce
from engine.events import Accepted, Cancelled, CancelReason, Reason, Trade
from gateway.certificates import core_certificate
from gateway.client.client import Client, RequestRejected
from gateway.server.routing import OrderInfo, route
from gateway.server.translate import basket_buy, new_order
from gateway.wire import protocol as p
from settlement.commands import BasketBuy
from settlement.events import (
    BasketDone,
    CertificateFill,
    FillRetired,
    OrderCertificate,
    Purpose,
    Settled,
)
from settlement.serials import SerialRange
from tests.test_gateway_harness import OTHER, SERIES, run, running_server

BUY, SELL = Side.BUY, Side.SELL
AVOIDANCE = "mitigation = avoidance"  # both of the harness's books: VCS1340 and GS11236
BAD_SCREEN = "mitigation = avoidance and ("  # stops reading at 28, the end
HARBOUR = p.RetireFor(
    beneficiary="Harbour Airlines",
    purpose="corsia",
    claim="2026 offsetting report",
    period_start="2026-01-01",
    period_end="2026-12-31",
)
SELLER_FIRST = 2 * 10**6  # account 2's serial blocks start here (the harness's `fund`)


# -- the schema ------------------------------------------------------------------------------


def client_messages() -> list[Any]:
    return [
        p.BasketBuy(client_order_id="b1", screen=AVOIDANCE, qty=30, price=510, req_id=4),
        p.BasketBuy(
            client_order_id="b2",
            screen="label CORSIA",
            qty=30,
            price=510,
            currency="HKD",
            tif=TimeInForce.FOK,
            project_max=10,
            projects_min=2,
            retire_for=HARBOUR,
            req_id=5,
        ),
        p.NewOrder(
            client_order_id="o1",
            series=SERIES,
            side=BUY,
            qty=10,
            price=500,
            tif=TimeInForce.IOC,
            retire_for=p.RetireFor(beneficiary="Kowloon Steel"),
        ),
    ]


def server_messages() -> list[Any]:
    serials = [p.SerialRange("VCS2925", 2024, 941471173, 941471192, "b-*", "b-1 to 20")]
    return [
        p.BasketDone(
            order_id=9,
            client_order_id="b1",
            filled=30,
            notional=15100,
            projects=["GS11236", "VCS1340"],
            ts=1,
            req_id=4,
        ),
        p.OrderCertificate(
            cert_id="RC-00000001",
            account=1,
            order_id=9,
            client_order_id="b1",
            qty=20,
            beneficiary="Harbour Airlines",
            purpose="corsia",
            claim="",
            period_start="",
            period_end="",
            fills=[p.CertificateFillInfo(7, "TONNE-CORSIA", 20, serials, 12, "ab" * 32)],
            ts=2,
            req_id=4,
        ),
    ]


@pytest.mark.parametrize("msg", client_messages(), ids=lambda m: type(m).__name__)
def test_every_new_client_message_round_trips_both_encodings(msg):
    assert p.decode_client_msgpack(p.encode_frame([msg])[p.HEADER_BYTES :]) == [msg]
    assert p.decode_client_json(p.encode_json([msg])) == [msg]


@pytest.mark.parametrize("msg", server_messages(), ids=lambda m: type(m).__name__)
def test_every_new_server_message_round_trips_both_encodings(msg):
    assert p.decode_server_msgpack(p.encode_frame([msg])[p.HEADER_BYTES :]) == [msg]
    assert p.decode_server_json(p.encode_json([msg])) == [msg]


def basket_json(**fields: Any) -> bytes:
    base = {"type": "basket_buy", "client_order_id": "b", "screen": "any", "qty": 1, "price": 5}
    return msgspec.json.encode({**base, **fields})


def test_a_basket_leaves_out_what_has_a_default_and_is_an_ioc_without_retirement():
    (msg,) = p.decode_client_json(basket_json())
    assert (msg.tif, msg.currency, msg.project_max, msg.projects_min) == (
        TimeInForce.IOC,
        "USD",
        0,
        0,
    )
    assert msg.retire_for is None and msg.req_id == 0


@pytest.mark.parametrize(
    "fields",
    [
        {"retire_for": {"beneficiary": "x" * (p.STR_CHARS_MAX + 1)}},
        {"retire_for": {"beneficiary": "B", "claim": "x" * (p.STR_CHARS_MAX + 1)}},
        {"retire_for": {"beneficiary": "B", "vintage": 2020}},  # an unknown field
        {"retire_for": {}},  # no beneficiary
        {"screen": "x" * (p.SCREEN_WIRE_CHARS_MAX + 1)},
        {"tif": "day"},
    ],
    ids=["long-beneficiary", "long-claim", "unknown-field", "no-beneficiary", "long-screen", "tif"],
)
def test_a_basket_outside_the_wire_bounds_does_not_decode(fields):
    with pytest.raises(p.MalformedFrame):
        p.decode_client_json(basket_json(**fields))


def test_translation_carries_every_field_and_refuses_a_purpose_out_of_its_set():
    msg = client_messages()[1]
    cmd = basket_buy(msg, 7, 123, {})
    assert isinstance(cmd, BasketBuy)
    assert (cmd.account, cmd.ts, cmd.screen, cmd.currency, cmd.tif) == (
        7,
        123,
        "label CORSIA",
        "HKD",
        TimeInForce.FOK,
    )
    assert (cmd.project_max, cmd.projects_min) == (10, 2)
    assert cmd.retire is not None and cmd.retire.beneficiary == "Harbour Airlines"
    assert (cmd.retire.purpose, cmd.retire.period_end) == ("corsia", "2026-12-31")
    odd = msgspec.structs.replace(msg, retire_for=p.RetireFor(beneficiary="B", purpose="fun"))
    refused = basket_buy(odd, 7, 123, {})
    assert refused.reason is Reason.MALFORMED_MESSAGE and "voluntary" in refused.text
    order = new_order(client_messages()[2], 7, 123, {})
    assert order.retire is not None and order.retire.beneficiary == "Kowloon Steel"  # type: ignore[union-attr]


# -- routing a basket's events, written out by hand ------------------------------------------


def settled(trade_id: int, series: str, project: str, vintage: int, price: int) -> Settled:
    ranges = (SerialRange(project, vintage, 100 * trade_id, 100 * trade_id + 9),)
    return Settled(trade_id, series, "USD", price, 10, 1, 2, 15, 5, 0, ranges, 3)


def basket_events() -> list[Any]:
    """A basket (order 10 of account 1) over two books, buying to retire; the makers are
    orders 3 and 4 of account 2."""
    fills = [settled(1, SERIES, "VCS1340", 2020, 500), settled(2, OTHER, "GS11236", 2021, 505)]
    events: list[Any] = [Accepted(10, 1, "b1", "", BUY, 510, 25, 3)]
    for maker, fill in zip((3, 4), fills, strict=True):
        events.append(Trade(fill.trade_id, fill.series, fill.price, 10, BUY, maker, 2, 10, 1, 3))
        events.append(fill)
        corsia = Purpose.CORSIA
        events.append(
            FillRetired(
                "RC-1", 10, "b1", fill.trade_id, 1, fill.ranges, 10, "H", corsia, "", "", "", 3
            )
        )
    certified = tuple(
        CertificateFill(f.trade_id, f.series, f.ranges, 10, 40 + f.trade_id, f"h{f.trade_id}")
        for f in fills
    )
    events += [
        Cancelled(10, 1, "", BUY, 5, CancelReason.IMMEDIATE_OR_CANCEL, 3),
        BasketDone(10, 1, "b1", 20, 10050, ("VCS1340", "GS11236"), 3),
        OrderCertificate("RC-1", 1, 10, "b1", 20, "H", Purpose.CORSIA, "", "", "", certified, 3),
    ]
    return events


def test_a_basket_routes_its_ack_fills_rest_summary_and_certificate_to_the_buyer():
    orders = {3: OrderInfo(2, "s3", SELL, 10), 4: OrderInfo(2, "s4", SELL, 10)}
    items: list[tuple[Any, Any]] = []
    assert route(basket_events(), None, items, orders, req_id=8) == 1  # the one cancel
    buyer = [m for target, m in items if target == 1]
    kinds = [m.__struct_config__.tag for m in buyer]
    assert kinds == ["order_ack", "fill", "fill", "cancelled", "basket_done", "order_certificate"]
    ack, fill_a, fill_b, rest, done, cert = buyer
    assert (ack.series, ack.order_id, ack.qty) == ("", 10, 25)
    assert [(f.series, f.price, f.liquidity, f.leaves_qty) for f in (fill_a, fill_b)] == [
        (SERIES, 500, "taker", 15),
        (OTHER, 505, "taker", 5),
    ]
    assert [head(f.serials[0]) for f in (fill_a, fill_b)] == [
        ("VCS1340", 2020, 100, 109),
        ("GS11236", 2021, 200, 209),
    ]
    assert fill_a.fee == 15 and fill_a.client_order_id == "b1"
    assert (rest.qty, rest.reason, rest.client_order_id, rest.req_id) == (5, "ioc", "b1", 8)
    assert (done.filled, done.notional, done.projects, done.req_id) == (
        20,
        10050,
        ["GS11236", "VCS1340"],
        8,
    )
    assert [(f.trade_id, f.series, f.record_seq) for f in cert.fills] == [
        (1, SERIES, 41),
        (2, OTHER, 42),
    ]
    assert cert.fills[1].serials == fill_b.serials and cert.purpose == "corsia"
    makers = [m for target, m in items if target == 2]
    assert [(m.order_id, m.liquidity, m.fee) for m in makers] == [(3, "maker", 5), (4, "maker", 5)]
    assert orders == {}  # the basket is gone, and so are the makers it filled


# -- end to end on the real core -------------------------------------------------------------


async def rest_asks(seller: Client) -> list[int]:
    """Asks over both books, entered so that the two at 505 tie: OTHER's first (lower
    order id), then VCS's; VCS's 500 is the cheapest. Their order ids."""
    acks = [
        await seller.place(OTHER, SELL, qty=10, price=505),
        await seller.place(SERIES, SELL, qty=10, price=505),
        await seller.place(SERIES, SELL, qty=10, price=500),
    ]
    return [a.order_id for a in acks]


def capture_records(env: Any) -> list[Any]:
    """Every settlement-log record the server journals from now on."""
    seen: list[Any] = []
    real = env.journal.append

    def append(cmd: Any, records: list[Any]) -> Any:
        seen.extend(records)
        return real(cmd, records)

    env.journal.append = append
    return seen


def head(r: p.SerialRange) -> tuple[str, int, int, int]:
    return (r.project, r.vintage, r.first, r.last)


def tonnes(ranges: list[p.SerialRange]) -> int:
    return sum(r.last - r.first + 1 for r in ranges)


@pytest.mark.parametrize("transport", ["tcp", "ws"])
def test_a_basket_sweeps_both_books_cheapest_first_and_reports_each_fill(transport):
    async def body():
        async with running_server() as env:
            seller, buyer = await env.tcp(2), await env.connect(transport, 1)
            other_505, vcs_505, vcs_500 = await rest_asks(seller)
            since = seller.received
            basket = await buyer.basket_buy(AVOIDANCE, qty=35, price=510)
            assert basket.ack.series == "" and basket.ack.qty == 35
            assert [(f.series, f.qty, f.price) for f in basket.fills] == [
                (SERIES, 10, 500),
                (OTHER, 10, 505),  # the tie at 505: OTHER's front order entered first
                (SERIES, 10, 505),
            ]
            for f in basket.fills:
                assert f.order_id == basket.order_id and f.liquidity == "taker"
                assert tonnes(f.serials) == f.qty and f.serials[0].first >= SELLER_FIRST
            assert head(basket.fills[0].serials[0]) == ("VCS1340", 2020, 2_000_000, 2_000_009)
            assert head(basket.fills[1].serials[0]) == ("GS11236", 2021, 2_000_000, 2_000_009)
            assert head(basket.fills[2].serials[0]) == ("VCS1340", 2020, 2_000_010, 2_000_019)
            assert basket.cancelled is not None
            assert (basket.cancelled.qty, basket.cancelled.reason) == (
                5,
                CancelReason.IMMEDIATE_OR_CANCEL,
            )
            done = basket.done
            assert (done.filled, done.notional, done.projects) == (
                30,
                10 * 500 + 10 * 505 + 10 * 505,
                ["GS11236", "VCS1340"],
            )
            assert basket.certificate is None
            maker = await seller.wait_for(
                lambda m: isinstance(m, p.Fill) and m.order_id == other_505, since=since
            )
            assert maker.liquidity == "maker" and maker.serials == basket.fills[1].serials
            assert {vcs_500, vcs_505} <= {
                m.order_id for m in seller.messages_since(since) if isinstance(m, p.Fill)
            }
            assert (await buyer.open_orders()).orders == []  # it never rests
            env.server.core.check_invariants()

    run(body)


def check_against_records(cert: p.OrderCertificate, records: list[Any]) -> None:
    """Each fill of the wire certificate is its `fill_retirement` record, by seq and hash."""
    by_seq = {r.seq: r for r in records}
    for f in cert.fills:
        record = by_seq[f.record_seq]
        assert (record.kind, record.hash) == ("fill_retirement", f.record_hash)
        body = record.movement()
        assert (body.cert_id, body.trade_id, body.account, body.qty) == (
            cert.cert_id,
            f.trade_id,
            cert.account,
            f.qty,
        )
        assert [p.serial_range(r) for r in body.ranges] == f.serials
        assert (body.beneficiary, body.purpose.value, body.claim) == (
            cert.beneficiary,
            cert.purpose,
            cert.claim,
        )
    check = getattr(slog, "check_order_certificate", None)
    if check is not None:  # the core's own check, on the certificate the core gave
        assert check(core_certificate(cert), records)


@pytest.mark.parametrize("transport", ["tcp", "ws"])
def test_a_basket_bought_to_retire_gets_one_certificate_its_records_prove(transport):
    async def body():
        async with running_server() as env:
            seller, buyer = await env.tcp(2), await env.connect(transport, 1)
            await rest_asks(seller)
            holdings_before = (await buyer.holdings()).holdings
            records = capture_records(env)
            basket = await buyer.basket_buy(AVOIDANCE, qty=25, price=510, retire_for=HARBOUR)
            cert = basket.certificate
            assert cert is not None and basket.cancelled is None
            assert (cert.order_id, cert.client_order_id, cert.qty) == (
                basket.order_id,
                basket.ack.client_order_id,
                25,
            )
            assert (cert.beneficiary, cert.purpose, cert.claim) == (
                "Harbour Airlines",
                "corsia",
                "2026 offsetting report",
            )
            assert (cert.period_start, cert.period_end) == ("2026-01-01", "2026-12-31")
            assert [(f.trade_id, f.series, f.serials) for f in cert.fills] == [
                (f.trade_id, f.series, f.serials) for f in basket.fills
            ]
            check_against_records(cert, records)
            # retired in the fill's own transaction: the buyer never holds them
            assert (await buyer.holdings()).holdings == holdings_before
            env.server.core.check_invariants()

    run(body)


def test_a_fok_basket_that_cannot_fill_is_refused_and_changes_nothing():
    async def body():
        async with running_server() as env:
            seller, buyer = await env.tcp(2), await env.tcp(1)
            await rest_asks(seller)
            env.journal.commands.clear()
            hash_before = env.server.core.state_hash()
            with pytest.raises(RequestRejected) as err:
                await buyer.basket_buy(AVOIDANCE, qty=31, price=510, fok=True, retire_for=HARBOUR)
            assert err.value.reason is Reason.CANNOT_FILL
            assert err.value.reject.client_order_id  # correlated by its client order id
            assert env.journal.commands == []  # nothing journaled
            assert env.server.core.state_hash() == hash_before
            # the same basket that can fill, fills whole
            basket = await buyer.basket_buy(AVOIDANCE, qty=30, price=510, fok=True)
            assert basket.done.filled == 30 and basket.cancelled is None

    run(body)


def test_a_basket_takes_at_most_project_max_tonnes_of_each_project():
    async def body():
        async with running_server() as env:
            seller, buyer = await env.tcp(2), await env.tcp(1)
            await rest_asks(seller)
            basket = await buyer.basket_buy(AVOIDANCE, qty=30, price=510, project_max=8)
            assert [(f.series, f.qty, f.price) for f in basket.fills] == [
                (SERIES, 8, 500),
                (OTHER, 8, 505),
            ]
            assert basket.done.filled == 16 and basket.cancelled is not None
            assert basket.cancelled.qty == 14

    run(body)


def test_a_basket_stops_at_the_buyers_own_resting_order_in_that_book_only():
    async def body():
        async with running_server() as env:
            seller, buyer = await env.tcp(2), await env.tcp(1)
            own = await buyer.place(SERIES, SELL, qty=5, price=500)
            await seller.place(SERIES, SELL, qty=10, price=505)
            await seller.place(OTHER, SELL, qty=10, price=510)
            basket = await buyer.basket_buy(AVOIDANCE, qty=15, price=510)
            assert [(f.series, f.qty) for f in basket.fills] == [(OTHER, 10)]
            assert basket.cancelled is not None and basket.cancelled.qty == 5
            assert [o.order_id for o in (await buyer.open_orders()).orders] == [own.order_id]

    run(body)


def test_a_buy_and_retire_ioc_order_gets_its_certificate():
    async def body():
        async with running_server() as env:
            seller, buyer = await env.tcp(2), await env.ws(1)
            await seller.place(SERIES, SELL, qty=10, price=500)
            records = capture_records(env)
            since = buyer.received
            ack = await buyer.place(
                SERIES, BUY, qty=12, price=500, tif=TimeInForce.IOC, retire_for=HARBOUR
            )
            cert = await buyer.order_certificate(ack.order_id, since=since)
            fill = await buyer.wait_for(
                lambda m: isinstance(m, p.Fill) and m.order_id == ack.order_id, since=since
            )
            assert (cert.qty, cert.req_id, [f.trade_id for f in cert.fills]) == (
                10,
                0,
                [fill.trade_id],
            )
            assert cert.fills[0].serials == fill.serials and tonnes(fill.serials) == 10
            check_against_records(cert, records)
            rest = await buyer.wait_for(
                lambda m: isinstance(m, p.Cancelled) and m.order_id == ack.order_id, since=since
            )
            assert rest.qty == 2

    run(body)


# -- refusals --------------------------------------------------------------------------------


def test_a_basket_needs_the_trade_permission():
    async def body():
        async with running_server(permissions=frozenset({"fund", "retire"})) as env:
            buyer = await env.tcp(1)
            hash_before = env.server.core.state_hash()
            with pytest.raises(RequestRejected) as err:
                await buyer.basket_buy(AVOIDANCE, qty=1, price=510)
            assert err.value.reason is Reason.NOT_PERMITTED and "trade" in err.value.text
            assert env.journal.commands == [] and env.server.core.state_hash() == hash_before

    run(body)


@pytest.mark.parametrize(
    ("kwargs", "reason", "text"),
    [
        ({"screen": BAD_SCREEN}, Reason.INVALID_SCREEN, "screen at 28: "),
        ({"retire_for": p.RetireFor(beneficiary="")}, Reason.INVALID_RETIREMENT, ""),
        ({"retire_for": p.RetireFor(beneficiary="   ")}, Reason.INVALID_RETIREMENT, ""),
        (
            {"retire_for": p.RetireFor(beneficiary="B", period_start="2026-01-01")},
            Reason.INVALID_RETIREMENT,
            "",
        ),
        ({"retire_for": p.RetireFor(beneficiary="B", purpose="fun")}, Reason.MALFORMED_MESSAGE, ""),
        ({"qty": 0}, Reason.INVALID_QUANTITY, ""),
        ({"projects_min": 3}, Reason.CANNOT_FILL, ""),  # two projects on offer
        ({"currency": "XYZ"}, Reason.UNKNOWN_CURRENCY, ""),
    ],
    ids=[
        "screen",
        "empty-beneficiary",
        "blank-beneficiary",
        "one-date",
        "purpose",
        "qty",
        "projects-min",
        "currency",
    ],
)
def test_a_refused_basket_says_why_and_changes_nothing(kwargs, reason, text):
    async def body():
        async with running_server() as env:
            seller, buyer = await env.tcp(2), await env.tcp(1)
            await rest_asks(seller)
            env.journal.commands.clear()
            hash_before = env.server.core.state_hash()
            args = {"screen": AVOIDANCE, "qty": 10, "price": 510, **kwargs}
            with pytest.raises(RequestRejected) as err:
                await buyer.basket_buy(**args)
            assert err.value.reason is reason and err.value.text.startswith(text)
            assert env.journal.commands == [] and env.server.core.state_hash() == hash_before

    run(body)


def test_a_beneficiary_longer_than_the_wire_allows_is_malformed_and_changes_nothing():
    async def body():
        async with running_server() as env:
            buyer = await env.tcp(1)
            hash_before = env.server.core.state_hash()
            since = buyer.received
            long = p.RetireFor(beneficiary="x" * (p.STR_CHARS_MAX + 1))
            await buyer.send(
                p.BasketBuy(
                    client_order_id="b", screen=AVOIDANCE, qty=1, price=510, retire_for=long
                )
            )
            reject = await buyer.wait_for(lambda m: isinstance(m, p.Reject), since=since)
            assert reject.reason is Reason.MALFORMED_MESSAGE
            assert env.journal.commands == [] and env.server.core.state_hash() == hash_before

    run(body)


@pytest.mark.parametrize("tif", [TimeInForce.GTC, TimeInForce.GTD])
def test_an_order_that_could_rest_cannot_buy_to_retire(tif):
    async def body():
        async with running_server() as env:
            buyer = await env.tcp(1)
            hash_before = env.server.core.state_hash()
            fields = {"expire_ts": 1 << 62} if tif is TimeInForce.GTD else {}
            with pytest.raises(RequestRejected) as err:
                await buyer.place(SERIES, BUY, 10, 500, tif=tif, retire_for=HARBOUR, **fields)
            assert err.value.reason is Reason.INVALID_RETIREMENT
            assert env.journal.commands == [] and env.server.core.state_hash() == hash_before

    run(body)


def test_a_sell_cannot_be_bought_to_retire():
    async def body():
        async with running_server() as env:
            seller = await env.tcp(2)
            with pytest.raises(RequestRejected) as err:
                await seller.place(SERIES, SELL, 10, 500, tif=TimeInForce.IOC, retire_for=HARBOUR)
            assert err.value.reason is Reason.INVALID_RETIREMENT

    run(body)
