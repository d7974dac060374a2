"""Screened basket buys and buy-and-retire (issue 14), applied to a `Core`.

**Basket.** One buy of up to `qty` tonnes from every book of `currency` whose credits the
screen admits (`Core.screened`: a project's book when the screen admits its project and
vintage; a contract's when it admits every credit line the contract has eligible), never
above `price` a tonne. The plan is made first, from the books and the sellers' holds, and
changes nothing:

- each book offers its asks best price first, then time, up to `price`, and stops before the
  buyer's own resting order (self-trade prevention per book: a book is swept only from its
  front, so price-time priority inside every book stays intact);
- across books the cheapest front is taken first; a tie at one price goes to the book whose
  front order has the lower order id (entered earlier; an amend up re-queues an order but
  keeps its id), then to the lower series id;
- each take is a whole number of its book's lots (the maker keeps a lot multiple), a book
  gives one basket at most its `max_order_qty`, and nothing outside its price band;
- `project_max` caps the tonnes from one project (a contract's seller delivers its held
  credits in hold order, so the plan knows which project each tonne is of); a front order
  the cap stops ends its book's part, for the same reason;
- with FOK the whole quantity must be planned, and with `projects_min` that many distinct
  projects; otherwise the basket is refused `CANNOT_FILL` and nothing changes.

Then it is carried out in one command: the cash hold (quantity x price plus the largest fee),
one take per planned step against its book's front (engine/basket.py), each fill settled DvP
with its own record exactly as any fill is, the rest cancelled, the hold released, and a
`BasketDone` summary. It never rests.

**Buy-and-retire.** A buy (a basket, or a NewOrder that does not rest: IOC, FOK or market)
with `retire` set retires every credit each fill delivers right after that fill's settlement
record, in the same command, as a `fill_retirement` record naming the fill's trade: no state
between two commands has them delivered and not retired. All the order's fills share one
certificate number; the `OrderCertificate` at the end lists every fill with its record's seq
and hash, so `settlement.log.check_order_certificate` proves it against the log.
"""

from __future__ import annotations

from heapq import heappop, heappush
from typing import TYPE_CHECKING, Any, NamedTuple

from engine import basket
from engine.book import MAX_PRICE, Order, OrderBook
from engine.commands import RetireFor, Side, TimeInForce
from engine.events import Reason
from screening.language import ScreenError, parse
from settlement.commands import BasketBuy
from settlement.events import (
    BasketDone,
    CertificateFill,
    FillRetired,
    OrderCertificate,
    Purpose,
    Settled,
)
from settlement.ledger import Reject
from settlement.limits import CERTIFICATES_MAX
from settlement.retirement import check_details

if TYPE_CHECKING:
    from collections.abc import Iterator

    from settlement.core import Core

BASKET_QTY_MAX = 1_000_000  # tonnes one basket may ask for
BASKET_FILLS_MAX = 10_000  # fills one basket may make (resting orders it may take from)
PURPOSES = frozenset(p.value for p in Purpose)


class Step(NamedTuple):
    """One planned take: `qty` from the front order of `series`."""

    series: str
    qty: int


# -- buy-and-retire --------------------------------------------------------------------------


def check_retire(spec: RetireFor, side: Side, resting: bool) -> Reject | None:
    """Why a buy-and-retire order may not enter (None if it may): a buy that never rests,
    for a named beneficiary with a valid purpose, claim and period."""
    if side is not Side.BUY:
        return Reject(Reason.INVALID_RETIREMENT, "only a buy order can retire what it buys")
    if resting:
        return Reject(
            Reason.INVALID_RETIREMENT,
            "a buy-and-retire order never rests: IOC, FOK or market (its certificate is "
            "issued when it completes)",
        )
    if spec.purpose not in PURPOSES:
        return Reject(
            Reason.INVALID_RETIREMENT,
            f"purpose {spec.purpose[:40]!r} is not one of {', '.join(sorted(PURPOSES))}",
        )
    return check_details(spec.beneficiary, spec.claim, spec.period_start, spec.period_end)


class Retiring:
    """The buy-and-retire order of the command being applied, and what it retired so far."""

    __slots__ = ("order_id", "account", "coid", "spec", "cert_id", "fills", "qty")

    def __init__(self, order_id: int, account: int, coid: str, spec: RetireFor) -> None:
        self.order_id = order_id
        self.account = account
        self.coid = coid
        self.spec = spec
        self.cert_id = ""
        self.fills: list[CertificateFill] = []
        self.qty = 0


def certificates_left(core: Core) -> bool:
    return core.ledger.next_cert - 1 < CERTIFICATES_MAX


