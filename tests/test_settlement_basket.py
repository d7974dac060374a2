"""Screened basket buys and buy-and-retire in the core (issue 14).

The reference for a basket is the same buying done by hand, book by book: a plain loop over
the matched books' asks picks what a careful buyer would take (cheapest front first, ties to
the earlier order, each book only from its front and only up to the buyer's own resting
order, caps honoured), and sends each take as an ordinary IOC order to a copy of the same
core. The basket must give the same fills: the same sellers, prices, quantities, serials and
fees, in the same order.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.commands import NewOrder, OrderType, RetireFor, Side, TimeInForce
from engine.events import Accepted, Cancelled, Reason, Rejected
from engine.reference import Series
from settlement.basket import BASKET_QTY_MAX
from settlement.commands import (
    BasketBuy,
    Deposit,
    DepositCredits,
    ListContract,
    Retire,
    WithdrawCredits,
)
from settlement.core import Core
from settlement.events import BasketDone, FillRetired, OrderCertificate, Settled
from settlement.log import check_order_certificate, verify
from tests.settlement_builders import batch_of, catalogue_core

DATA = Path(__file__).resolve().parent.parent / "data"
BUYER, SELLERS = 2, (1, 3)
REMOVALS = ("ACR802", "CAR1568", "VCS2319", "VCS960")  # each with one vintage, all removals
SERIES = {
    "ACR802": "ACR-802-2022",
    "CAR1568": "CAR-1568-2025",
    "VCS2319": "VCS-2319-2021",
    "VCS960": "VCS-960-2019",
}
CONTRACT = "REMOVALS"  # a contract over the same four projects
SCREEN = "mitigation = removal"


def venue() -> tuple[Core, list[Any]]:
    """Every removal project's first block with both sellers, cash for everyone, and the
    contract listed; the records so far."""
    core, blocks = catalogue_core(
        (DATA / "projects.csv").read_text(),
        (DATA / "serials.csv").read_text(),
        (1, 2, 3),
        maker_fee_bps=7,  # fees on, so that "the same fees" means something
        taker_fee_bps=33,
    )
    records: list[Any] = []
    ts = 1_000

    def apply(cmd: Any) -> None:
        nonlocal ts
        ts += 1
        fields = {f: getattr(cmd, f) for f in cmd.__struct_fields__}
        events = core.apply(type(cmd)(**{**fields, "ts": ts}))
        assert not isinstance(events[-1], Rejected), events
        records.extend(core.drain_records())

    for a in (1, 2, 3):
        apply(Deposit(account=a, currency="USD", amount=10**10))
    for project in REMOVALS:  # 60 t of its first block to each seller and the buyer
        block = next(b for b in blocks if b.project == project)
        for i, seller in enumerate((*SELLERS, BUYER)):
            first = block.start + 60 * i
            apply(
                DepositCredits(
                    account=seller,
                    project=project,
                    vintage=block.vintage,
                    start=first,
                    end=first + 59,
                    quantity=60,
                    batch=batch_of(block),
                )
            )
    apply(ListContract(series=Series(id=CONTRACT, currency="USD"), rule=SCREEN))
    return core, records


class Run:
    def __init__(self, core: Core, records: list[Any]) -> None:
        self.core, self.records, self.ts = core, records, 10_000

    def apply(self, cmd: Any, ok: bool = False) -> list[Any]:
        self.ts += 1
        fields = {f: getattr(cmd, f) for f in cmd.__struct_fields__}
        events = self.core.apply(type(cmd)(**{**fields, "ts": self.ts}))
        self.records += self.core.drain_records()
        self.core.check_invariants()
        assert not ok or not isinstance(events[-1], Rejected), events
        return events


def order(account: int, series: str, side: Side, qty: int, price: int, coid: str, **kw: Any) -> Any:
    fields: dict[str, Any] = {"tif": TimeInForce.GTC, **kw}
    return NewOrder(
        account=account,
        client_order_id=coid,
        series=series,
        side=side,
        type=OrderType.LIMIT,
        price=price,
        qty=qty,
        **fields,
    )


def basket(qty: int, price: int, **kw: Any) -> BasketBuy:
    return BasketBuy(
        account=BUYER,
        client_order_id=kw.pop("coid", "basket"),
        screen=SCREEN,
        qty=qty,
        price=price,
        **kw,
    )


# -- the reference: the same buying, by hand, book by book -------------------------------------


def by_hand(core: Core, qty: int, price: int, project_max: int) -> list[tuple[str, int, int]]:
    """(series, qty, price) takes a careful buyer makes, in order, with plain loops."""
    queues = {}
    for sid in sorted(core.exchange.books):
        book = core.exchange.books[sid]
        if book.series.currency != "USD" or book.halted:
            continue
        if sid != CONTRACT and book.series.project not in REMOVALS:
            continue
        if sid == CONTRACT and not core.keys[CONTRACT]:
            continue
        asks = []
        for p in sorted(book.asks):
            for o in book.asks[p].orders:
                if o.qty and p <= price:
                    asks.append(o)
        mine = [i for i, o in enumerate(asks) if o.account == BUYER]
        queues[sid] = asks[: mine[0]] if mine else asks
    used: dict[str, int] = {}
    takes = []
    left = qty
    while left:
        fronts = [(q[0].price, q[0].order_id, sid) for sid, q in queues.items() if q]
        if not fronts:
            break
        _, _, sid = min(fronts)
        maker = queues[sid][0]
        if sid == CONTRACT:
            parts = [(k[0], n) for k, n in core.ledger.credit_holds[maker.order_id].parts if n]
        else:
            parts = [(core.exchange.books[sid].series.project, maker.qty)]
        took = 0
        for project, n in parts:
            room = min(n, left - took)
            if project_max:
                room = min(room, project_max - used.get(project, 0))
            if room <= 0:
                break
            took += room
            used[project] = used.get(project, 0) + room
            if room < n:
                break
        if took:
            takes.append((sid, took, maker.price))
            left -= took
        if took < maker.qty:
            queues[sid] = []  # its front cannot be taken whole: the book's part ends
        else:
            queues[sid].pop(0)
    return takes


def fills(events: list[Any]) -> list[tuple[Any, ...]]:
    return [
        (e.series, e.price, e.qty, e.seller, e.buyer_fee, e.seller_fee, e.ranges)
        for e in events
        if isinstance(e, Settled)
    ]


asks = st.lists(
    st.tuples(
        st.sampled_from([*REMOVALS, CONTRACT]),
        st.sampled_from([*SELLERS, BUYER]),
        st.integers(1, 30),
        st.integers(95, 110),
    ),
    max_size=14,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    book=asks,
    qty=st.integers(1, 200),
    price=st.integers(94, 112),
    fok=st.booleans(),
    project_max=st.sampled_from([0, 0, 5, 20]),
    retire=st.booleans(),
)
def test_a_basket_makes_the_fills_a_buyer_would_make_by_hand_book_by_book(
    book: list[tuple[str, int, int, int]],
    qty: int,
    price: int,
    fok: bool,
    project_max: int,
    retire: bool,
) -> None:
    run = Run(*venue())
    for i, (project, account, n, p) in enumerate(book):
        sid = project if project == CONTRACT else SERIES[project]
        run.apply(order(account, sid, Side.SELL, n, p, f"a{i}"))
    copy = Run(Core.restore(run.core.snapshot()), [])
    kept = run.core.credits(BUYER)
    before = run.core.canonical()
    takes = by_hand(run.core, qty, price, project_max)
    got = run.apply(
        basket(
            qty,
            price,
            tif=TimeInForce.FOK if fok else TimeInForce.IOC,
            project_max=project_max,
            retire=RetireFor(beneficiary="Acme") if retire else None,
        )
    )
    planned = sum(n for _, n, _ in takes)
    if fok and planned < qty:
        assert isinstance(got[-1], Rejected) and got[-1].reason is Reason.CANNOT_FILL
        assert run.core.canonical() == before, "a FOK basket that cannot fill changes nothing"
        return
    reference: list[Any] = []
    for i, (sid, n, p) in enumerate(takes):
        reference += copy.apply(order(BUYER, sid, Side.BUY, n, p, f"h{i}", tif=TimeInForce.IOC))
    assert fills(got) == fills(reference)
    done = next(e for e in got if isinstance(e, BasketDone))
    assert done.filled == planned and done.notional == sum(n * p for _, n, p in takes)
    assert all(e.price <= price for e in got if isinstance(e, Settled))
    assert not run.core.ledger.cash_holds.get(done.order_id), "its hold is released"
    assert done.order_id not in run.core.exchange.open_orders, "it never rests"
    if retire and planned:
        cert = got[-1]
        assert isinstance(cert, OrderCertificate) and cert.qty == planned
        assert check_order_certificate(cert, run.records)
        assert run.core.credits(BUYER) == kept, "nothing delivered is kept"
    verdict = verify(run.records)
    assert verdict.ok, verdict.summary()


# -- the rules, one by one -----------------------------------------------------------------------


def _setup(*offers: tuple[str, int, int, int]) -> Run:
    run = Run(*venue())
    for i, (sid, account, n, p) in enumerate(offers):
        run.apply(order(account, sid, Side.SELL, n, p, f"o{i}"), ok=True)
    return run


def test_a_basket_sweeps_books_cheapest_first_and_never_pays_above_its_limit() -> None:
    run = _setup(
        ("ACR-802-2022", 1, 10, 105),
        ("CAR-1568-2025", 3, 10, 100),
        ("VCS-2319-2021", 1, 10, 103),
        ("VCS-960-2019", 3, 10, 120),
    )
    events = run.apply(basket(25, 105))
    assert [(e.series, e.price, e.qty) for e in events if isinstance(e, Settled)] == [
        ("CAR-1568-2025", 100, 10),
        ("VCS-2319-2021", 103, 10),
        ("ACR-802-2022", 105, 5),
    ]
    done = events[-1]
    assert isinstance(done, BasketDone)
    assert (done.filled, done.notional) == (25, 1000 + 1030 + 525)
    assert done.projects == ("ACR802", "CAR1568", "VCS2319")
    assert isinstance(events[0], Accepted) and events[0].series == ""


def test_a_price_tie_between_books_goes_to_the_earlier_order() -> None:
    run = _setup(("VCS-2319-2021", 1, 5, 100), ("ACR-802-2022", 3, 5, 100))
    events = run.apply(basket(6, 100))
    assert [e.series for e in events if isinstance(e, Settled)] == ["VCS-2319-2021", "ACR-802-2022"]


def test_a_book_is_swept_only_up_to_the_buyers_own_resting_order() -> None:
    run = _setup(
        ("ACR-802-2022", 1, 5, 100),
        ("ACR-802-2022", BUYER, 5, 101),
        ("ACR-802-2022", 3, 5, 102),
        ("CAR-1568-2025", 3, 5, 103),
    )
    events = run.apply(basket(20, 110))
    assert [(e.series, e.price) for e in events if isinstance(e, Settled)] == [
        ("ACR-802-2022", 100),
        ("CAR-1568-2025", 103),
    ]
    (rest,) = [e for e in events if isinstance(e, Cancelled)]
    assert rest.qty == 10 and rest.series == ""


def test_the_project_cap_and_the_distinct_project_floor() -> None:
    run = _setup(("ACR-802-2022", 1, 30, 100), ("CAR-1568-2025", 3, 30, 101))
    events = run.apply(basket(40, 110, project_max=15))
    assert [(e.series, e.qty) for e in events if isinstance(e, Settled)] == [
        ("ACR-802-2022", 15),
        ("CAR-1568-2025", 15),
    ]
    before = run.core.canonical()
    refused = run.apply(basket(10, 110, projects_min=3, coid="b2"))
    assert refused[-1].reason is Reason.CANNOT_FILL and run.core.canonical() == before


def test_a_fok_basket_that_cannot_complete_changes_nothing_at_all() -> None:
    run = _setup(("ACR-802-2022", 1, 10, 100), ("CAR-1568-2025", 3, 10, 101))
    before, snapshot = run.core.canonical(), run.core.snapshot()
    (ev,) = run.apply(basket(21, 110, tif=TimeInForce.FOK, retire=RetireFor(beneficiary="A")))
    assert isinstance(ev, Rejected) and ev.reason is Reason.CANNOT_FILL
    assert run.core.canonical() == before and run.core.drain_records() == []
    assert Core.restore(snapshot).state_hash() == run.core.state_hash()
    events = run.apply(basket(20, 110, tif=TimeInForce.FOK))
    assert events[-1].filled == 20


def test_a_contract_book_is_swept_like_any_other() -> None:
    run = _setup((CONTRACT, 1, 10, 99), ("ACR-802-2022", 3, 10, 100))
    events = run.apply(basket(15, 100))
    settled = [e for e in events if isinstance(e, Settled)]
    assert [(e.series, e.qty) for e in settled] == [(CONTRACT, 10), ("ACR-802-2022", 5)]


# -- buy-and-retire ------------------------------------------------------------------------------


def test_a_buy_and_retire_order_retires_every_fill_in_its_own_transaction() -> None:
    run = _setup(("ACR-802-2022", 1, 10, 100), ("ACR-802-2022", 3, 10, 101))
    kept = run.core.credits(BUYER)
    spec = RetireFor(
        beneficiary="Acme Ltd",
        purpose="voluntary",
        claim="FY2026 net zero",
        period_start="2026-01-01",
        period_end="2026-12-31",
    )
    events = run.apply(
        order(BUYER, "ACR-802-2022", Side.BUY, 15, 101, "bar", tif=TimeInForce.IOC, retire=spec)
    )
    kinds = [r.kind for r in run.records[-4:]]
    assert kinds == ["fill", "fill_retirement", "fill", "fill_retirement"]
    cert = events[-1]
    assert isinstance(cert, OrderCertificate) and cert.qty == 15 and len(cert.fills) == 2
    assert cert.beneficiary == "Acme Ltd" and cert.claim == "FY2026 net zero"
    assert check_order_certificate(cert, run.records)
    assert run.core.credits(BUYER) == kept, "the buyer never holds them"
    assert sum(isinstance(e, FillRetired) for e in events) == 2
    first = cert.fills[0].ranges[0]
    withdraw = WithdrawCredits(
        account=BUYER,
        project=first.project,
        vintage=first.vintage,
        start=first.first,
        end=first.first,
        quantity=1,
        batch=first.batch,
    )
    assert run.apply(withdraw)[-1].reason is Reason.SERIALS_RETIRED
    assert run.apply(Retire(account=BUYER, beneficiary="b", ranges=(first,)))[-1].reason in (
        Reason.SERIALS_RETIRED,
        Reason.SERIALS_NOT_HELD,
    )
    assert verify(run.records).ok


def test_a_forged_certificate_does_not_check() -> None:
    import msgspec

    run = _setup(("ACR-802-2022", 1, 10, 100), ("CAR-1568-2025", 3, 10, 101))
    cert = run.apply(basket(15, 101, retire=RetireFor(beneficiary="Acme")))[-1]
    assert isinstance(cert, OrderCertificate) and len(cert.fills) == 2
    assert check_order_certificate(cert, run.records)
    first, second = cert.fills
    replace = msgspec.structs.replace
    forgeries = {
        "another beneficiary": replace(cert, beneficiary="Other"),
        "more tonnes": replace(cert, qty=16),
        "a fill listed twice": replace(
            cert, fills=(first, second, second), qty=cert.qty + second.qty
        ),
        "a fill left out": replace(cert, fills=(first,), qty=first.qty),
        "another order": replace(cert, order_id=cert.order_id + 1),
        "another client order id": replace(cert, client_order_id="other"),
        "another time": replace(cert, ts=cert.ts + 1),
        "another book": replace(cert, fills=(replace(first, series="VCS-960-2019"), second)),
        "another record": replace(
            cert, fills=(replace(first, record_seq=second.record_seq), second)
        ),
    }
    for name, forged in forgeries.items():
        assert not check_order_certificate(forged, run.records), name
    assert not check_order_certificate(cert, run.records[:-1]), "a record missing"


def test_a_basket_stays_within_each_books_band_and_order_size() -> None:
    from engine.commands import SetReferencePrice
    from settlement.commands import ListSeries

    run = Run(*venue())
    small = Series(
        id="VCS-960-2019-SMALL",
        standard="VCS",
        project="VCS960",
        vintage=2019,
        max_order_qty=10,
        band_bps=1000,
        ref_price=100,
    )
    run.apply(ListSeries(series=small), ok=True)
    for i in range(3):
        run.apply(order(1, small.id, Side.SELL, 10, 108, f"s{i}"), ok=True)
    run.apply(SetReferencePrice(series=small.id, price=90), ok=True)  # band now 81..99
    assert not [e for e in run.apply(basket(30, 200)) if isinstance(e, Settled)], "band"
    run.apply(SetReferencePrice(series=small.id, price=100), ok=True)  # band 90..110
    settled = [e for e in run.apply(basket(30, 200, coid="b2")) if isinstance(e, Settled)]
    assert sum(e.qty for e in settled) == 10, "at most one order's size from one book"


@pytest.mark.parametrize(
    ("cmd", "reason"),
    [
        (basket(0, 100), Reason.INVALID_QUANTITY),
        (basket(BASKET_QTY_MAX + 1, 100), Reason.INVALID_QUANTITY),
        (basket(5, 0), Reason.INVALID_PRICE),
        (basket(5, 100, tif=TimeInForce.GTC), Reason.INVALID_TIF),
        (basket(5, 100, currency="EUR"), Reason.UNKNOWN_CURRENCY),
        (basket(5, 100, project_max=-1), Reason.INVALID_QUANTITY),
        (basket(5, 100, projects_min=6), Reason.INVALID_QUANTITY),
        (basket(5, 100, coid=""), Reason.INVALID_CLIENT_ORDER_ID),
        (
            BasketBuy(
                account=BUYER, client_order_id="x", screen="colour = green", qty=5, price=100
            ),
            Reason.INVALID_SCREEN,
        ),
        (
            BasketBuy(account=99, client_order_id="x", screen=SCREEN, qty=5, price=100),
            Reason.UNKNOWN_ACCOUNT,
        ),
        (basket(5, 100, retire=RetireFor(beneficiary="")), Reason.INVALID_RETIREMENT),
        (basket(5, 100, retire=RetireFor(beneficiary="x" * 1001)), Reason.INVALID_RETIREMENT),
        (
            basket(5, 100, retire=RetireFor(beneficiary="x", purpose="fun")),
            Reason.INVALID_RETIREMENT,
        ),
        (basket(10**6, 10**6), Reason.INSUFFICIENT_CASH),
        (
            order(BUYER, "ACR-802-2022", Side.BUY, 5, 100, "r1", retire=RetireFor(beneficiary="x")),
            Reason.INVALID_RETIREMENT,
        ),
        (
            order(
                1,
                "ACR-802-2022",
                Side.SELL,
                5,
                100,
                "r2",
                tif=TimeInForce.IOC,
                retire=RetireFor(beneficiary="x"),
            ),
            Reason.INVALID_RETIREMENT,
        ),
        (
            order(
                BUYER,
                "ACR-802-2022",
                Side.BUY,
                5,
                100,
                "r3",
                tif=TimeInForce.IOC,
                retire=RetireFor(beneficiary=" "),
            ),
            Reason.INVALID_RETIREMENT,
        ),
    ],
)
def test_a_basket_or_buy_and_retire_that_cannot_enter_is_refused_and_changes_nothing(
    cmd: Any, reason: Reason
) -> None:
    run = _setup(("ACR-802-2022", 1, 10, 100))
    before = run.core.canonical()
    events = run.apply(cmd)
    assert isinstance(events[-1], Rejected) and events[-1].reason is reason, events
    assert run.core.canonical() == before and run.core.drain_records() == []


def test_a_basket_client_order_id_is_one_of_the_accounts_ids() -> None:
    run = _setup(("ACR-802-2022", 1, 10, 100))
    run.apply(basket(1, 100, coid="same"))
    assert run.apply(basket(1, 100, coid="same"))[-1].reason is Reason.DUPLICATE_CLIENT_ORDER_ID


def test_a_basket_takes_whole_lots_of_each_book() -> None:
    run = Run(*venue())
    lots = Series(id="VCS-960-2019-LOTS", standard="VCS", project="VCS960", vintage=2019, lot=10)
    from settlement.commands import ListSeries

    run.apply(ListSeries(series=lots), ok=True)
    run.apply(order(1, lots.id, Side.SELL, 30, 100, "l1"), ok=True)
    events = run.apply(basket(25, 100))
    assert [(e.series, e.qty) for e in events if isinstance(e, Settled)] == [(lots.id, 20)]
    assert run.apply(basket(25, 100, tif=TimeInForce.FOK, coid="f"))[-1].reason is (
        Reason.CANNOT_FILL
    )
