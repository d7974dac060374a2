"""Settlement events. Values, frozen, array-like, tagged with `tag_field="event"` like the
engine's events.

The six *movement* events are also the bodies of settlement-log records (their tag is the
record's `kind`): whatever a client is told moved is exactly what the log says moved.
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


Movement = CashDeposited | CashWithdrawn | CreditsDeposited | CreditsWithdrawn | Settled | Retired


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


SettlementEvent = Movement | RetirementCertificate | AccountOpened | Listed
