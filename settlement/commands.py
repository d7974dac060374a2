"""Settlement commands, and the one msgpack codec the journal uses for every command.

Operators move money and credits in and out (each with a `ref`, e.g. a bank or registry
transaction id); account holders retire. Like engine commands these are frozen Structs with
`tag_field="cmd"` and unique tags; the gateway fills `account` from the session (or the
operator console) and stamps `ts`.
"""

from __future__ import annotations

import msgspec

from engine.commands import Command, RetireFor, TimeInForce
from engine.reference import Project, Series
from settlement.events import Purpose
from settlement.serials import RangeConvention, SerialRange, decode_hook


class OpenAccount(msgspec.Struct, frozen=True, kw_only=True, tag="open_account", tag_field="cmd"):
    """Operator: create a participant account (cash zero in every currency, no credits)."""

    account: int
    ts: int = 0


class Deposit(msgspec.Struct, frozen=True, kw_only=True, tag="deposit", tag_field="cmd"):
    """Operator: cash arrived for `account`; `amount` in `currency` minor units."""

    account: int
    currency: str
    amount: int
    ref: str = ""
    ts: int = 0


class Withdraw(msgspec.Struct, frozen=True, kw_only=True, tag="withdraw", tag_field="cmd"):
    """Operator: pay out available (unheld) cash."""

    account: int
    currency: str
    amount: int
    ref: str = ""
    ts: int = 0


class DepositCredits(
    msgspec.Struct, frozen=True, kw_only=True, tag="deposit_credits", tag_field="cmd"
):
    """Operator: a registry block was transferred to the exchange for `account`.

    `start`/`end` as the registry writes them, `quantity` its stated number of credits,
    `convention` how to read `end`; all three are checked against each other. `batch` is
    the registry batch (the serial string with its range cut out, settlement/registry.py):
    the block's identity, so batches sharing numbers are separate; "" for a block with no
    registry batch, identified by project and vintage alone (every block before batches)."""

    account: int
    project: str
    vintage: int
    start: int
    end: int
    quantity: int
    convention: RangeConvention = RangeConvention.INCLUSIVE
    ref: str = ""
    ts: int = 0
    batch: str = ""


class WithdrawCredits(
    msgspec.Struct, frozen=True, kw_only=True, tag="withdraw_credits", tag_field="cmd"
):
    """Operator: transfer exact available serials (of `batch`) back out to the registry."""

    account: int
    project: str
    vintage: int
    start: int
    end: int
    quantity: int
    convention: RangeConvention = RangeConvention.INCLUSIVE
    ref: str = ""
    ts: int = 0
    batch: str = ""


class Retire(msgspec.Struct, frozen=True, kw_only=True, tag="retire", tag_field="cmd"):
    """Retire `qty` available credits of `series` (oldest serials first) or, when `ranges` is
    given, exactly those inclusive serial ranges, for `beneficiary`. One certificate per
    project and vintage retired. Periods are ISO dates `YYYY-MM-DD`."""

    account: int
    beneficiary: str
    purpose: Purpose = Purpose.VOLUNTARY
    claim: str = ""
    period_start: str = ""
    period_end: str = ""
    series: str = ""
    qty: int = 0
    ranges: tuple[SerialRange, ...] = ()
    ref: str = ""
    ts: int = 0


class ListProject(msgspec.Struct, frozen=True, kw_only=True, tag="list_project", tag_field="cmd"):
    """Operator: add a registry project to the reference data."""

    project: Project
    ts: int = 0


class ListSeries(msgspec.Struct, frozen=True, kw_only=True, tag="list_series", tag_field="cmd"):
    """Operator: open an order book for a new series."""

    series: Series
    ts: int = 0


# -- the carbon catalogue (issue 13): contracts and registry events, operator commands --------


