"""Events the core emits. Values, frozen, array-like for compact encoding.

`Reason` is the one table of rejection codes for the whole exchange (engine, settlement,
gateway). It only ever grows: clients key on these strings, so a code is never renamed or
reused.
"""

from __future__ import annotations

from enum import Enum

import msgspec

from engine.commands import Side


class Reason(str, Enum):
    # engine
    UNKNOWN_SERIES = "UNKNOWN_SERIES"
    SERIES_HALTED = "SERIES_HALTED"
    INVALID_PRICE = "INVALID_PRICE"
    PRICE_OUT_OF_BAND = "PRICE_OUT_OF_BAND"
    INVALID_QUANTITY = "INVALID_QUANTITY"
    LOT_SIZE = "LOT_SIZE"
    MAX_ORDER_SIZE = "MAX_ORDER_SIZE"
    DUPLICATE_CLIENT_ORDER_ID = "DUPLICATE_CLIENT_ORDER_ID"
    UNKNOWN_ORDER = "UNKNOWN_ORDER"
    INVALID_TIF = "INVALID_TIF"
    INVALID_EXPIRY = "INVALID_EXPIRY"
    POST_ONLY_WOULD_TRADE = "POST_ONLY_WOULD_TRADE"
    NO_CHANGE = "NO_CHANGE"
    INVALID_CLIENT_ORDER_ID = "INVALID_CLIENT_ORDER_ID"
    # settlement
    INSUFFICIENT_CASH = "INSUFFICIENT_CASH"
    INSUFFICIENT_CREDITS = "INSUFFICIENT_CREDITS"
    MARKET_BUY_NEEDS_CASH_LIMIT = "MARKET_BUY_NEEDS_CASH_LIMIT"
    UNKNOWN_ACCOUNT = "UNKNOWN_ACCOUNT"
    UNKNOWN_CURRENCY = "UNKNOWN_CURRENCY"
    UNKNOWN_PROJECT = "UNKNOWN_PROJECT"
    ACCOUNT_EXISTS = "ACCOUNT_EXISTS"
    INVALID_AMOUNT = "INVALID_AMOUNT"
    INVALID_SERIAL_BLOCK = "INVALID_SERIAL_BLOCK"
    SERIALS_OVERLAP = "SERIALS_OVERLAP"
    SERIALS_RETIRED = "SERIALS_RETIRED"
    SERIALS_NOT_HELD = "SERIALS_NOT_HELD"
    CREDITS_HELD = "CREDITS_HELD"
    INVALID_RETIREMENT = "INVALID_RETIREMENT"
    ALREADY_LISTED = "ALREADY_LISTED"
    # gateway
    MALFORMED_MESSAGE = "MALFORMED_MESSAGE"
    FRAME_TOO_LARGE = "FRAME_TOO_LARGE"
    NOT_LOGGED_ON = "NOT_LOGGED_ON"
    ALREADY_LOGGED_ON = "ALREADY_LOGGED_ON"
    UNKNOWN_KEY = "UNKNOWN_KEY"
    BAD_SIGNATURE = "BAD_SIGNATURE"
    STALE_TIMESTAMP = "STALE_TIMESTAMP"
    REUSED_NONCE = "REUSED_NONCE"
    RATE_LIMITED = "RATE_LIMITED"
    TOO_MANY_OPEN_ORDERS = "TOO_MANY_OPEN_ORDERS"
    NOT_PERMITTED = "NOT_PERMITTED"
    SLOW_CONSUMER = "SLOW_CONSUMER"
    IDLE_TIMEOUT = "IDLE_TIMEOUT"
    NOT_SUPPORTED = "NOT_SUPPORTED"
    TOO_MANY_SESSIONS = "TOO_MANY_SESSIONS"
    KEY_REVOKED = "KEY_REVOKED"
    TOO_MANY_LOGON_FAILURES = "TOO_MANY_LOGON_FAILURES"
    # settlement, added later (codes only grow)
    LIMIT_EXCEEDED = "LIMIT_EXCEEDED"
    UNKNOWN_REGISTRY = "UNKNOWN_REGISTRY"
    # the carbon catalogue (issue 13)
    INVALID_SCREEN = "INVALID_SCREEN"
    RULE_IN_PAST = "RULE_IN_PAST"
    NOT_A_CONTRACT = "NOT_A_CONTRACT"
    PROJECT_SUSPENDED = "PROJECT_SUSPENDED"
    NOT_SUSPENDED = "NOT_SUSPENDED"
    INVALID_LABEL = "INVALID_LABEL"
    # baskets (issue 14)
    CANNOT_FILL = "CANNOT_FILL"  # a FOK basket short of its quantity, or of its caps