def retire_fill(core: Core, retiring: Retiring, fill: Settled) -> FillRetired:
    """Retire what `fill` just delivered to the order, in the same command: the record right
    after the fill's, under the order's one certificate number."""
    ledger = core.ledger
    if not retiring.cert_id:
        retiring.cert_id = f"RC-{ledger.next_cert:08d}"
        ledger.next_cert += 1
    spec = retiring.spec
    body = FillRetired(
        retiring.cert_id,
        retiring.order_id,
        retiring.coid,
        fill.trade_id,
        retiring.account,
        fill.ranges,
        fill.qty,
        spec.beneficiary,
        Purpose(spec.purpose),
        spec.claim,
        spec.period_start,
        spec.period_end,
        fill.ts,
    )
    record = ledger.retire_delivered(body)
    retiring.fills.append(
        CertificateFill(fill.trade_id, fill.series, fill.ranges, fill.qty, record.seq, record.hash)
    )
    retiring.qty += fill.qty
    return body


def certificate(retiring: Retiring, ts: int) -> OrderCertificate:
    spec = retiring.spec
    return OrderCertificate(
        retiring.cert_id,
        retiring.account,
        retiring.order_id,
        retiring.coid,
        retiring.qty,
        spec.beneficiary,
        Purpose(spec.purpose),
        spec.claim,
        spec.period_start,
        spec.period_end,
        tuple(retiring.fills),
        ts,
    )


# -- the basket ----------------------------------------------------------------------------------


def check_basket(core: Core, cmd: BasketBuy) -> Reject | None:
    """Everything about the basket itself, before its books are looked at."""
    if cmd.account not in core.ledger.accounts:
        return Reject(Reason.UNKNOWN_ACCOUNT, f"no account {cmd.account}")
    if not 0 < cmd.qty <= BASKET_QTY_MAX:
        return Reject(Reason.INVALID_QUANTITY, f"quantity {cmd.qty}: 1 to {BASKET_QTY_MAX}")
    if not 0 < cmd.price <= MAX_PRICE or cmd.qty * cmd.price > core.ledger.cash_total_max:
        return Reject(Reason.INVALID_PRICE, f"limit {cmd.price} per tonne is out of range")
    if cmd.tif not in (TimeInForce.IOC, TimeInForce.FOK):
        return Reject(Reason.INVALID_TIF, "a basket is IOC or FOK: it never rests")
    if not 0 <= cmd.project_max <= BASKET_QTY_MAX or not 0 <= cmd.projects_min <= cmd.qty:
        return Reject(Reason.INVALID_QUANTITY, "project_max and projects_min out of range")
    if cmd.currency not in core.ledger.currencies:
        return Reject(Reason.UNKNOWN_CURRENCY, f"no currency {cmd.currency!r}")
    if cmd.retire is not None:
        refused = check_retire(cmd.retire, Side.BUY, False)
        if refused is not None:
            return refused
        if not certificates_left(core):
            return Reject(Reason.LIMIT_EXCEEDED, f"more than {CERTIFICATES_MAX} certificates")
    rejected = basket.check_entry(core.exchange, cmd.account, cmd.client_order_id, cmd.ts)
    if rejected is not None:
        return Reject(rejected.reason, rejected.text)
    return None


def _limit(book: OrderBook, price: int) -> int:
    """The most a basket pays in `book`: its limit, within the book's price band (as a
    market order never trades outside the band)."""
    return min(price, book.band_high)


def _fronts(book: OrderBook, price: int, account: int) -> Iterator[Order]:
    """The book's live asks up to `price`, in price-time order, until the buyer's own."""
    for key in sorted(k for k in book.asks if k <= price):
        for order in book.asks[key].orders:
            if not order.qty:
                continue  # cancelled, still in its level's queue
            if order.account == account:
                return
            yield order


def _portions(core: Core, order: Order, want: int, used: dict[str, int], cap: int) -> list[Any]:
    """What the basket may take from `order`'s next `want` tonnes, per project, under the
    cap: [(project, qty), ...] in delivery order, stopping at the first project capped."""
    project = core.exchange.books[order.series].series.project
    parts: list[Any]
    if project is not None:
        parts = [(project, order.qty)]
    else:  # a contract's seller delivers its held credits in hold order
        parts = [(key[0], n) for key, n in core.ledger.credit_holds[order.order_id].parts if n]
    taken: dict[str, int] = {}
    out = []
    left = want
    for p, n in parts:
        room = left if not cap else min(left, cap - used.get(p, 0) - taken.get(p, 0))
        if room <= 0:
            break
        k = min(n, room)
        out.append((p, k))
        taken[p] = taken.get(p, 0) + k
        left -= k
        if k < n or not left:
            break
    return out


