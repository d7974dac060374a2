"""The catalogue's commands (issue 13), applied to a `Core`: contracts and their rule
versions, and registry events (labels, suspension, reinstatement, reversals).

Each checks everything first and refuses with a typed `Reject`, changing nothing; or it
appends its settlement-log record (the record's body is also the first event the operator
hears), then carries out what follows in the same command: books halted or resumed,
resting orders cancelled with a reason and their holds released. `rejudge` is the one place
that decides which resting sell orders lose their credits' eligibility; the core also calls
it when a waiting change reaches its effective time (`tick`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.commands import Side
from engine.events import CancelReason, Reason
from screening.language import ScreenError
from settlement import serials
from settlement.catalogue import (
    CONTRACTS_MAX,
    LABEL,
    LABEL_LENGTH_MAX,
    PENDING_MAX,
    RULE_VERSIONS_MAX,
    canonical_rule,
)
from settlement.commands import (
    AddRuleVersion,
    CancelCredits,
    ChangeLabel,
    ListContract,
    ReinstateProject,
    SuspendProject,
)
from settlement.events import (
    CreditsCancelled,
    LabelChanged,
    Listed,
    ProjectReinstated,
    ProjectSuspended,
    RuleVersionAdded,
)
from settlement.ledger import Reject
from settlement.serials import SerialRange

if TYPE_CHECKING:
    from settlement.core import Core


def rejudge(core: Core, ts: int, events: list[Any]) -> None:
    """Judge every series' eligible keys again (at `ts`'s year), then cancel each resting
    sell order that holds credits its series no longer admits (reason `suspended` when
    their project is suspended, else `ineligible`) and release its hold. Orders in
    ascending id: the same command always cancels in the same order."""
    cat, ledger, ex = core.catalogue, core.ledger, core.exchange
    cat.advance(ts)
    candidates = list(ledger.known)
    for sid, book in ex.books.items():
        core.keys[sid] = cat.eligible(book.series, core.projects, candidates)
    admitted = {sid: set(keys) for sid, keys in core.keys.items()}
    for oid in sorted(ledger.credit_holds):
        hold = ledger.credit_holds[oid]
        lost = [k for k, n in hold.parts if n and k not in admitted[hold.series]]
        if lost:
            suspended = any(k[0] in cat.suspended for k in lost)
            reason = CancelReason.SUSPENDED if suspended else CancelReason.INELIGIBLE
            ex.cancel_by_operator(oid, reason, ts, events)
            ledger.release_credits(oid)


def tick(core: Core, ts: int, events: list[Any]) -> None:
    """Time reached the catalogue's `due`: apply what became effective, and rejudge."""
    if core.catalogue.advance(ts):
        rejudge(core, ts, events)


def _canonical(rule: str) -> str | Reject:
    """The rule's canonical text, or why it is not a rule."""
    try:
        return canonical_rule(rule)
    except ScreenError as exc:
        return Reject(Reason.INVALID_SCREEN, f"rule {exc}")


def list_contract(core: Core, cmd: ListContract) -> list[Any] | Reject:
    s = cmd.series
    if s.project is not None:
        return Reject(Reason.NOT_A_CONTRACT, f"series {s.id} is a project's; a contract has none")
    refused = core._check_series(s, contract=True)
    if refused is not None:
        return refused
    if sum(b.series.project is None for b in core.exchange.books.values()) >= CONTRACTS_MAX:
        return Reject(Reason.LIMIT_EXCEEDED, f"{CONTRACTS_MAX} generic series are listed")
    rule = _canonical(cmd.rule)
    if isinstance(rule, Reject):
        return rule
    moved = core.catalogue.advance(cmd.ts)  # judged at the command's year
    version = core.catalogue.add_contract(s.id, rule, cmd.ts, recorded=True)
    body = RuleVersionAdded(s.id, version.version, version.effective, version.rule, cmd.ts)
    core.ledger.log.append(body)
    core._list_series(s)
    events: list[Any] = [Listed("series", s.id, cmd.ts), body]
    if moved:  # a new year for the other contracts' rolling windows
        rejudge(core, cmd.ts, events)
    return events


def add_rule_version(core: Core, cmd: AddRuleVersion) -> list[Any] | Reject:
    cat = core.catalogue
    book = core.exchange.books.get(cmd.series)
    if book is None:
        return Reject(Reason.UNKNOWN_SERIES, f"no series {cmd.series!r}")
    if book.series.project is not None:
        return Reject(Reason.NOT_A_CONTRACT, f"series {cmd.series} is a project's, not a contract")
    effective = cmd.effective or cmd.ts
    versions = cat.rules[cmd.series]
    if effective < cmd.ts:
        return Reject(Reason.RULE_IN_PAST, f"effective {effective} is before now ({cmd.ts})")
    if effective < versions[-1].effective:
        return Reject(
            Reason.RULE_IN_PAST,
            f"effective {effective} is before version {versions[-1].version}'s "
            f"({versions[-1].effective})",
        )
    if len(versions) >= RULE_VERSIONS_MAX:
        return Reject(Reason.LIMIT_EXCEEDED, f"{cmd.series} has {RULE_VERSIONS_MAX} versions")
    if effective > cmd.ts and len(cat.pending) >= PENDING_MAX:
        return Reject(Reason.LIMIT_EXCEEDED, f"{PENDING_MAX} changes are waiting already")
    rule = _canonical(cmd.rule)
    if isinstance(rule, Reject):
        return rule
    version = cat.next_version(cmd.series, rule, effective, cmd.ts)
    body = RuleVersionAdded(cmd.series, version.version, effective, rule, cmd.ts)
    core.ledger.log.append(body)
    events: list[Any] = [body]
    if effective <= cmd.ts:
        rejudge(core, cmd.ts, events)
    return events


