"""The wire protocol: one message schema (msgspec Structs, tagged unions), two encodings.

- TCP: msgpack. Each frame is a 4-byte big-endian unsigned length, then that many bytes of
  msgpack: either one message (a map) or an array of messages.
- WebSocket: JSON. Each text (or binary) WebSocket message is one JSON object or an array
  of objects.

Every message is a map with a `"type"` field naming it (the tag). Prices are integer
currency minor units per tonne, quantities whole tonnes, times integer nanoseconds since the
Unix epoch. `req_id` is the client's correlation number, echoed in the answer.

This module is pure: encoders and decoders are built once and reused, and `FrameReader`
turns a byte stream into frames without touching a socket. gateway/wire/PROTOCOL.md is the
reference for client writers; keep it true when this file changes.
"""

from __future__ import annotations

import struct
from typing import Annotated, Any

import msgspec

from engine.commands import OrderType, SelfTrade, Side, TimeInForce
from engine.events import CancelReason, Reason
from screening.language import SCREEN_TEXT_MAX

__all__ = [
    "ClientMessage",
    "ServerMessage",
    "FrameReader",
    "FrameTooLarge",
    "MalformedFrame",
]

LENGTH = struct.Struct(">I")
HEADER_BYTES = 4

# Bounds on what a client may send, checked while decoding (a value outside is a
# MALFORMED_MESSAGE): integers stay well inside int64 everywhere downstream (SQLite, other
# languages), strings and lists stay small. Meaning (a positive price, a known series) is
# the core's to check, with its own reason codes.
INT_ABS_MAX = 1 << 62
STR_CHARS_MAX = 256
SERIES_PER_REQUEST_MAX = 256
SERIAL_RANGES_MAX = 256
Int = Annotated[int, msgspec.Meta(ge=-INT_ABS_MAX, le=INT_ABS_MAX)]
Str = Annotated[str, msgspec.Meta(max_length=STR_CHARS_MAX)]
SeriesIds = Annotated[list[Str], msgspec.Meta(max_length=SERIES_PER_REQUEST_MAX)]
# screening-language text (a screen, a contract's rule): its own bound, the language's
# twice the language's own limit: a screen a little too long still decodes, so that the
# language refuses it with its position (INVALID_SCREEN "at 4096: ..."); a frame of
# anything longer is malformed
SCREEN_WIRE_CHARS_MAX = 2 * SCREEN_TEXT_MAX
ScreenText = Annotated[str, msgspec.Meta(max_length=SCREEN_WIRE_CHARS_MAX)]


class SerialRange(msgspec.Struct, frozen=True, array_like=True):
    """[first, last] inclusive serials of one project and vintage: last - first + 1 tonnes.
    On the wire an array: [project, vintage, first, last, batch, registry_serial]. `batch`
    is the registry issuance batch the serials belong to (the registry's serial string with
    the range cut out, `ACR-FR-1129-2025-2917-*`; "" for serials deposited without one), part
    of their identity: two batches can share numbers. `registry_serial` is the range as its
    registry writes it (`ACR-FR-1129-2025-2917-30932 to 30950`), sent by the server, ignored
    when sent to it. Sent both ways (`retire` `serials`; fills, holdings, certificates), so
    its fields carry the client bounds; a client may send the first four or five items."""

    project: Str
    vintage: Int
    first: Int
    last: Int
    batch: Str = ""
    registry_serial: Str = ""


SerialRanges = Annotated[list[SerialRange], msgspec.Meta(max_length=SERIAL_RANGES_MAX)]


def serial_range(r: Any) -> SerialRange:
    """The wire form of a settlement `SerialRange` (settlement/serials.py)."""
    batch = r.batch
    return SerialRange(r.project, r.vintage, r.first, r.last, batch, str(r) if batch else "")