def _whole_lots(portions: list[Any], lot: int) -> list[Any]:
    """`portions` cut back, from the end, to a whole number of the book's lots: a take
    leaves the maker a lot multiple, as every order in a book must be."""
    excess = sum(k for _, k in portions) % lot
    out = list(portions)
    while excess:
        p, k = out.pop()
        if k > excess:
            out.append((p, k - excess))
        excess -= min(k, excess)
    return out


def plan(core: Core, cmd: BasketBuy, series: list[str]) -> list[Step] | Reject:
    """The takes, cheapest front first across `series`' books (see the module docstring)."""
    books = core.exchange.books
    fronts = {
        sid: _fronts(books[sid], _limit(books[sid], cmd.price), cmd.account) for sid in series
    }
    heap: list[tuple[int, int, str, Order]] = []
    for sid, it in fronts.items():
        first = next(it, None)
        if first is not None:
            heappush(heap, (first.price, first.order_id, sid, first))
    steps: list[Step] = []
    used: dict[str, int] = {}
    left, cap = cmd.qty, cmd.project_max
    info = {sid: (books[sid].series.project, books[sid].series.lot) for sid in series}
    room = {sid: books[sid].series.max_order_qty for sid in series}  # one order's most a book
    while heap and left and len(steps) < BASKET_FILLS_MAX:
        _, _, sid, order = heappop(heap)
        project, lot = info[sid]
        want = min(left, order.qty, room[sid])
        if project is not None and not cap:  # the common case: one project, no cap
            took = want - want % lot
            portions: list[Any] = [(project, took)] if took else []
        else:
            portions = _whole_lots(_portions(core, order, want, used, cap), lot)
            took = sum(k for _, k in portions)
        room[sid] -= took
        if took:
            steps.append(Step(sid, took))
            left -= took
            for p, k in portions:
                used[p] = used.get(p, 0) + k
        if took == order.qty:  # the maker is used up: its book offers the next
            nxt = next(fronts[sid], None)
            if nxt is not None:
                heappush(heap, (nxt.price, nxt.order_id, sid, nxt))
    if cmd.tif is TimeInForce.FOK and left:
        return Reject(Reason.CANNOT_FILL, f"FOK: {cmd.qty - left} of {cmd.qty} t can be bought")
    if cmd.projects_min and len(used) < cmd.projects_min:
        return Reject(
            Reason.CANNOT_FILL,
            f"{len(used)} distinct projects can be bought, the basket asks for {cmd.projects_min}",
        )
    return steps


def apply_basket(core: Core, cmd: BasketBuy, events: list[Any]) -> Reject | None:
    """Check, plan and carry out the basket into `events` (after expiry); a refusal changes
    nothing."""
    refused = check_basket(core, cmd)
    if refused is not None:
        return refused
    try:
        expr = parse(cmd.screen)
    except ScreenError as exc:
        return Reject(Reason.INVALID_SCREEN, f"screen {exc}")
    series = [s.id for s, _ in core.screened(expr, cmd.ts) if s.currency == cmd.currency]
    steps = plan(core, cmd, [sid for sid in series if not core.exchange.books[sid].halted])
    if isinstance(steps, Reject):
        return steps
    ex, ledger = core.exchange, core.ledger
    order_id = ex.next_order_id
    refused = ledger.hold_cash(
        order_id, cmd.account, cmd.currency, core.fees.buy_hold(cmd.qty * cmd.price)
    )
    if refused is not None:
        return refused
    basket.open_basket(ex, cmd.account, cmd.client_order_id, cmd.price, cmd.qty, cmd.ts, events)
    start = len(events)
    filled = 0
    for step in steps:
        got = basket.take(
            ex,
            order_id,
            cmd.account,
            cmd.client_order_id,
            step.series,
            step.qty,
            _limit(ex.books[step.series], cmd.price),
            cmd.ts,
            events,
        )
        assert got == step.qty, "the plan is what the books hold"
        filled += got
    basket.close_basket(ex, order_id, cmd.account, cmd.qty - filled, cmd.tif, cmd.ts, events)
    if cmd.retire is not None:
        core._retiring = Retiring(order_id, cmd.account, cmd.client_order_id, cmd.retire)
    try:
        core._settle(cmd, events, start, order_id, Side.BUY)  # type: ignore[arg-type]
        settled = [e for e in events[start:] if isinstance(e, Settled)]
        events.append(
            BasketDone(
                order_id,
                cmd.account,
                cmd.client_order_id,
                filled,
                sum(e.price * e.qty for e in settled),
                tuple(sorted({r.project for e in settled for r in e.ranges})),
                cmd.ts,
            )
        )
        retiring = core._retiring
        if retiring is not None and retiring.fills:
            events.append(certificate(retiring, cmd.ts))
    finally:
        core._retiring = None
    return None
