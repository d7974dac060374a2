"""Settlement events. Values, frozen, array-like, tagged with `tag_field="event"` like the
engine's events.

The six *movement* events and the five *registry events* (labels, suspensions, reversals,
contract rule versions: issue 13) are also the bodies of settlement-log records (their tag
is the record's `kind`): whatever a client is told moved or changed is exactly what the log
says.
Rejections use the engine's `Rejected` with a settlement `Reason`.
"""

from __future__ import annotations

from enum import Enum

import msgspec

from settlement.serials import RangeConvention, SerialRange


class Purpose(str, Enum):
    """What a retirement is claimed for."""

    VOLUNTARY = "voluntary"  # voluntary offset claim
    CORSIA = "corsia"  # airline offsetting obligation under ICAO CORSIA
    ARTICLE6 = "article6"  # Paris Agreement Article 6 (corresponding adjustment)
    OTHER = "other"


# -- movements: settlement-log record bodies ---------------------------------------------------


class CashDeposited(
    msgspec.Struct, frozen=True, array_like=True, gc=False, tag="cash_deposit", tag_field="event"
):
    account: int
    currency: str
    amount: int
    ref: str
    ts: int


class CashWithdrawn(
    msgspec.Struct,
    frozen=True,
    array_like=True,
    gc=False,
    tag="cash_withdrawal",
    tag_field="event",
):
    account: int
    currency: str
    amount: int
    ref: str
    ts: int


class CreditsDeposited(
    msgspec.Struct,
    frozen=True,
    array_like=True,
    gc=False,
    tag="credit_deposit",
    tag_field="event",
):
    """A registry block entered the exchange; `range` is inclusive, `convention` says how the
    registry wrote it."""

    account: int
    range: SerialRange
    convention: RangeConvention
    ref: str
    ts: int


class CreditsWithdrawn(
    msgspec.Struct,
    frozen=True,
    array_like=True,
    gc=False,
    tag="credit_withdrawal",
    tag_field="event",
):
    account: int
    range: SerialRange
    ref: str
    ts: int


class Settled(
    msgspec.Struct, frozen=True, array_like=True, gc=False, tag="fill", tag_field="event"
):
    """One fill settled delivery-versus-payment: the buyer paid `price * qty + buyer_fee`,
    the seller received `price * qty - seller_fee`, the fee account both fees, and the buyer
    received exactly `ranges`."""

    trade_id: int
    series: str
    currency: str
    price: int
    qty: int
    buyer: int
    seller: int
    buyer_fee: int
    seller_fee: int
    fee_account: int
    ranges: tuple[SerialRange, ...]
    ts: int

    @property
    def rule_version(self) -> int:
        """The contract rule version the fill traded under: none (see `ContractFill`)."""
        return 0


class ContractFill(Settled, frozen=True, array_like=True, gc=False, tag="contract_fill"):
    """A fill of a standardized contract: a `Settled` that also records the version of the
    contract's eligibility rule it traded under (its own record kind, so that every other
    fill encodes exactly as it did before contracts had versions)."""

    rule_version: int  # the field that the base's property stands for


def contract_fill(fill: Settled, rule_version: int) -> ContractFill:
    """`fill` as a contract's fill under `rule_version`."""
    # mypy sees the base's property, not the subclass's field: hence the ignore
    return ContractFill(*msgspec.structs.astuple(fill), rule_version)  # type: ignore[call-arg]


class Retired(
    msgspec.Struct, frozen=True, array_like=True, gc=False, tag="retirement", tag_field="event"
):
    """Credits of one project and vintage permanently retired for a beneficiary."""

    cert_id: str
    account: int
    project: str
    vintage: int
    ranges: tuple[SerialRange, ...]
    qty: int
    beneficiary: str
    purpose: Purpose
    claim: str
    period_start: str
    period_end: str
    ts: int


# -- registry events (issue 13): operator commands, each one record -------------------------


class LabelChanged(
    msgspec.Struct, frozen=True, array_like=True, gc=False, tag="label", tag_field="event"
):
    """A registry granted (`present`) or withdrew a label on a project, or on one vintage of
    it (`vintage` 0: every vintage), from `effective` on. An effective time in the past
    (a retroactive change) takes effect at once; past trades stand."""

    project: str
    vintage: int
    label: str
    present: bool
    effective: int
    ref: str
    ts: int


class ProjectSuspended(
    msgspec.Struct, frozen=True, array_like=True, gc=False, tag="suspension", tag_field="event"
):
    """The registry suspended a project: its books halt, its resting orders are cancelled
    and its credits are frozen (no delivery, withdrawal or retirement) until reinstated."""

    project: str
    ref: str
    ts: int