# gc=False: messages are plain data and never part of a reference cycle, so the cyclic
# garbage collector need not track them. Both ends make and keep many (a client keeps a
# history); tracked, they made collections a large share of a pipelined client's time.


def _client(tag: str) -> dict[str, Any]:
    return {
        "tag": tag,
        "tag_field": "type",
        "kw_only": True,
        "forbid_unknown_fields": True,
        "gc": False,
    }


def _server(tag: str) -> dict[str, Any]:
    return {"tag": tag, "tag_field": "type", "kw_only": True, "gc": False}


# -- client -> server ----------------------------------------------------------------------


class Logon(msgspec.Struct, frozen=True, **_client("logon")):
    """Open an authenticated session. `signature` is lowercase hex of
    HMAC-SHA256(secret, f"{key_id}\\n{ts}\\n{nonce}".encode()) (see PROTOCOL.md)."""

    key_id: Str
    ts: Int
    nonce: Str
    signature: Str
    cancel_on_disconnect: bool = False
    req_id: Int = 0


class RetireFor(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, gc=False):
    """Buy-and-retire: every credit the order receives is retired for `beneficiary` in the
    same ledger transaction as its fill. The texts are bounded as `retire`'s are; `purpose`:
    voluntary | corsia | article6 | other; the reporting period is both ISO dates or neither.
    One `order_certificate` per order lists every fill's serials."""

    beneficiary: Str
    purpose: Str = "voluntary"
    claim: Str = ""
    period_start: Str = ""
    period_end: Str = ""


class NewOrder(msgspec.Struct, frozen=True, **_client("new_order")):
    """A new order; `retire_for` makes it a buy-and-retire order, which never rests (a buy,
    IOC or FOK, or a market buy)."""

    client_order_id: Str
    series: Str
    side: Side
    qty: Int
    price: Int = 0
    order_type: OrderType = OrderType.LIMIT
    tif: TimeInForce = TimeInForce.GTC
    expire_ts: Int = 0
    post_only: bool = False
    stp: SelfTrade = SelfTrade.CANCEL_INCOMING
    max_notional: Int = 0
    retire_for: RetireFor | None = None


class BasketBuy(msgspec.Struct, frozen=True, **_client("basket_buy")):
    """A screened basket buy: up to `qty` tonnes from every series of `currency` whose
    credits `screen` admits, cheapest first across books, never above `price` per tonne.
    IOC (the rest is cancelled) or FOK (all or nothing); it never rests. `project_max`: at
    most that many tonnes from one project (0: no cap); `projects_min`: at least that many
    distinct projects or nothing trades (0: no floor). `retire_for`: buy-and-retire, one
    `order_certificate`. Answered like a `new_order` (by `client_order_id`), then a
    `basket_done` summary carrying `req_id`."""

    client_order_id: Str
    screen: ScreenText
    qty: Int
    price: Int
    currency: Str = "USD"
    tif: TimeInForce = TimeInForce.IOC
    project_max: Int = 0
    projects_min: Int = 0
    retire_for: RetireFor | None = None
    req_id: Int = 0


class Amend(msgspec.Struct, frozen=True, **_client("amend")):
    order_id: Int
    price: Int = 0
    qty: Int = 0
    req_id: Int = 0


class Cancel(msgspec.Struct, frozen=True, **_client("cancel")):
    order_id: Int = 0
    client_order_id: Str = ""
    req_id: Int = 0


class MassCancel(msgspec.Struct, frozen=True, **_client("mass_cancel")):
    series: Str = ""
    req_id: Int = 0


class Deposit(msgspec.Struct, frozen=True, **_client("deposit")):
    """Cash in (only for keys with the `fund` permission)."""

    currency: Str
    amount: Int
    req_id: Int = 0


