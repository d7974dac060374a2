"""An independent, deliberately simple ledger rebuilt from settlement-log records alone.

`settlement.log.verify` replays every record into a `Replay` and raises `ReplayError` at the
first one the state does not allow. It knows nothing of orders or holds (they are not
records); it tracks, per identity space (a registry scope for serials of a registry batch,
settlement/registry.py; the project and vintage for batch-less ones), which account owns
each serial range (or that it is retired) and which project, vintage and batch it is, and
each account's cash per currency. It also checks the bounds every
core keeps (settlement/limits.py): custody totals and serial numbers within `AMOUNT_MAX`, so
that a log written before the limits existed is reported at the record that passed one.
"""

from __future__ import annotations

from bisect import bisect_right
from typing import Any

from settlement import registry
from settlement.events import (
    CashDeposited,
    CashWithdrawn,
    CreditsCancelled,
    CreditsDeposited,
    CreditsWithdrawn,
    FillRetired,
    LabelChanged,
    Movement,
    ProjectReinstated,
    ProjectSuspended,
    Retired,
    RuleVersionAdded,
    Settled,
)
from settlement.limits import AMOUNT_MAX, SERIAL_MAX
from settlement.serials import SerialRange

RETIRED = -1  # the owner of a retired range
CANCELLED = -2  # the owner of a range a reversal cancelled
_BIG = 1 << 62


class ReplayError(Exception):
    """A record that the replayed state does not allow."""