class CancelReason(str, Enum):
    """Why an open order (or the rest of one) left the book without trading."""

    USER = "user"
    MASS_CANCEL = "mass_cancel"
    IMMEDIATE_OR_CANCEL = "ioc"
    FILL_OR_KILL = "fok"
    SELF_TRADE = "self_trade"
    MARKET_NO_LIQUIDITY = "market_no_liquidity"
    NOTIONAL_LIMIT = "notional_limit"
    OPERATOR = "operator"
    INELIGIBLE = "ineligible"  # a rule version or label change made its credits ineligible
    SUSPENDED = "suspended"  # the registry suspended the project its credits come from


class Accepted(
    msgspec.Struct, frozen=True, array_like=True, gc=False, tag="accepted", tag_field="event"
):
    order_id: int
    account: int
    client_order_id: str
    series: str
    side: Side
    price: int
    qty: int
    ts: int


class Rejected(
    msgspec.Struct, frozen=True, array_like=True, gc=False, tag="rejected", tag_field="event"
):
    """A command that changed nothing, with a stable `reason` and readable `text`."""

    account: int
    client_order_id: str
    order_id: int
    reason: Reason
    text: str
    ts: int


class Trade(msgspec.Struct, frozen=True, array_like=True, gc=False, tag="trade", tag_field="event"):
    """One fill between a resting (maker) and an incoming (taker) order, at the maker's price."""

    trade_id: int
    series: str
    price: int
    qty: int
    aggressor: Side
    maker_order_id: int
    maker_account: int
    taker_order_id: int
    taker_account: int
    ts: int

    @property
    def buyer(self) -> int:
        return self.taker_account if self.aggressor is Side.BUY else self.maker_account

    @property
    def seller(self) -> int:
        return self.maker_account if self.aggressor is Side.BUY else self.taker_account

    @property
    def buy_order_id(self) -> int:
        return self.taker_order_id if self.aggressor is Side.BUY else self.maker_order_id

    @property
    def sell_order_id(self) -> int:
        return self.maker_order_id if self.aggressor is Side.BUY else self.taker_order_id


class Cancelled(
    msgspec.Struct, frozen=True, array_like=True, gc=False, tag="cancelled", tag_field="event"
):
    """`qty` open tonnes of `order_id` left the book; the order is no longer open."""

    order_id: int
    account: int
    series: str
    side: Side
    qty: int
    reason: CancelReason
    ts: int


class Expired(
    msgspec.Struct, frozen=True, array_like=True, gc=False, tag="expired", tag_field="event"
):
    """A GTD order reached its `expire_ts`; its open `qty` left the book."""

    order_id: int
    account: int
    series: str
    side: Side
    qty: int
    ts: int


class Amended(
    msgspec.Struct, frozen=True, array_like=True, gc=False, tag="amended", tag_field="event"
):
    """An open order now has `price` and open `qty`; `priority_kept` says whether it kept its
    place in the queue. Any trades the amended order makes follow this event."""

    order_id: int
    account: int
    series: str
    side: Side
    old_price: int
    old_qty: int
    price: int
    qty: int
    priority_kept: bool
    ts: int


class BookDelta(
    msgspec.Struct, frozen=True, array_like=True, gc=False, tag="book", tag_field="event"
):
    """L2: the total open quantity at `price` on `side` of `series` is now `qty` (0 = level
    gone). `seq` counts deltas per series, so a client can detect a gap."""

    series: str
    seq: int
    side: Side
    price: int
    qty: int


class StatusChanged(
    msgspec.Struct, frozen=True, array_like=True, gc=False, tag="status", tag_field="event"
):
    """A series was halted or resumed, or its reference price moved."""

    series: str
    halted: bool
    ref_price: int
    ts: int


Event = Accepted | Rejected | Trade | Cancelled | Expired | Amended | BookDelta | StatusChanged
