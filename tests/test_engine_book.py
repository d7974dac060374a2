"""Who owns what in the engine: the book keeps its levels, heaps and best keys; the exchange
keeps the open-order index and the id sequences; each changes its own state only."""

from __future__ import annotations

import pickle
from heapq import heappush
from pathlib import Path

from engine_series import SERIES

from engine import (
    AdvanceTime,
    BookDelta,
    Cancel,
    Cancelled,
    Event,
    Exchange,
    Expired,
    NewOrder,
    SelfTrade,
    Side,
    TimeInForce,
    Trade,
)
from engine.book import EMPTY, Order, OrderBook
from tests.builds import pickles_of_the_pure_layout

BUY, SELL = Side.BUY, Side.SELL
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def submit(ex: Exchange, **kw: object) -> list[Event]:
    kw.setdefault("series", "A")
    events = ex.submit(NewOrder(**kw))  # type: ignore[arg-type]
    ex.check_invariants()
    return events


def test_each_side_knows_its_best_key_through_rests_cancels_and_fills() -> None:
    ex = Exchange(SERIES)
    book = ex.books["A"]
    assert (book.bid_top, book.ask_top) == (EMPTY, EMPTY)
    for i, price in enumerate((100, 102, 101)):
        submit(ex, account=1, client_order_id=f"s{i}", side=SELL, price=price, qty=5)
    submit(ex, account=1, client_order_id="b", side=BUY, price=90, qty=5)
    assert (book.bid_top, book.ask_top) == (-90, 100)
    ex.submit(Cancel(account=1, order_id=1))  # the best ask's only order: 101 becomes best
    ex.check_invariants()
    assert book.ask_top == 101 and book.best_ask() == 101
    submit(ex, account=2, client_order_id="t", side=BUY, price=102, qty=10)  # takes 101, 102
    assert (book.best_bid(), book.best_ask(), book.ask_top) == (90, None, EMPTY)


def test_asking_for_the_best_price_changes_nothing() -> None:
    ex = Exchange(SERIES)
    book = ex.books["A"]
    for i, price in enumerate((100, 101)):
        submit(ex, account=1, client_order_id=f"s{i}", side=SELL, price=price, qty=5)
    ex.submit(Cancel(account=1, order_id=1))
    heap = list(book._ask_heap)
    assert book.best_ask() == 101 and book.crosses(BUY, 101) and not book.crosses(BUY, 100)
    assert book._ask_heap == heap


@pickles_of_the_pure_layout
def test_a_book_pickled_before_it_kept_its_best_keys_finds_them_on_restore() -> None:
    ex = Exchange(SERIES)
    book = ex.books["A"]
    for i, price in enumerate((100, 101, 103)):
        submit(ex, account=1, client_order_id=f"s{i}", side=SELL, price=price, qty=5)
        submit(ex, account=1, client_order_id=f"b{i}", side=BUY, price=price - 10, qty=5)
    ex.submit(Cancel(account=1, order_id=1))
    # What a snapshot of an older version holds: no best keys, and stale heap entries at
    # the roots, which that version dropped only when it next looked.
    del book.bid_top, book.ask_top
    heappush(book._ask_heap, 100)
    book._ex = ex  # type: ignore[attr-defined]  # books referred to their exchange then
    old = pickle.loads(pickle.dumps(ex))
    old.check_invariants()
    assert (old.books["A"].bid_top, old.books["A"].ask_top) == (-93, 101)
    assert not hasattr(old.books["A"], "_ex")
    events = old.submit(
        NewOrder(
            account=2, client_order_id="t", series="A", side=BUY, price=101, qty=5,
            tif=TimeInForce.IOC,
        )
    )  # fmt: skip
    assert [type(e).__name__ for e in events] == ["Accepted", "Trade", "BookDelta"]
    old.check_invariants()


def resting(
    book: OrderBook, order_id: int, account: int, side: Side, price: int, qty: int
) -> Order:
    order = Order(
        order_id, book.id, account, f"c{order_id}", side, price, qty, TimeInForce.GTC, 0,
        SelfTrade.CANCEL_RESTING, False,
    )  # fmt: skip
    book.rest(order, [])
    return order


def test_a_book_matches_on_its_own_taking_trade_ids_and_reporting_what_it_closed() -> None:
    """No exchange behind it: the book is given the first trade id and returns the next, and
    lists the resting orders it took off, filled or cancelled by self-trade prevention."""
    book = OrderBook(SERIES[0])
    own = resting(book, 1, 2, SELL, 100, 5)  # the taker's own: cancelled, not traded
    first = resting(book, 2, 1, SELL, 100, 5)
    second = resting(book, 3, 1, SELL, 101, 10)
    taker = Order(4, "A", 2, "t", BUY, 101, 8, TimeInForce.IOC, 0, SelfTrade.CANCEL_RESTING, False)
    events: list[Event] = []
    closed: list[Order] = []
    next_trade_id, stopped = book.match(taker, 101, 0, 7, 41, events, closed)
    assert (next_trade_id, stopped, taker.qty) == (43, None, 0)
    assert closed == [own, first] and (own.qty, first.qty, second.qty) == (0, 0, 7)
    trades = [e for e in events if isinstance(e, Trade)]
    assert [(t.trade_id, t.maker_order_id, t.price, t.qty) for t in trades] == [
        (41, 2, 100, 5),
        (42, 3, 101, 3),
    ]
    assert [type(e) for e in events if not isinstance(e, Trade | BookDelta)] == [Cancelled]
    assert (book.best_ask(), book.best_bid()) == (101, None)
    book.check_invariants()


@pickles_of_the_pure_layout
def test_an_exchange_pickled_at_1f18b72_restores_and_goes_on_trading() -> None:
    """The fixture's orders have no status (they unpickle NEW: the partially filled one
    included, whose history the old pickle does not hold) and its book no best keys."""
    data = (FIXTURES / "exchange-before-statuses" / "exchange.pickle").read_bytes()
    ex = pickle.loads(data)
    ex.check_invariants()
    book = ex.books["A"]
    assert (book.bid_top, book.ask_top) == (-90, 100) and not hasattr(book, "_ex")
    assert {i: (o.qty, o.status) for i, o in ex.open_orders.items()} == {1: (6, 0), 3: (4, 0)}
    assert ex.next_expiry_ts() == 50
    events = submit(ex, account=3, client_order_id="t", side=BUY, price=100, qty=6)
    assert [(type(e).__name__, getattr(e, "trade_id", None)) for e in events] == [
        ("Accepted", None),
        ("Trade", 2),
        ("BookDelta", None),
    ]
    assert ex.order(1) is None and ex.submit(AdvanceTime(ts=50))[-1] == Expired(
        3, 2, "A", BUY, 4, 50
    )
    ex.check_invariants()