class CreditBlock(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, gc=False):
    """The fields of a registry block moving in or out (`deposit_credits`,
    `withdraw_credits`): `start`, `end` and `quantity` are checked against each other under
    `convention` (`inclusive`: `end` is the last serial; `half_open`: one past it).

    The block's registry identity, either way: `serial`, the registry's own serial string
    (`ACR-FR-1129-2025-2917-30932 to 35143`; for Cercarbono the batch id, with `start` and
    `end`), which the server reads by the project's registry rules, giving `start` and `end`
    (if sent as well, they must agree) and the batch; or `batch` with `start` and `end`. With
    neither, the block has no registry batch and is identified by project and vintage."""

    project: Str
    vintage: Int
    quantity: Int
    start: Int = 0
    end: Int = 0
    convention: Str = "inclusive"
    ref: Str = ""
    batch: Str = ""
    serial: Str = ""
    req_id: Int = 0


class DepositCredits(CreditBlock, frozen=True, **_client("deposit_credits")):
    """A registry block in (only for keys with the `fund` permission), as the registry
    writes it (see `CreditBlock`)."""


class Withdraw(msgspec.Struct, frozen=True, **_client("withdraw")):
    currency: Str
    amount: Int
    req_id: Int = 0


class WithdrawCredits(CreditBlock, frozen=True, **_client("withdraw_credits")):
    """Exact available serials out to the registry (only for keys with the `fund`
    permission); the block is written as for `deposit_credits`, its batch included."""


class Retire(msgspec.Struct, frozen=True, **_client("retire")):
    """Retire `qty` available tonnes of `series` (oldest serials first) held by the session's
    account or, with `serials` (and no `series`, `qty` 0), exactly those inclusive ranges, for
    `beneficiary`. `purpose`: voluntary | corsia | article6 | other; the reporting period is
    both ISO dates `YYYY-MM-DD` or neither (left out: the certificate states no period).
    The answer is one `certificate` per project and vintage."""

    beneficiary: Str
    series: Str = ""
    qty: Int = 0
    serials: SerialRanges = []
    purpose: Str = "voluntary"
    claim: Str = ""
    period_start: Str = ""
    period_end: Str = ""
    req_id: Int = 0


class QueryOpenOrders(msgspec.Struct, frozen=True, **_client("open_orders")):
    series: Str = ""
    req_id: Int = 0


class QueryBalances(msgspec.Struct, frozen=True, **_client("balances")):
    req_id: Int = 0


class QueryHoldings(msgspec.Struct, frozen=True, **_client("holdings")):
    req_id: Int = 0


class QuerySeries(msgspec.Struct, frozen=True, **_client("series")):
    req_id: Int = 0


class QueryProjects(msgspec.Struct, frozen=True, **_client("projects")):
    """The registry projects behind the series (what a buyer screens on); `ids` empty: all."""

    ids: SeriesIds = []
    req_id: Int = 0


class Subscribe(msgspec.Struct, frozen=True, **_client("subscribe")):
    """Start (or restart, after a gap) the L2 book and public trades of each series: the
    answer is a `book_snapshot` per series, then `book_update`s with seq > its seq."""

    series: SeriesIds
    req_id: Int = 0


class Unsubscribe(msgspec.Struct, frozen=True, **_client("unsubscribe")):
    series: SeriesIds
    req_id: Int = 0


class Heartbeat(msgspec.Struct, frozen=True, **_client("heartbeat")):
    req_id: Int = 0


# -- operator: the carbon catalogue (issue 13); every one needs the `operator` permission ---


class ListContract(msgspec.Struct, frozen=True, **_client("list_contract")):
    """Open the book of a standardized contract `series` (an id no series has), whose
    deliverable credits are those `rule` (screening language) admits: rule version 1,
    effective at once. The trading parameters are the series' own."""

    series: Str
    rule: ScreenText
    currency: Str = "USD"
    tick: Int = 1
    lot: Int = 1
    ref_price: Int = 0
    band_bps: Int = 0
    max_order_qty: Int = 1_000_000
    ref: Str = ""
    req_id: Int = 0