def change_label(core: Core, cmd: ChangeLabel) -> list[Any] | Reject:
    cat = core.catalogue
    if cmd.project not in core.projects:
        return Reject(Reason.UNKNOWN_PROJECT, f"no project {cmd.project!r}")
    if not LABEL.fullmatch(cmd.label) or len(cmd.label) > LABEL_LENGTH_MAX:
        return Reject(
            Reason.INVALID_LABEL,
            f"label {cmd.label[:40]!r}: a word of the screening language, at most "
            f"{LABEL_LENGTH_MAX} characters (A-Z a-z 0-9 _ first, then also + / - and .)",
        )
    if cmd.vintage and not 1000 <= cmd.vintage <= 9999:
        return Reject(Reason.INVALID_LABEL, f"vintage {cmd.vintage}: a year, or 0 for every one")
    effective = cmd.effective or cmd.ts
    if effective > cmd.ts and len(cat.pending) >= PENDING_MAX:
        return Reject(Reason.LIMIT_EXCEEDED, f"{PENDING_MAX} changes are waiting already")
    if not cat.label_room(cmd.project, cmd.vintage, cmd.label):
        return Reject(Reason.LIMIT_EXCEEDED, f"{cmd.project} has too many label changes")
    body = LabelChanged(
        cmd.project, cmd.vintage, cmd.label, cmd.present, effective, cmd.ref, cmd.ts
    )
    core.ledger.log.append(body)
    cat.change_label(cmd.project, cmd.vintage, cmd.label, cmd.present, cmd.ts, effective)
    events: list[Any] = [body]
    if effective <= cmd.ts:
        rejudge(core, cmd.ts, events)
    return events


def suspend_project(core: Core, cmd: SuspendProject) -> list[Any] | Reject:
    cat, ex, ledger = core.catalogue, core.exchange, core.ledger
    if cmd.project not in core.projects:
        return Reject(Reason.UNKNOWN_PROJECT, f"no project {cmd.project!r}")
    if cmd.project in cat.suspended:
        return Reject(Reason.PROJECT_SUSPENDED, f"project {cmd.project} is already suspended")
    body = ProjectSuspended(cmd.project, cmd.ref, cmd.ts)
    ledger.log.append(body)
    events: list[Any] = [body]
    books = sorted(sid for sid, b in ex.books.items() if b.series.project == cmd.project)
    halted = [sid for sid in books if not ex.books[sid].halted]
    cat.suspended[cmd.project] = halted
    for sid in halted:
        ex.set_halted(sid, True, cmd.ts, events)
    mine = set(books)
    for oid in sorted(o for o, order in ex.open_orders.items() if order.series in mine):
        side = ex.open_orders[oid].side
        ex.cancel_by_operator(oid, CancelReason.SUSPENDED, cmd.ts, events)
        (ledger.release_cash if side is Side.BUY else ledger.release_credits)(oid)
    rejudge(core, cmd.ts, events)
    return events


def reinstate_project(core: Core, cmd: ReinstateProject) -> list[Any] | Reject:
    cat, ex = core.catalogue, core.exchange
    if cmd.project not in core.projects:
        return Reject(Reason.UNKNOWN_PROJECT, f"no project {cmd.project!r}")
    if cmd.project not in cat.suspended:
        return Reject(Reason.NOT_SUSPENDED, f"project {cmd.project} is not suspended")
    body = ProjectReinstated(cmd.project, cmd.ref, cmd.ts)
    core.ledger.log.append(body)
    events: list[Any] = [body]
    for sid in cat.suspended.pop(cmd.project):
        ex.set_halted(sid, False, cmd.ts, events)
    rejudge(core, cmd.ts, events)
    return events


def cancel_credits(core: Core, cmd: CancelCredits) -> list[Any] | Reject:
    """A reversal: exact available serials of the account leave custody for good."""
    ledger = core.ledger
    acct = ledger.accounts.get(cmd.account)
    if acct is None:
        return Reject(Reason.UNKNOWN_ACCOUNT, f"no account {cmd.account}")
    if cmd.project not in core.projects:
        return Reject(Reason.UNKNOWN_PROJECT, f"no project {cmd.project!r}")
    rng = serials.normalize(cmd.start, cmd.end, cmd.quantity, cmd.convention)
    if isinstance(rng, str):
        return Reject(Reason.INVALID_SERIAL_BLOCK, rng)
    block = SerialRange(cmd.project, cmd.vintage, rng[0], rng[1], cmd.batch)
    banded = ledger.banded(block)
    if banded is None:
        return Reject(Reason.SERIALS_NOT_HELD, f"{block}: no serials of that batch")
    refused = ledger.check_available(acct, block.key, *banded)
    if refused is not None:
        return refused
    body = CreditsCancelled(cmd.account, block, cmd.ref, cmd.ts)
    ledger.cancel_credits(cmd.account, block.key, banded, body)
    return [body]
