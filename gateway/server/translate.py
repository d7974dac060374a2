"""Wire requests into core commands: pure, one function per request kind.

Each takes the request, the session's account, the command's timestamp (stamped by the
server, once per command) and the catalogue's projects, and returns the core command, or a
`Refusal` (reason, text) when the request cannot be one: a field the wire schema lets
through but no command can carry (an unknown convention or purpose), or a registry serial
string that its project's registry rules do not read. The account is the session's: a client
never names its own account. The one exception is the operator's reversal
(`cancel_credits`), which names the account the registry cancelled credits from. Nothing
here looks at the core's state; whether the command is allowed is the core's to decide, with
its own reason codes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import engine.commands as ec
import settlement.commands as sc
from engine.events import Reason
from engine.reference import Project, Series
from gateway.wire import protocol as p
from settlement import registry
from settlement.events import Purpose
from settlement.serials import RangeConvention, SerialRange


class Refusal(NamedTuple):
    """Why a request is not a command: sent back as a `reject` with this reason and text."""

    reason: Reason
    text: str


Projects = dict[str, Project]
Translate = Callable[[Any, int, int, Projects], Any]


def new_order(msg: p.NewOrder, account: int, ts: int, _projects: Projects) -> ec.NewOrder | Refusal:
    retire = retire_for(msg.retire_for)
    if isinstance(retire, Refusal):
        return retire
    return ec.NewOrder(
        account=account,
        client_order_id=msg.client_order_id,
        series=msg.series,
        side=msg.side,
        qty=msg.qty,
        price=msg.price,
        type=msg.order_type,
        tif=msg.tif,
        expire_ts=msg.expire_ts,
        post_only=msg.post_only,
        stp=msg.stp,
        max_notional=msg.max_notional,
        retire=retire,
        ts=ts,
    )


def basket_buy(
    msg: p.BasketBuy, account: int, ts: int, _projects: Projects
) -> sc.BasketBuy | Refusal:
    """A screened basket; its screen, quantities, caps and retirement are the core's to
    judge (INVALID_SCREEN, INVALID_QUANTITY, CANNOT_FILL, INVALID_RETIREMENT ...)."""
    retire = retire_for(msg.retire_for)
    if isinstance(retire, Refusal):
        return retire
    return sc.BasketBuy(
        account=account,
        client_order_id=msg.client_order_id,
        screen=msg.screen,
        qty=msg.qty,
        price=msg.price,
        currency=msg.currency,
        tif=msg.tif,
        project_max=msg.project_max,
        projects_min=msg.projects_min,
        retire=retire,
        ts=ts,
    )


def retire_for(wire: p.RetireFor | None) -> ec.RetireFor | Refusal | None:
    """The core's `RetireFor` of a buy-and-retire order; a purpose out of its set is
    malformed, as in `retire`. Whether the rest is a retirement (a beneficiary, a period of
    two dates) is the core's to say, before the order enters."""
    if wire is None:
        return None
    refused = check_purpose(wire.purpose)
    if refused is not None:
        return refused
    return ec.RetireFor(
        beneficiary=wire.beneficiary,
        purpose=wire.purpose,
        claim=wire.claim,
        period_start=wire.period_start,
        period_end=wire.period_end,
    )


def check_purpose(purpose: str) -> Refusal | None:
    """A purpose the wire lets through but no retirement can carry: malformed."""
    if purpose in PURPOSES:
        return None
    return Refusal(Reason.MALFORMED_MESSAGE, f"purpose must be one of {list(PURPOSES)}")


PURPOSES = tuple(x.value for x in Purpose)


def amend(msg: p.Amend, account: int, ts: int, _projects: Projects) -> ec.Amend:
    return ec.Amend(account=account, order_id=msg.order_id, price=msg.price, qty=msg.qty, ts=ts)


def cancel(msg: p.Cancel, account: int, ts: int, _projects: Projects) -> ec.Cancel:
    return ec.Cancel(
        account=account, order_id=msg.order_id, client_order_id=msg.client_order_id, ts=ts
    )


def mass_cancel(msg: p.MassCancel, account: int, ts: int, _projects: Projects) -> ec.MassCancel:
    return ec.MassCancel(account=account, series=msg.series, ts=ts)


def deposit(msg: p.Deposit, account: int, ts: int, _projects: Projects) -> sc.Deposit:
    return sc.Deposit(account=account, currency=msg.currency, amount=msg.amount, ts=ts)


def withdraw(msg: p.Withdraw, account: int, ts: int, _projects: Projects) -> sc.Withdraw:
    return sc.Withdraw(account=account, currency=msg.currency, amount=msg.amount, ts=ts)


def credits(
    msg: p.DepositCredits | p.WithdrawCredits, account: int, ts: int, projects: Projects
) -> sc.DepositCredits | sc.WithdrawCredits | Refusal:
    """A block in or out, its identity read from `serial` (by the project's registry) or
    given as `batch` with `start` and `end` (gateway/wire/PROTOCOL.md, `deposit_credits`)."""
    fields = block_fields(msg, projects)
    if isinstance(fields, Refusal):
        return fields
    block = sc.DepositCredits if type(msg) is p.DepositCredits else sc.WithdrawCredits
    return block(account=account, ts=ts, **fields)


