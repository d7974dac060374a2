"""The carbon catalogue's state (issue 13): what registries said after listing, and which
credits each standardized contract admits at a moment.

A project's attributes come from its listing (`engine.reference.Project`); registry events
change them after the fact: a label granted or withdrawn on a project or one of its vintages,
from an effective time; a project suspended and reinstated. A generic series (no project) is
a standardized contract: its eligibility rule is screening-language text (screening/) with
versions, each governing from its effective time. A series listed by standard, mitigation
and vintage gets the rule that says so as version 1.

Time enters only through the commands' `ts`: a change whose effective time is later waits in
`pending` until a command at or after it, and a rule with a rolling vintage window
(`vintage >= year - 5`) is judged again at each new year. `due` is the earliest time at which
something here changes by itself; the core compares every command's `ts` with it.

Pure: no clock, no I/O. The settlement core owns one `Catalogue` and asks it which keys each
series admits (`eligible`); which orders to cancel when that changes is the core's job.
"""

from __future__ import annotations

import calendar
import datetime
import heapq
from collections.abc import Iterable
from typing import Any

from engine.reference import Project, Series
from screening.language import Credit, Expr, format_expr, matches, parse, uses_year
from screening.parse import BARE_WORD
from settlement.catalogue_types import RuleVersion
from settlement.serials import Key

NEVER = 1 << 63  # `due` when nothing waits
RULE_VERSIONS_MAX = 256  # versions one contract may have
PENDING_MAX = 4096  # label changes and rule versions waiting for their effective time
LABELS_MAX = 64  # distinct labels changed on one project or vintage
LABEL = BARE_WORD  # a label is a bare word of the screening language, at most 32 characters
LABEL_LENGTH_MAX = 32
LABELLED_LINES_MAX = 10_000  # projects and vintages with label changes, over the catalogue
CONTRACTS_MAX = 256  # standardized contracts listed with a rule
YEAR_MAX = 9999


def year_of(ts: int) -> int:
    """The UTC calendar year of `ts` (integer nanoseconds since the epoch), within 1..9999."""
    seconds = ts // 1_000_000_000
    if seconds >= calendar.timegm((YEAR_MAX, 12, 31, 23, 59, 59, 0, 0, 0)):
        return YEAR_MAX
    if seconds < calendar.timegm((1, 1, 1, 0, 0, 0, 0, 0, 0)):
        return 1
    return datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC).year


def year_start_ts(year: int) -> int:
    """The first nanosecond of `year`, UTC."""
    return calendar.timegm((year, 1, 1, 0, 0, 0, 0, 0, 0)) * 1_000_000_000