class Replay:
    def __init__(self) -> None:
        self.cash: dict[tuple[int, str], int] = {}
        self.net_cash: dict[str, int] = {}  # deposits - withdrawals per currency
        # per identity space: sorted disjoint [first, last, owner, (project, vintage, batch)]
        self.owners: dict[tuple[str, ...], list[list[Any]]] = {}
        self.net_credits = 0  # deposits - withdrawals - retirements - cancellations
        self.retired = 0
        self.cancelled = 0
        self.suspended: set[str] = set()  # projects whose credits are frozen
        self.versions: dict[str, int] = {}  # contract series -> its last rule version
        self.last_fill: Settled | None = None  # the record just before, if it was a fill

    # -- serial ownership --------------------------------------------------------------------

    @staticmethod
    def _space(r: SerialRange, what: str) -> tuple[str, ...]:
        """Where r's numbers are unique: its batch's registry scope, or its key."""
        if not r.batch:
            return ("", r.project, str(r.vintage))
        try:
            return (registry.identify(r.batch, r.first, r.last).scope,)
        except registry.SerialFormatError as exc:
            raise ReplayError(f"{what}: serials {r!r}: {exc}") from None

    def _carve(self, r: SerialRange, owner: int, what: str) -> tuple[list[list[Any]], int, int]:
        """Split intervals at r's ends; check that r is wholly owned by `owner` and is of
        r's project, vintage and batch; return the interval list and the slice [i, j)
        covering r."""
        spans = self.owners.get(self._space(r, what))
        if spans is None or r.last < r.first:
            raise ReplayError(f"{what}: serials {r} are not in the ledger")
        for cut in (r.first, r.last + 1):
            k = bisect_right(spans, [cut, _BIG, _BIG]) - 1
            if k >= 0 and spans[k][0] < cut <= spans[k][1]:
                a, b, o, ident = spans[k]
                spans[k : k + 1] = [[a, cut - 1, o, ident], [cut, b, o, ident]]
        i = bisect_right(spans, [r.first, -_BIG, -_BIG, ()]) - 1
        i = i + 1 if i < 0 or spans[i][0] != r.first else i
        j, pos = i, r.first
        ident = (r.project, r.vintage, r.batch)
        while j < len(spans) and spans[j][0] <= r.last:
            a, b, o, of = spans[j]
            if a != pos:
                break
            if of != ident:
                raise ReplayError(f"{what}: serials {a}-{b} of {r} are of {of}")
            if o != owner:
                who = {RETIRED: "retired", CANCELLED: "cancelled"}.get(o, f"account {o}")
                raise ReplayError(f"{what}: serials {a}-{b} of {r} belong to {who}")
            pos = b + 1
            j += 1
        if pos != r.last + 1:
            raise ReplayError(f"{what}: serials {r} are not all in the ledger")
        return spans, i, j

    def _move(self, r: SerialRange, owner: int, to: int | None, what: str) -> None:
        spans, i, j = self._carve(r, owner, what)
        spans[i:j] = [] if to is None else [[r.first, r.last, to, (r.project, r.vintage, r.batch)]]

    # -- records ---------------------------------------------------------------------------

    def _cash(self, account: int, currency: str, delta: int, what: str) -> None:
        key = (account, currency)
        value = self.cash.get(key, 0) + delta
        if value < 0:
            raise ReplayError(f"{what}: account {account} would have {value} {currency}")
        self.cash[key] = value

    def _frozen(self, ranges: tuple[SerialRange, ...] | list[SerialRange], what: str) -> None:
        for r in ranges:
            if r.project in self.suspended:
                raise ReplayError(f"{what}: serials {r} of suspended project {r.project} moved")

    def apply(self, b: Movement) -> None:
        last_fill, self.last_fill = self.last_fill, None
        if isinstance(b, FillRetired):
            self._fill_retired(b, last_fill)
        elif isinstance(b, Settled):
            self.last_fill = b
            self._fill(b)
        elif isinstance(b, CashDeposited | CashWithdrawn):
            if b.amount <= 0:
                raise ReplayError("cash movement must be positive")
            delta = b.amount if isinstance(b, CashDeposited) else -b.amount
            what: str = b.__struct_config__.tag  # type: ignore[assignment]
            self._cash(b.account, b.currency, delta, what)
            net = self.net_cash[b.currency] = self.net_cash.get(b.currency, 0) + delta
            if net > AMOUNT_MAX:
                raise ReplayError(
                    f"{what}: {net} {b.currency} in custody, above the limit {AMOUNT_MAX} "
                    "(2^53 - 1)"
                )
        elif isinstance(b, CreditsDeposited):
            r = b.range
            self._frozen([r], "credit deposit")
            if r.last < r.first:
                raise ReplayError(f"credit deposit: empty range {r}")
            if r.first < 0 or r.last > SERIAL_MAX:
                raise ReplayError(f"credit deposit: serials {r} outside 0..{SERIAL_MAX}")
            if self.net_credits + r.qty > AMOUNT_MAX:
                raise ReplayError(
                    f"credit deposit: {self.net_credits + r.qty} t in custody, above the "
                    f"limit {AMOUNT_MAX} (2^53 - 1)"
                )
            spans = self.owners.setdefault(self._space(r, "credit deposit"), [])
            k = bisect_right(spans, [r.first, _BIG, _BIG, ()]) - 1
            if (k >= 0 and spans[k][1] >= r.first) or (
                k + 1 < len(spans) and spans[k + 1][0] <= r.last
            ):
                raise ReplayError(f"credit deposit: serials {r} overlap serials already held")
            spans.insert(k + 1, [r.first, r.last, b.account, (r.project, r.vintage, r.batch)])
            self.net_credits += r.qty
        elif isinstance(b, CreditsWithdrawn):
            self._frozen([b.range], "credit withdrawal")
            self._move(b.range, b.account, None, "credit withdrawal")
            self.net_credits -= b.range.qty
        elif isinstance(b, Retired):
            self._frozen(b.ranges, "retirement")
            if sum(r.qty for r in b.ranges) != b.qty or b.qty <= 0:
                raise ReplayError(f"retirement {b.cert_id}: serials do not add up to {b.qty}")
            for r in b.ranges:
                if (r.project, r.vintage) != (b.project, b.vintage):
                    raise ReplayError(f"retirement {b.cert_id}: serials of another project")
                self._move(r, b.account, RETIRED, "retirement")
            self.net_credits -= b.qty
            self.retired += b.qty
        else:
            self._registry_event(b)

    def _fill(self, b: Settled) -> None:
        self._frozen(b.ranges, "fill")
        if b.rule_version and not 0 < b.rule_version <= self.versions.get(b.series, 0):
            raise ReplayError(f"fill: {b.series} has no rule version {b.rule_version}")
        notional = b.price * b.qty
        if b.price <= 0 or b.qty <= 0 or b.buyer == b.seller:
            raise ReplayError("fill: price and quantity must be positive, buyer != seller")
        if not (0 <= b.buyer_fee <= notional and 0 <= b.seller_fee <= notional):
            raise ReplayError("fill: a fee is negative or exceeds the notional")
        if sum(r.qty for r in b.ranges) != b.qty:
            raise ReplayError(f"fill: serials delivered do not add up to {b.qty}")
        self._cash(b.buyer, b.currency, -(notional + b.buyer_fee), "fill")
        self._cash(b.seller, b.currency, notional - b.seller_fee, "fill")
        self._cash(b.fee_account, b.currency, b.buyer_fee + b.seller_fee, "fill")
        for r in b.ranges:
            self._move(r, b.seller, b.buyer, "fill")

    def _fill_retired(self, b: FillRetired, fill: Settled | None) -> None:
        """Buy-and-retire: the record right after a fill, retiring exactly what that fill
        delivered to its buyer; so no state between records has them delivered and kept."""
        if fill is None or (fill.trade_id, fill.buyer, fill.ranges) != (
            b.trade_id,
            b.account,
            b.ranges,
        ):
            raise ReplayError(
                f"fill retirement {b.cert_id}: not right after fill {b.trade_id}'s record, or "
                "not what it delivered"
            )
        if b.qty != fill.qty:
            raise ReplayError(f"fill retirement {b.cert_id}: {b.qty} t of a {fill.qty} t fill")
        for r in b.ranges:
            self._move(r, b.account, RETIRED, "fill retirement")
        self.net_credits -= b.qty
        self.retired += b.qty

    def _registry_event(self, b: Movement) -> None:
        """Suspensions freeze credits until reinstated; a reversal ends exact serials of
        an account for good; a contract's versions count up from 1."""
        if isinstance(b, ProjectSuspended):
            if b.project in self.suspended:
                raise ReplayError(f"suspension: project {b.project} is suspended already")
            self.suspended.add(b.project)
        elif isinstance(b, ProjectReinstated):
            if b.project not in self.suspended:
                raise ReplayError(f"reinstatement: project {b.project} is not suspended")
            self.suspended.discard(b.project)
        elif isinstance(b, CreditsCancelled):
            self._move(b.range, b.account, CANCELLED, "reversal")
            self.net_credits -= b.range.qty
            self.cancelled += b.range.qty
        elif isinstance(b, RuleVersionAdded):
            last = self.versions.get(b.series)
            # a series listed by standard, mitigation and vintage had version 1 unrecorded
            first = b.version in (1, 2) if last is None else b.version == last + 1
            if not first or b.effective < b.ts:
                raise ReplayError(f"rule: {b.series} v{b.version} out of order or in the past")
            self.versions[b.series] = b.version
        else:
            assert isinstance(b, LabelChanged)

    # -- invariants --------------------------------------------------------------------------

    def check(self) -> None:
        """Conservation: balances add up to net deposits; ranges disjoint; counts agree."""
        sums: dict[str, int] = {}
        for (_, currency), value in self.cash.items():
            sums[currency] = sums.get(currency, 0) + value
        for currency in set(sums) | set(self.net_cash):
            if sums.get(currency, 0) != self.net_cash.get(currency, 0):
                raise ReplayError(f"{currency} is not conserved")
        live = retired = cancelled = 0
        for spans in self.owners.values():
            last = -1
            for a, b, o, _ in spans:
                if a <= last or b < a:
                    raise ReplayError("a serial is in two places")
                last = b
                if o == RETIRED:
                    retired += b - a + 1
                elif o == CANCELLED:
                    cancelled += b - a + 1
                else:
                    live += b - a + 1
        if live != self.net_credits or (retired, cancelled) != (self.retired, self.cancelled):
            raise ReplayError("credits are not conserved")

    def cash_totals(self) -> dict[str, int]:
        return dict(sorted(self.net_cash.items()))

    def live_credits(self) -> int:
        return self.net_credits

    def retired_credits(self) -> int:
        return self.retired