def block_fields(msg: p.CreditBlock, projects: Projects) -> dict[str, Any] | Refusal:
    """The settlement fields of a wire `CreditBlock` (deposit, withdrawal, reversal): its
    convention checked and its `serial`, if any, read by the project's registry rules."""
    try:
        convention = RangeConvention(msg.convention)
    except ValueError:
        return Refusal(
            Reason.MALFORMED_MESSAGE,
            f"convention must be one of {[x.value for x in RangeConvention]}",
        )
    start, end, batch = msg.start, msg.end, msg.batch
    project = projects.get(msg.project)
    if msg.serial and project is not None:  # (an unknown project: the core refuses it by name)
        read = read_serial(msg, project.registry, convention)
        if isinstance(read, Refusal):
            return read
        start, end, batch = read.first, read.last, read.batch
    return {
        "project": msg.project,
        "vintage": msg.vintage,
        "start": start,
        "end": end,
        "quantity": msg.quantity,
        "convention": convention,
        "ref": msg.ref,
        "batch": batch,
    }


def read_serial(
    msg: p.CreditBlock, registry_name: str, convention: RangeConvention
) -> registry.RegistrySerial | Refusal:
    """A `serial` string read by its project's registry rules (settlement/registry.py)."""
    if convention is not RangeConvention.INCLUSIVE:
        return Refusal(Reason.INVALID_SERIAL_BLOCK, "a registry serial string is inclusive")
    stated = (msg.start, msg.end) != (0, 0)
    try:
        read = registry.parse(
            registry_name,
            msg.serial,
            msg.start if stated else None,
            msg.end if stated else None,
        )
    except registry.SerialFormatError as exc:
        known = registry_name in registry.REGISTRIES
        return Refusal(Reason.INVALID_SERIAL_BLOCK if known else Reason.UNKNOWN_REGISTRY, str(exc))
    if msg.batch and msg.batch != read.batch:
        return Refusal(
            Reason.INVALID_SERIAL_BLOCK,
            f"{msg.serial!r} is of batch {read.batch!r}, not {msg.batch!r}",
        )
    return read


def retire(msg: p.Retire, account: int, ts: int, _projects: Projects) -> sc.Retire | Refusal:
    refused = check_purpose(msg.purpose)
    if refused is not None:
        return refused
    purpose = Purpose(msg.purpose)
    return sc.Retire(
        account=account,
        beneficiary=msg.beneficiary,
        purpose=purpose,
        claim=msg.claim,
        period_start=msg.period_start,
        period_end=msg.period_end,
        series=msg.series,
        qty=msg.qty,
        ranges=tuple(
            SerialRange(r.project, r.vintage, r.first, r.last, r.batch) for r in msg.serials
        ),
        ts=ts,
    )


# -- operator: the carbon catalogue (issue 13) ---------------------------------------------


def list_contract(
    msg: p.ListContract, _account: int, ts: int, _projects: Projects
) -> sc.ListContract | Refusal:
    """A contract's series has no project, standard, mitigation or vintage: its rule says
    what it delivers. Parameters a series refuses (a zero tick) are refused here."""
    try:
        series = Series(
            id=msg.series,
            currency=msg.currency,
            tick=msg.tick,
            lot=msg.lot,
            ref_price=msg.ref_price,
            band_bps=msg.band_bps,
            max_order_qty=msg.max_order_qty,
        )
    except ValueError as exc:
        return Refusal(Reason.MALFORMED_MESSAGE, str(exc))
    return sc.ListContract(series=series, rule=msg.rule, ref=msg.ref, ts=ts)


def add_rule_version(
    msg: p.AddRuleVersion, _account: int, ts: int, _projects: Projects
) -> sc.AddRuleVersion:
    return sc.AddRuleVersion(
        series=msg.series, rule=msg.rule, effective=msg.effective, ref=msg.ref, ts=ts
    )


def change_label(msg: p.ChangeLabel, _account: int, ts: int, _projects: Projects) -> sc.ChangeLabel:
    return sc.ChangeLabel(
        project=msg.project,
        label=msg.label,
        present=msg.present,
        vintage=msg.vintage,
        effective=msg.effective,
        ref=msg.ref,
        ts=ts,
    )


def suspend_project(
    msg: p.SuspendProject, _account: int, ts: int, _projects: Projects
) -> sc.SuspendProject:
    return sc.SuspendProject(project=msg.project, ref=msg.ref, ts=ts)


def reinstate_project(
    msg: p.ReinstateProject, _account: int, ts: int, _projects: Projects
) -> sc.ReinstateProject:
    return sc.ReinstateProject(project=msg.project, ref=msg.ref, ts=ts)


def cancel_credits(
    msg: p.CancelCredits, _account: int, ts: int, projects: Projects
) -> sc.CancelCredits | Refusal:
    """A reversal names the account whose buffer pool the registry cancelled from (an
    operator acts on other accounts' credits), not the session's."""
    fields = block_fields(msg, projects)
    if isinstance(fields, Refusal):
        return fields
    return sc.CancelCredits(account=msg.account, ts=ts, **fields)


COMMANDS: dict[type, Translate] = {
    p.NewOrder: new_order,
    p.BasketBuy: basket_buy,
    p.Amend: amend,
    p.Cancel: cancel,
    p.MassCancel: mass_cancel,
    p.Deposit: deposit,
    p.Withdraw: withdraw,
    p.DepositCredits: credits,
    p.WithdrawCredits: credits,
    p.Retire: retire,
    p.ListContract: list_contract,
    p.AddRuleVersion: add_rule_version,
    p.ChangeLabel: change_label,
    p.SuspendProject: suspend_project,
    p.ReinstateProject: reinstate_project,
    p.CancelCredits: cancel_credits,
}