class AddRuleVersion(msgspec.Struct, frozen=True, **_client("add_rule_version")):
    """A contract's next rule version, governing it from `effective` (ns; 0: at once)."""

    series: Str
    rule: ScreenText
    effective: Int = 0
    ref: Str = ""
    req_id: Int = 0


class ChangeLabel(msgspec.Struct, frozen=True, **_client("change_label")):
    """A registry granted (`present`) or withdrew `label` on `project` (or on one `vintage`
    of it; 0: every vintage), from `effective` (ns; 0: at once)."""

    project: Str
    label: Str
    present: bool
    vintage: Int = 0
    effective: Int = 0
    ref: Str = ""
    req_id: Int = 0


class SuspendProject(msgspec.Struct, frozen=True, **_client("suspend_project")):
    """The registry suspended `project`: its books halt, its resting orders are cancelled."""

    project: Str
    ref: Str = ""
    req_id: Int = 0


class ReinstateProject(msgspec.Struct, frozen=True, **_client("reinstate_project")):
    project: Str
    ref: Str = ""
    req_id: Int = 0


class CancelCredits(CreditBlock, frozen=True, **_client("cancel_credits")):
    """A reversal: the registry cancelled these exact serials from `account`'s buffer pool
    (the block written as for `deposit_credits`). The one request that names an account:
    the operator acts on another account's credits."""

    account: Int


class Screen(msgspec.Struct, frozen=True, **_client("screen")):
    """Which series deliver credits that `expr` (screening language) admits, now."""

    expr: ScreenText
    req_id: Int = 0


class QueryContract(msgspec.Struct, frozen=True, **_client("query_contract")):
    """A standardized contract's rule versions."""

    series: Str
    req_id: Int = 0


OPERATOR_REQUESTS = (
    ListContract,
    AddRuleVersion,
    ChangeLabel,
    SuspendProject,
    ReinstateProject,
    CancelCredits,
)


ClientMessage = (
    Logon
    | NewOrder
    | BasketBuy
    | Amend
    | Cancel
    | MassCancel
    | Deposit
    | DepositCredits
    | Withdraw
    | WithdrawCredits
    | Retire
    | QueryOpenOrders
    | QueryBalances
    | QueryHoldings
    | QuerySeries
    | QueryProjects
    | Subscribe
    | Unsubscribe
    | Heartbeat
    | ListContract
    | AddRuleVersion
    | ChangeLabel
    | SuspendProject
    | ReinstateProject
    | CancelCredits
    | Screen
    | QueryContract
)

# -- server -> client ----------------------------------------------------------------------


class LogonAck(msgspec.Struct, **_server("logon_ack")):
    account: int
    session_id: int
    heartbeat_s: float
    idle_timeout_s: float
    messages_per_s: int
    frame_bytes_max: int
    open_orders_max: int
    cancel_on_disconnect: bool
    req_id: int = 0


class LogonReject(msgspec.Struct, **_server("logon_reject")):
    reason: Reason
    text: str
    req_id: int = 0


class OrderAck(msgspec.Struct, **_server("order_ack")):
    order_id: int
    client_order_id: str
    series: str
    side: Side
    price: int
    qty: int
    ts: int


class Reject(msgspec.Struct, **_server("reject")):
    """A request that changed nothing. `reason` is a stable code (PROTOCOL.md lists them)."""

    reason: Reason
    text: str
    client_order_id: str = ""
    order_id: int = 0
    req_id: int = 0
    ts: int = 0


class Fill(msgspec.Struct, **_server("fill")):
    """Execution report: one trade of one of your orders. `fee` is in the series' currency;
    `serials` are the ranges received (buyer) or delivered (seller) once settled."""

    trade_id: int
    order_id: int
    client_order_id: str
    series: str
    side: Side
    price: int
    qty: int
    leaves_qty: int
    liquidity: str  # "maker" | "taker"
    fee: int = 0
    serials: list[SerialRange] = []
    ts: int = 0
    rule_version: int = 0  # a contract's fill: the rule version it traded under (0: none)