class ProjectReinstated(
    msgspec.Struct, frozen=True, array_like=True, gc=False, tag="reinstatement", tag_field="event"
):
    project: str
    ref: str
    ts: int


class CreditsCancelled(
    msgspec.Struct, frozen=True, array_like=True, gc=False, tag="reversal", tag_field="event"
):
    """A reversal: the registry cancelled exact serials from a buffer-pool account. Like
    retired serials they never move again and can never be deposited again."""

    account: int
    range: SerialRange
    ref: str
    ts: int


class RuleVersionAdded(
    msgspec.Struct, frozen=True, array_like=True, gc=False, tag="contract_rule", tag_field="event"
):
    """Version `version` of a standardized contract's eligibility rule, in the screening
    language (screening/README.md), governs the contract from `effective` on."""

    series: str
    version: int
    effective: int
    rule: str
    ts: int


# -- buy-and-retire and baskets (issue 14) ---------------------------------------------------


class FillRetired(
    msgspec.Struct,
    frozen=True,
    array_like=True,
    gc=False,
    tag="fill_retirement",
    tag_field="event",
):
    """The credits one fill of a buy-and-retire order delivered, retired for its beneficiary
    in the same transaction: the record right after that fill's, naming its trade. Every
    fill of the order shares one certificate, `cert_id`, and names the order."""

    cert_id: str
    order_id: int
    client_order_id: str
    trade_id: int
    account: int
    ranges: tuple[SerialRange, ...]
    qty: int
    beneficiary: str
    purpose: Purpose
    claim: str
    period_start: str
    period_end: str
    ts: int


class CertificateFill(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """One fill on an order's certificate: what it retired, and its record's seq and hash."""

    trade_id: int
    series: str
    ranges: tuple[SerialRange, ...]
    qty: int
    record_seq: int
    record_hash: str


class OrderCertificate(
    msgspec.Struct,
    frozen=True,
    array_like=True,
    gc=False,
    tag="order_certificate",
    tag_field="event",
):
    """What a buy-and-retire order's beneficiary keeps: every fill's retired serials, each
    checkable against its `fill_retirement` record (`settlement.log.check_order_certificate`)."""

    cert_id: str
    account: int
    order_id: int
    client_order_id: str
    qty: int
    beneficiary: str
    purpose: Purpose
    claim: str
    period_start: str
    period_end: str
    fills: tuple[CertificateFill, ...]
    ts: int


class BasketDone(
    msgspec.Struct, frozen=True, array_like=True, gc=False, tag="basket_done", tag_field="event"
):
    """A basket's summary, after its fills: tonnes filled, what they cost before fees
    (`notional`: the average price is notional / filled), and the projects they came from."""

    order_id: int
    account: int
    client_order_id: str
    filled: int
    notional: int
    projects: tuple[str, ...]
    ts: int


RegistryEvent = (
    LabelChanged | ProjectSuspended | ProjectReinstated | CreditsCancelled | RuleVersionAdded
)
Movement = (
    CashDeposited
    | CashWithdrawn
    | CreditsDeposited
    | CreditsWithdrawn
    | Settled
    | ContractFill
    | Retired
    | RegistryEvent
    | FillRetired
)


# -- acknowledgements and certificates ----------------------------------------------------------


class RetirementCertificate(
    msgspec.Struct, frozen=True, array_like=True, gc=False, tag="certificate", tag_field="event"
):
    """What the beneficiary keeps: the retirement and the seq and SHA-256 hash of its log
    record, so that `settlement.log.check_certificate` can prove it against the log."""

    cert_id: str
    account: int
    project: str
    vintage: int
    ranges: tuple[SerialRange, ...]
    qty: int
    beneficiary: str
    purpose: Purpose
    claim: str
    period_start: str
    period_end: str
    ts: int
    record_seq: int
    record_hash: str


class AccountOpened(
    msgspec.Struct, frozen=True, array_like=True, gc=False, tag="account_opened", tag_field="event"
):
    account: int
    ts: int


class Listed(
    msgspec.Struct, frozen=True, array_like=True, gc=False, tag="listed", tag_field="event"
):
    """A series (`kind="series"`) or project (`kind="project"`) was added to the core."""

    kind: str
    id: str
    ts: int


SettlementEvent = (
    Movement | RetirementCertificate | AccountOpened | Listed | OrderCertificate | BasketDone
)
