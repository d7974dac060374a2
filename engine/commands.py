"""Commands the core accepts. Values, frozen; the gateway fills `account` from the session
and stamps `ts` (integer nanoseconds) once, so the core never reads a clock."""

from __future__ import annotations

from enum import Enum

import msgspec


class Side(str, Enum):
    BUY = "buy"
    SELL = "sell"


class OrderType(str, Enum):
    LIMIT = "limit"
    MARKET = "market"


class TimeInForce(str, Enum):
    GTC = "gtc"  # good till cancelled
    IOC = "ioc"  # immediate or cancel: the unfilled rest is cancelled
    FOK = "fok"  # fill or kill: all at once or nothing
    GTD = "gtd"  # good till date: expires at `expire_ts`, judged by command timestamps


class SelfTrade(str, Enum):
    """What happens when an order would trade against a resting order of the same account."""

    CANCEL_RESTING = "cancel_resting"
    CANCEL_INCOMING = "cancel_incoming"
    CANCEL_BOTH = "cancel_both"


class RetireFor(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """Buy-and-retire (issue 14): retire every credit a buy order receives, for
    `beneficiary`, in the same ledger transaction as each fill's settlement. `purpose` is a
    `settlement.events.Purpose` value; the settlement core checks all of it before the order
    enters. The engine only carries it."""

    beneficiary: str
    purpose: str = "voluntary"
    claim: str = ""
    period_start: str = ""
    period_end: str = ""


class NewOrder(
    msgspec.Struct, frozen=True, kw_only=True, tag="new_order", tag_field="cmd", gc=False
):
    """Place an order. `price` is ignored for market orders; `max_notional` caps what a market
    buy may spend (price x qty, minor units; 0 = no cap). `retire`: a buy-and-retire order,
    which never rests (IOC, FOK or market)."""

    account: int
    client_order_id: str
    series: str
    side: Side
    qty: int
    price: int = 0
    type: OrderType = OrderType.LIMIT
    tif: TimeInForce = TimeInForce.GTC
    expire_ts: int = 0
    post_only: bool = False
    stp: SelfTrade = SelfTrade.CANCEL_INCOMING
    max_notional: int = 0
    ts: int = 0
    retire: RetireFor | None = None


class Cancel(msgspec.Struct, frozen=True, kw_only=True, tag="cancel", tag_field="cmd", gc=False):
    """Cancel one open order, named by exchange `order_id` or, when that is 0, by the
    account's `client_order_id`."""

    account: int
    order_id: int = 0
    client_order_id: str = ""
    ts: int = 0


class Amend(msgspec.Struct, frozen=True, kw_only=True, tag="amend", tag_field="cmd", gc=False):
    """Change an open order's price and/or open quantity (0 = unchanged).

    Quantity down at the same price keeps time priority; a price change or quantity up loses
    it (the order goes to the back of its new level, and may trade if it now crosses)."""

    account: int
    order_id: int
    price: int = 0
    qty: int = 0
    ts: int = 0


class MassCancel(
    msgspec.Struct, frozen=True, kw_only=True, tag="mass_cancel", tag_field="cmd", gc=False
):
    """Cancel every open order of an account, or only those in one series."""

    account: int
    series: str = ""
    ts: int = 0


class Halt(msgspec.Struct, frozen=True, kw_only=True, tag="halt", tag_field="cmd"):
    """Operator: stop trading a series; its book accepts cancels only until resumed."""

    series: str
    ts: int = 0


class Resume(msgspec.Struct, frozen=True, kw_only=True, tag="resume", tag_field="cmd"):
    series: str
    ts: int = 0


class SetReferencePrice(
    msgspec.Struct, frozen=True, kw_only=True, tag="set_reference_price", tag_field="cmd"
):
    """Operator: move the centre of a series' price band."""

    series: str
    price: int
    ts: int = 0


class AdvanceTime(msgspec.Struct, frozen=True, kw_only=True, tag="advance_time", tag_field="cmd"):
    """Time has reached `ts`: expire the GTD orders due by then, and nothing else.

    The core has no clock, so expiry is judged by command timestamps; in a quiet market no
    command would come. The gateway journals one of these when the earliest expiry
    (`Exchange.next_expiry_ts`) is due, so the expiry is applied, reported and replayed at
    that moment like any other command."""

    ts: int = 0


Command = NewOrder | Cancel | Amend | MassCancel | Halt | Resume | SetReferencePrice | AdvanceTime