class Cancelled(msgspec.Struct, **_server("cancelled")):
    order_id: int
    client_order_id: str
    series: str
    side: Side
    qty: int
    reason: CancelReason
    ts: int
    req_id: int = 0


class Expired(msgspec.Struct, **_server("expired")):
    order_id: int
    client_order_id: str
    series: str
    side: Side
    qty: int
    ts: int


class Amended(msgspec.Struct, **_server("amended")):
    order_id: int
    series: str
    side: Side
    old_price: int
    old_qty: int
    price: int
    qty: int
    priority_kept: bool
    ts: int
    req_id: int = 0


class Done(msgspec.Struct, **_server("done")):
    """A request with no other answer of its own was applied (mass cancel, subscribe,
    unsubscribe, deposit, deposit_credits, withdraw, withdraw_credits, and the operator's
    change_label, suspend_project, reinstate_project, cancel_credits); `count` is how many
    items it touched (for the operator's requests: the orders it cancelled)."""

    request: str
    count: int = 0
    req_id: int = 0


class CashBalance(msgspec.Struct, frozen=True, array_like=True):
    currency: str
    total: int
    held: int


class Balances(msgspec.Struct, **_server("balances")):
    account: int
    cash: list[CashBalance]
    req_id: int = 0


class Holding(msgspec.Struct, frozen=True):
    """Credits of one project and vintage: `serials` are every serial the account owns (exact
    ranges); `held` tonnes of them are reserved by open sell orders (holds are counts, not
    serials: a fill delivers the lowest serials), `available` = owned - held."""

    project: str
    vintage: int
    available: int
    held: int
    serials: list[SerialRange]


class Holdings(msgspec.Struct, **_server("holdings")):
    account: int
    holdings: list[Holding]
    req_id: int = 0


class OpenOrder(msgspec.Struct, frozen=True, array_like=True):
    order_id: int
    client_order_id: str
    series: str
    side: Side
    price: int
    qty: int
    tif: TimeInForce


class OpenOrders(msgspec.Struct, **_server("open_orders")):
    orders: list[OpenOrder]
    req_id: int = 0


class SeriesInfo(msgspec.Struct, frozen=True):
    """A series as `series_list` gives it. A standardized contract listed with a rule has
    no standard, mitigation or vintage (`""`, null, 0): its rule says what it delivers."""

    id: str
    standard: str
    mitigation: str | None
    vintage: int
    project: str | None
    currency: str
    tick: int
    lot: int
    band_low: int
    band_high: int
    max_order_qty: int
    halted: bool


class SeriesList(msgspec.Struct, **_server("series_list")):
    series: list[SeriesInfo]
    req_id: int = 0


class ProjectInfo(msgspec.Struct, frozen=True):
    """A registry project as the exchange lists it: the attributes buyers' guides screen on.
    Empty strings, an empty list or a null rating where the registry export says nothing."""

    id: str
    registry: str
    name: str
    country: str
    category: str
    project_type: str
    mitigation: str | None  # avoidance | removal
    basis: str | None  # nature | tech
    methodology: str
    sdgs: list[int]
    labels: list[str]
    rating: str | None


class ProjectList(msgspec.Struct, **_server("project_list")):
    projects: list[ProjectInfo]
    req_id: int = 0


class RuleVersionInfo(msgspec.Struct, frozen=True, array_like=True):
    """One version of a contract's rule: `[version, effective, rule]`."""

    version: int
    effective: int
    rule: str


class RuleVersionAdded(msgspec.Struct, **_server("rule_version")):
    """A contract was listed (version 1) or given a new rule version: the record's fields."""

    series: str
    version: int
    effective: int
    rule: str
    ts: int
    req_id: int = 0