class ListContract(msgspec.Struct, frozen=True, kw_only=True, tag="list_contract", tag_field="cmd"):
    """Operator: open the book of a standardized contract, `series` (with no project; its
    standard, mitigation and vintage are left empty), whose credits are the ones `rule` (the
    screening language, screening/README.md) admits; the rule is version 1, effective now."""

    series: Series
    rule: str
    ref: str = ""
    ts: int = 0


class AddRuleVersion(
    msgspec.Struct, frozen=True, kw_only=True, tag="add_rule_version", tag_field="cmd"
):
    """Operator: a contract's next rule version, governing it from `effective` (not before
    the command's own time, nor before the version it follows). Resting sell orders whose
    credits it no longer admits are cancelled when it takes effect."""

    series: str
    rule: str
    effective: int = 0  # 0: at once
    ref: str = ""
    ts: int = 0


class ChangeLabel(msgspec.Struct, frozen=True, kw_only=True, tag="change_label", tag_field="cmd"):
    """Operator (a registry event): grant (`present`) or withdraw a label on a project or on
    one of its vintages (`vintage` 0: the whole project), from `effective` (0: at once;
    in the past: a retroactive change, at once)."""

    project: str
    label: str
    present: bool
    vintage: int = 0
    effective: int = 0
    ref: str = ""
    ts: int = 0


class SuspendProject(
    msgspec.Struct, frozen=True, kw_only=True, tag="suspend_project", tag_field="cmd"
):
    """Operator (a registry event): halt the project's books, cancel its resting orders and
    freeze its credits."""

    project: str
    ref: str = ""
    ts: int = 0


class ReinstateProject(
    msgspec.Struct, frozen=True, kw_only=True, tag="reinstate_project", tag_field="cmd"
):
    project: str
    ref: str = ""
    ts: int = 0


class CancelCredits(
    msgspec.Struct, frozen=True, kw_only=True, tag="cancel_credits", tag_field="cmd"
):
    """Operator (a registry event): a reversal; the registry cancelled these exact serials
    (of `batch`) from `account`'s buffer pool. They must be available there (not held by
    an order); a suspended project's credits may be cancelled."""

    account: int
    project: str
    vintage: int
    start: int
    end: int
    quantity: int
    convention: RangeConvention = RangeConvention.INCLUSIVE
    ref: str = ""
    ts: int = 0
    batch: str = ""


class BasketBuy(msgspec.Struct, frozen=True, kw_only=True, tag="basket_buy", tag_field="cmd"):
    """A screened basket buy (issue 14): up to `qty` tonnes from every series of `currency`
    whose credits `screen` admits (as `Core.screen` judges it), cheapest first across
    books, never above `price` per tonne; IOC (the rest is cancelled) or FOK (all or
    nothing changes). It never rests. `project_max`: at most that many tonnes from one
    project (0: no cap); `projects_min`: at least that many distinct projects, or nothing
    trades (0: no floor). `retire`: retire everything it buys, one certificate."""

    account: int
    client_order_id: str
    screen: str
    qty: int
    price: int
    currency: str = "USD"
    tif: TimeInForce = TimeInForce.IOC
    project_max: int = 0
    projects_min: int = 0
    retire: RetireFor | None = None
    ts: int = 0


CatalogueCommand = (
    ListContract | AddRuleVersion | ChangeLabel | SuspendProject | ReinstateProject | CancelCredits
)

SettlementCommand = (
    OpenAccount
    | Deposit
    | Withdraw
    | DepositCredits
    | WithdrawCredits
    | Retire
    | ListProject
    | ListSeries
    | CatalogueCommand
    | BasketBuy
)
AnyCommand = Command | SettlementCommand

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(AnyCommand, dec_hook=decode_hook)


def encode_command(cmd: AnyCommand) -> bytes:
    """The journal's bytes for one command (msgpack, tagged)."""
    return _encoder.encode(cmd)


def decode_command(data: bytes) -> AnyCommand:
    """Back from the journal; raises `msgspec.ValidationError` on anything malformed."""
    cmd: AnyCommand = _decoder.decode(data)
    return cmd