def _word(value: str) -> str:
    if BARE_WORD.fullmatch(value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def canonical_rule(text: str) -> str:
    """A rule as the screening language spells it canonically (what contracts keep, so that
    one rule written two ways is one state); `ScreenError` if it does not parse."""
    return format_expr(parse(text))


def implicit_rule(s: Series) -> str:
    """The rule of a generic series listed by standard, mitigation and vintage."""
    assert s.mitigation is not None, "a generic series without a rule names its mitigation"
    return (
        f"standard = {_word(s.standard)} and mitigation = {s.mitigation.value} "
        f"and vintage = {s.vintage}"
    )


class Catalogue:
    """Registry events applied so far, those still waiting, and every contract's rules."""

    def __init__(self) -> None:
        # (project, vintage or 0) -> label -> (present, effective, seq): the change latest in
        # effect wins (then the later to arrive), between a project's and a vintage's too
        self.labels: dict[tuple[str, int], dict[str, tuple[bool, int, int]]] = {}
        self.suspended: dict[str, list[str]] = {}  # project -> the books its suspension halted
        self.rules: dict[str, list[RuleVersion]] = {}  # generic series -> every version
        self.governing: dict[str, int] = {}  # generic series -> the version in force
        self.fill_version: dict[str, int] = {}  # the version a fill records, for contracts
        self.pending: list[tuple[int, int, str, tuple[Any, ...]]] = []  # heap by (effective, seq)
        self.seq = 0  # orders label changes (and breaks ties between equal effective times)
        self.year = 1970  # the year rolling vintage windows were last judged at
        self.due = NEVER
        self._parsed: dict[str, Expr] = {}  # rule text -> expression (a cache)

    # -- rules -------------------------------------------------------------------------------

    def expr(self, text: str) -> Expr:
        """The parsed rule (cached: rules are judged at every refresh)."""
        e = self._parsed.get(text)
        if e is None:
            e = self._parsed[text] = parse(text)
        return e

    def add_contract(self, series_id: str, rule: str, ts: int, *, recorded: bool) -> RuleVersion:
        """Version 1 of a generic series' rule. `recorded`: its fills record the version
        they trade under (a contract listed with a rule; a series listed by standard,
        mitigation and vintage records one once a second version is added)."""
        version = RuleVersion(1, ts, rule)
        self.rules[series_id] = [version]
        self._govern(series_id, 1, recorded)
        self._schedule()
        return version

    def _govern(self, series_id: str, version: int, recorded: bool = True) -> None:
        self.governing[series_id] = version
        if recorded:
            self.fill_version[series_id] = version

    def next_version(self, series_id: str, rule: str, effective: int, ts: int) -> RuleVersion:
        """Record a later version; it governs from `effective` (now, or waits)."""
        versions = self.rules[series_id]
        version = RuleVersion(len(versions) + 1, effective, rule)
        versions.append(version)
        if effective <= ts:
            self._govern(series_id, version.version)
        else:
            self.fill_version.setdefault(series_id, self.governing[series_id])
            self._wait(effective, "rule", (series_id, version.version))
        self._schedule()
        return version

    def governing_rule(self, series_id: str) -> RuleVersion:
        return self.rules[series_id][self.governing[series_id] - 1]

    # -- labels -------------------------------------------------------------------------------

    def change_label(
        self, project: str, vintage: int, label: str, present: bool, ts: int, effective: int
    ) -> None:
        """Record a label change; it applies now if `effective` is not later than `ts`."""
        self.seq += 1
        change = (project, vintage, label, present, effective, self.seq)
        if effective <= ts:
            self._set_label(*change)
        else:
            heapq.heappush(self.pending, (effective, self.seq, "label", change))
            self.due = min(self.due, effective)

    def _set_label(
        self, project: str, vintage: int, label: str, present: bool, effective: int, seq: int
    ) -> None:
        """Apply a label change unless a change later in effect is there already (a
        retroactive change older than the label's current state is on the record but
        changes nothing)."""
        now = self.labels.setdefault((project, vintage), {})
        held = now.get(label)
        if held is None or (held[1], held[2]) < (effective, seq):
            now[label] = (present, effective, seq)

    def label_room(self, project: str, vintage: int, label: str) -> bool:
        """Whether one more distinct label may change on this project or vintage."""
        changed = self.labels.get((project, vintage), {})
        waiting = {
            c[2]
            for _, _, kind, c in self.pending
            if kind == "label" and c[:2] == (project, vintage)
        }
        if (project, vintage) not in self.labels and not waiting:
            lines = len(self.labels) + len({c[:2] for _, _, k, c in self.pending if k == "label"})
            if lines >= LABELLED_LINES_MAX:
                return False
        return label in changed or label in waiting or len(changed.keys() | waiting) < LABELS_MAX

    def labels_of(self, project: Project, vintage: int) -> frozenset[str]:
        """The project's labels on `vintage` now: its listing's, then every change made on
        the project or that vintage, the latest winning."""
        changes = {**self.labels.get((project.id, 0), {})}
        for label, change in self.labels.get((project.id, vintage), {}).items():
            if label not in changes or changes[label][1:] < change[1:]:
                changes[label] = change
        labels = set(project.labels)
        for label, (present, _, _) in changes.items():
            if present:
                labels.add(label)
            else:
                labels.discard(label)
        return frozenset(labels)

    def credit(self, project: Project, vintage: int) -> Credit:
        """What a screen judges of `project`'s `vintage` now."""
        return Credit(
            project=project.id,
            registry=project.registry,
            standard=project.standard,
            vintage=vintage,
            mitigation=project.mitigation.value if project.mitigation is not None else "",
            basis=project.basis.value if project.basis is not None else "",
            category=project.category,
            methodology=project.methodology,
            project_type=project.project_type,
            country=project.country,
            sdgs=frozenset(project.sdgs),
            labels=self.labels_of(project, vintage),
            rating=project.rating or "",
        )

    # -- time ---------------------------------------------------------------------------------

    def _wait(self, effective: int, kind: str, change: tuple[Any, ...]) -> None:
        self.seq += 1
        heapq.heappush(self.pending, (effective, self.seq, kind, change))
        self.due = min(self.due, effective)

    def advance(self, ts: int) -> bool:
        """Apply every waiting change effective by `ts` and move the rolling year to `ts`'s;
        whether anything that eligibility depends on changed (the core then judges every
        contract again)."""
        changed = False
        while self.pending and self.pending[0][0] <= ts:
            _, _, kind, change = heapq.heappop(self.pending)
            if kind == "label":
                self._set_label(*change)
            else:
                series_id, version = change
                self._govern(series_id, max(self.governing[series_id], version))
            changed = True
        year = year_of(ts)
        if year != self.year:
            self.year = year
            changed = changed or any(self._rolls(sid) for sid in self.rules)
        self._schedule()
        return changed

    def _rolls(self, series_id: str) -> bool:
        return uses_year(self.expr(self.governing_rule(series_id).rule))

    def _schedule(self) -> None:
        """`due`: the next waiting change, or the next new year if a rule in force rolls."""
        due = self.pending[0][0] if self.pending else NEVER
        if self.year < YEAR_MAX and any(self._rolls(sid) for sid in self.rules):
            due = min(due, year_start_ts(self.year + 1))
        self.due = due

    # -- eligibility ----------------------------------------------------------------------------

    def eligible(
        self, s: Series, projects: dict[str, Project], candidates: Iterable[Key]
    ) -> list[Key]:
        """The (project, vintage) keys whose credits deliver into `s` now, in allocation
        order (project, then vintage). A project's series admits its one key; a contract
        admits the `candidates` (keys the ledger has serials of) its governing rule admits.
        A suspended project's credits deliver into nothing."""
        suspended = self.suspended
        if s.project is not None:
            return [] if s.project in suspended else [(s.project, s.vintage)]
        expr = self.expr(self.governing_rule(s.id).rule)
        year = self.year
        out = []
        for key in sorted(candidates):
            p = projects.get(key[0])
            if (
                p is not None
                and key[0] not in suspended
                and matches(expr, self.credit(p, key[1]), year)
            ):
                out.append(key)
        return out

    def canonical(self) -> list[Any]:
        """This state as plain sorted lists (settlement/state.py, format 4)."""
        return [
            sorted(
                [[p, v], sorted([name, *change] for name, change in ls.items())]
                for (p, v), ls in self.labels.items()
            ),
            sorted([p, sorted(books)] for p, books in self.suspended.items()),
            sorted(
                [
                    sid,
                    [[v.version, v.effective, v.rule] for v in versions],
                    self.governing[sid],
                    self.fill_version.get(sid, 0),
                ]
                for sid, versions in self.rules.items()
            ),
            sorted([e, seq, kind, list(c)] for e, seq, kind, c in self.pending),
            [self.seq, self.year],  # `due` follows from the pending changes, rules and year
        ]