class ContractRules(msgspec.Struct, **_server("contract_rules")):
    """Answer to `query_contract`: every rule version, oldest first."""

    series: str
    versions: list[RuleVersionInfo]
    req_id: int = 0


class CreditInfo(msgspec.Struct, frozen=True):
    """A project and vintage line a screen admitted, with its attributes at the screen's time."""

    project: str
    registry: str
    standard: str
    vintage: int
    mitigation: str | None
    basis: str | None
    category: str
    methodology: str
    project_type: str
    country: str
    sdgs: list[int]
    labels: list[str]
    rating: str | None


class ScreenHitInfo(msgspec.Struct, frozen=True):
    """A series a screen matched: its book's top, last price and tonnes offered, and the
    credits it delivers that the screen admits. `best_bid`, `best_ask`, `last_price` null:
    none. `rule_version` 0 and `rule` "" for a project's series."""

    series: str
    currency: str
    halted: bool
    rule_version: int
    rule: str
    best_bid: int | None
    best_ask: int | None
    last_price: int | None
    offered: int
    credits: list[CreditInfo]


class ScreenResult(msgspec.Struct, **_server("screen_result")):
    hits: list[ScreenHitInfo]
    req_id: int = 0


class Certificate(msgspec.Struct, **_server("certificate")):
    """A retirement certificate: these serials can never trade again. `record_seq` and
    `record_hash` locate its settlement-log record, which proves it."""

    cert_id: str
    account: int
    project: str
    vintage: int
    qty: int
    serials: list[SerialRange]
    beneficiary: str
    purpose: str
    claim: str
    period_start: str
    period_end: str
    ts: int
    record_seq: int
    record_hash: str
    req_id: int = 0


class BasketDone(msgspec.Struct, **_server("basket_done")):
    """A basket's summary, after its fills (and the cancel of any rest): `filled` tonnes
    for `notional` minor units before fees, so the average price per tonne is
    notional / filled (integers only on the wire: a client divides, and rounds as it
    likes); `projects` the registry projects the credits came from, sorted."""

    order_id: int
    client_order_id: str
    filled: int
    notional: int
    projects: list[str]
    ts: int
    req_id: int = 0


class CertificateFillInfo(msgspec.Struct, frozen=True):
    """One fill on an order's certificate: its trade, book, the serials it retired and the
    seq and hash of its `fill_retirement` settlement-log record."""

    trade_id: int
    series: str
    qty: int
    serials: list[SerialRange]
    record_seq: int
    record_hash: str


class OrderCertificate(msgspec.Struct, **_server("order_certificate")):
    """The one retirement certificate of a buy-and-retire order (or basket): every fill's
    retired serials in the registry's strings, each checkable against its record."""

    cert_id: str
    account: int
    order_id: int
    client_order_id: str
    qty: int
    beneficiary: str
    purpose: str
    claim: str
    period_start: str
    period_end: str
    fills: list[CertificateFillInfo]
    ts: int
    req_id: int = 0


class PublicTrade(msgspec.Struct, **_server("trade")):
    series: str
    trade_id: int
    price: int
    qty: int
    aggressor: Side
    ts: int


class BookSnapshot(msgspec.Struct, **_server("book_snapshot")):
    """The whole L2 book of `series` as of its delta number `seq`: apply later
    `book_update`s with seq = seq + 1, seq + 2, ...; bids and asks best first."""

    series: str
    seq: int
    bids: list[tuple[int, int]]
    asks: list[tuple[int, int]]
    req_id: int = 0


class BookUpdate(msgspec.Struct, **_server("book_update")):
    """The open quantity at `price` on `side` of `series` is now `qty` (0: level gone)."""

    series: str
    seq: int
    side: Side
    price: int
    qty: int


class SeriesStatus(msgspec.Struct, **_server("status")):
    series: str
    halted: bool
    ref_price: int
    ts: int


class ServerHeartbeat(msgspec.Struct, **_server("heartbeat")):
    ts: int
    req_id: int = 0


class Goodbye(msgspec.Struct, **_server("goodbye")):
    """The last message before the server closes the connection, and why."""

    reason: Reason
    text: str


ServerMessage = (
    LogonAck
    | LogonReject
    | OrderAck
    | Reject
    | Fill
    | Cancelled
    | Expired
    | Amended
    | Done
    | Balances
    | Holdings
    | OpenOrders
    | SeriesList
    | ProjectList
    | RuleVersionAdded
    | ContractRules
    | ScreenResult
    | Certificate
    | BasketDone
    | OrderCertificate
    | PublicTrade
    | BookSnapshot
    | BookUpdate
    | SeriesStatus
    | ServerHeartbeat
    | Goodbye
)

# -- codecs (built once) -------------------------------------------------------------------

_msgpack_enc = msgspec.msgpack.Encoder()
_json_enc = msgspec.json.Encoder()
_client_msgpack = msgspec.msgpack.Decoder(list[ClientMessage] | ClientMessage)
_client_json = msgspec.json.Decoder(list[ClientMessage] | ClientMessage)
_server_msgpack = msgspec.msgpack.Decoder(list[ServerMessage] | ServerMessage)
_server_json = msgspec.json.Decoder(list[ServerMessage] | ServerMessage)


class MalformedFrame(ValueError):
    """A frame whose body is not a valid message or array of messages."""


class FrameTooLarge(ValueError):
    """A length prefix above the limit: the stream cannot be trusted any more."""


def _as_list(decoded: Any) -> list[Any]:
    return decoded if type(decoded) is list else [decoded]


def decode_client_msgpack(body: bytes | memoryview) -> list[Any]:
    try:
        return _as_list(_client_msgpack.decode(body))
    except msgspec.DecodeError as exc:
        raise MalformedFrame(str(exc)) from None


def decode_client_json(body: bytes | str) -> list[Any]:
    try:
        return _as_list(_client_json.decode(body))
    except msgspec.DecodeError as exc:
        raise MalformedFrame(str(exc)) from None


def decode_server_msgpack(body: bytes | memoryview) -> list[Any]:
    return _as_list(_server_msgpack.decode(body))


def decode_server_json(body: bytes | str) -> list[Any]:
    return _as_list(_server_json.decode(body))


def encode_frame(messages: list[Any]) -> bytes:
    """One TCP frame carrying `messages` (a msgpack array behind a 4-byte length)."""
    body = _msgpack_enc.encode(messages)
    return LENGTH.pack(len(body)) + body


def encode_json(messages: list[Any]) -> bytes:
    """One WebSocket message carrying `messages` (a JSON array)."""
    return _json_enc.encode(messages)


class FrameReader:
    """Splits a TCP byte stream into frame bodies; pure, no I/O.

    `feed(data)` returns the bodies completed by `data` (possibly none, possibly several).
    A length above `frame_bytes_max` raises `FrameTooLarge`; the reader is then unusable,
    because the stream has lost its framing.
    """

    __slots__ = ("frame_bytes_max", "_buf")

    def __init__(self, frame_bytes_max: int) -> None:
        self.frame_bytes_max = frame_bytes_max
        self._buf = bytearray()

    @property
    def buffered_bytes(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes]:
        buf = self._buf
        buf += data
        frames: list[bytes] = []
        pos = 0
        end = len(buf)
        limit = self.frame_bytes_max
        while end - pos >= HEADER_BYTES:
            (size,) = LENGTH.unpack_from(buf, pos)
            if size > limit:
                raise FrameTooLarge(f"frame of {size} bytes exceeds the limit of {limit}")
            if end - pos - HEADER_BYTES < size:
                break
            start = pos + HEADER_BYTES
            frames.append(bytes(buf[start : start + size]))
            pos = start + size
        if pos:
            del buf[:pos]
        return frames
