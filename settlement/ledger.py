"""The ledger: accounts, cash and credit holds, deposits and withdrawals, and its invariants.

State lives here and only here: each account's cash per currency (total and held, integer
minor units) and credits per (project, vintage) (the owned serial ranges, with counts
available and held); each live order's hold (a cash amount, or a credit quantity per key);
every serial ever deposited and not withdrawn (`known`, retired ones included) and the
retired ones. A key's serials are numbered in bands, one per registry batch
(settlement/serials.py), so batches that share numbers never collide; `batches` names each
band, and `scoped` / `scoped_retired` index the same serials by the space in which their
registry keeps numbers unique (settlement/registry.py), where deposits are checked.
Nothing else writes it: DvP (`settlement.dvp`) plans a fill and `apply_fill` applies it,
retirement (`settlement.retirement`) plans one and `retire` applies it per key.

Methods that can refuse return a `Reject` (reason, text) and change nothing; they return
None or the movement event when they succeeded. A broken invariant is an `AssertionError`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

from engine.events import Reason
from settlement import registry, serials
from settlement.events import (
    CashDeposited,
    CashWithdrawn,
    CreditsCancelled,
    CreditsDeposited,
    CreditsWithdrawn,
    FillRetired,
    Retired,
    Settled,
)
from settlement.fees import FeeSchedule
from settlement.limits import (
    ACCOUNT_MAX,
    AMOUNT_MAX,
    BATCHES_PER_KEY_MAX,
    CASH_TOTAL_MAX,
    CERTIFICATES_MAX,
    CREDITS_TOTAL_MAX,
    SERIAL_MAX,
    check_limit,
)
from settlement.log import LogRecord, SettlementLog
from settlement.serials import (
    BAND_MASK,
    BAND_SHIFT,
    Key,
    Range,
    RangeConvention,
    SerialRange,
    add_ascending,
)

if TYPE_CHECKING:
    from settlement.dvp import FillPlan

FEE_ACCOUNT = 0
CURRENCIES = ("CNY", "HKD", "USD")


class Reject(NamedTuple):
    reason: Reason
    text: str


class Account:
    """One participant's (or the fee account's) cash and credits."""

    __slots__ = ("id", "cash", "cash_held", "credits", "credit_qty", "credits_held")

    def __init__(self, account_id: int, currencies: tuple[str, ...]) -> None:
        self.id = account_id
        self.cash: dict[str, int] = dict.fromkeys(currencies, 0)  # total = available + held
        self.cash_held: dict[str, int] = dict.fromkeys(currencies, 0)
        self.credits: dict[Key, list[Range]] = {}  # every serial owned, held or not
        self.credit_qty: dict[Key, int] = {}  # available = total(credits[key]) - held
        self.credits_held: dict[Key, int] = {}  # = sum of this account's credit-hold parts


class CashHold:
    """Cash reserved by one buy order."""

    __slots__ = ("account", "currency", "amount")

    def __init__(self, account: int, currency: str, amount: int) -> None:
        self.account = account
        self.currency = currency
        self.amount = amount


class CreditHold:
    """Credits reserved by one sell order: a quantity per (project, vintage), in delivery
    order. Holds are counts, not serials: credits of one project and vintage are fungible,
    and a fill delivers the seller's lowest serials of the key (see settlement/README.md)."""

    __slots__ = ("account", "series", "parts", "qty")

    def __init__(self, account: int, series: str) -> None:
        self.account = account
        self.series = series
        self.parts: list[list[Any]] = []  # [[key, qty], ...]; the first part delivers first
        self.qty = 0


class SettlementError(Exception):
    """A fill that the holds do not cover: a bug upstream; the ledger is unchanged."""


class Ledger:
    def __init__(
        self,
        currencies: tuple[str, ...] = CURRENCIES,
        fees: FeeSchedule | None = None,
        fee_account: int = FEE_ACCOUNT,
        *,
        cash_total_max: int = CASH_TOTAL_MAX,
        credits_total_max: int = CREDITS_TOTAL_MAX,
    ) -> None:
        # what custody may hold (settlement/limits.py): cash per currency, credits in all
        self.cash_total_max = check_limit("cash_total_max", cash_total_max)
        self.credits_total_max = check_limit("credits_total_max", credits_total_max)
        if not 0 <= fee_account <= ACCOUNT_MAX:
            raise ValueError(f"fee account {fee_account} must lie in 0..{ACCOUNT_MAX}")
        self.currencies = tuple(sorted(currencies))
        self.fees = fees or FeeSchedule()
        self.maker_bps = self.fees.maker_bps  # plain copies for the fill path
        self.taker_bps = self.fees.taker_bps
        self.fee_account = fee_account
        self.accounts: dict[int, Account] = {fee_account: Account(fee_account, self.currencies)}
        self.cash_holds: dict[int, CashHold] = {}  # order_id -> hold
        self.credit_holds: dict[int, CreditHold] = {}
        self.known: dict[Key, list[Range]] = {}  # every serial in the system, retired included
        self.retired: dict[Key, list[Range]] = {}
        # key -> the batch of each band (band 0: "", serials deposited without a batch)
        self.batches: dict[Key, list[str]] = {}
        # derived from known / retired and batches: registry scope -> serials (band-free)
        self.scoped: dict[str, list[Range]] = {}
        self.scoped_retired: dict[str, list[Range]] = {}
        self.cash_net: dict[str, int] = dict.fromkeys(self.currencies, 0)  # deposits - withdrawals
        self.credits_net: dict[Key, int] = {}  # deposits - withdrawals - retirements
        self.log = SettlementLog()
        self.next_cert = 1

    # -- accounts and cash -------------------------------------------------------------------

    def open_account(self, account: int) -> Reject | None:
        if account in self.accounts:
            return Reject(Reason.ACCOUNT_EXISTS, f"account {account} already exists")
        if account < 0:
            return Reject(Reason.UNKNOWN_ACCOUNT, f"account {account} must not be negative")
        if account > ACCOUNT_MAX:
            return Reject(Reason.LIMIT_EXCEEDED, f"account {account} is above {ACCOUNT_MAX}")
        self.accounts[account] = Account(account, self.currencies)
        return None

    def _check_cash(self, account: int, currency: str, amount: int) -> Reject | Account:
        acct = self.accounts.get(account)
        if acct is None:
            return Reject(Reason.UNKNOWN_ACCOUNT, f"no account {account}")
        if currency not in acct.cash:
            return Reject(Reason.UNKNOWN_CURRENCY, f"no currency {currency!r}")
        if amount <= 0:
            return Reject(Reason.INVALID_AMOUNT, f"amount {amount} must be positive")
        return acct

    def deposit_cash(
        self, account: int, currency: str, amount: int, ref: str, ts: int
    ) -> Reject | CashDeposited:
        acct = self._check_cash(account, currency, amount)
        if isinstance(acct, Reject):
            return acct
        total = self.cash_net[currency] + amount
        if total > self.cash_total_max:
            return Reject(
                Reason.LIMIT_EXCEEDED,
                f"{currency} in custody would be {total} minor units, above cash_total_max "
                f"{self.cash_total_max}",
            )
        body = CashDeposited(account, currency, amount, ref, ts)
        self.log.append(body)
        acct.cash[currency] += amount
        self.cash_net[currency] += amount
        return body

    def withdraw_cash(
        self, account: int, currency: str, amount: int, ref: str, ts: int
    ) -> Reject | CashWithdrawn:
        acct = self._check_cash(account, currency, amount)
        if isinstance(acct, Reject):
            return acct
        available = acct.cash[currency] - acct.cash_held[currency]
        if amount > available:
            return Reject(
                Reason.INSUFFICIENT_CASH, f"needs {amount} {currency}, has {available} available"
            )
        body = CashWithdrawn(account, currency, amount, ref, ts)
        self.log.append(body)
        acct.cash[currency] -= amount
        self.cash_net[currency] -= amount
        return body

    # -- credits in and out ------------------------------------------------------------------

    def deposit_credits(
        self,
        account: int,
        project: str,
        vintage: int,
        start: int,
        end: int,
        quantity: int,
        convention: RangeConvention,
        ref: str,
        ts: int,
        batch: str = "",
    ) -> Reject | CreditsDeposited:
        """A registry block enters; it must not overlap any serial of its identity in the
        system, retired ones included: with a `batch`, any serial of the batch's registry
        scope (settlement/registry.py); without one, any batch-less serial of the project
        and vintage. (The caller has checked that the project is known, and that the
        batch is of the project's registry.)"""
        acct = self.accounts.get(account)
        if acct is None:
            return Reject(Reason.UNKNOWN_ACCOUNT, f"no account {account}")
        rng = serials.normalize(start, end, quantity, convention)
        if isinstance(rng, str):
            return Reject(Reason.INVALID_SERIAL_BLOCK, rng)
        first, last = rng
        key = (project, vintage)
        total = sum(self.credits_net.values()) + quantity  # deposits are rare: a sum will do
        if total > self.credits_total_max:
            return Reject(
                Reason.LIMIT_EXCEEDED,
                f"credits in custody would be {total} t, above credits_total_max "
                f"{self.credits_total_max}",
            )
        block = SerialRange(project, vintage, first, last, batch)
        crossed = self._check_across_bands(key, block)
        if crossed is not None:
            return crossed
        if batch:
            refused = self._check_batch_block(block)
            if isinstance(refused, Reject):
                return refused
            scope = refused
            band = self.band(key, batch)
            names = self.batches.get(key, [""])
            if band is None and len(names) > BATCHES_PER_KEY_MAX:
                return Reject(
                    Reason.LIMIT_EXCEEDED,
                    f"{project}/{vintage} already has {BATCHES_PER_KEY_MAX} batches",
                )
        else:
            if serials.overlaps(self.retired.get(key, []), first, last):
                return Reject(Reason.SERIALS_RETIRED, f"{block} overlaps retired serials")
            if serials.overlaps(self.known.get(key, []), first, last):
                return Reject(Reason.SERIALS_OVERLAP, f"{block} overlaps serials already deposited")
            band = 0
        body = CreditsDeposited(account, block, convention, ref, ts)
        self.log.append(body)
        if batch:
            if band is None:
                band = len(names)
                self.batches[key] = [*names, batch]
            serials.add(self.scoped.setdefault(scope, []), first, last)
            first, last = band << BAND_SHIFT | first, band << BAND_SHIFT | last
        serials.add(self.known.setdefault(key, []), first, last)
        serials.add(acct.credits.setdefault(key, []), first, last)
        acct.credit_qty[key] = acct.credit_qty.get(key, 0) + quantity
        self.credits_net[key] = self.credits_net.get(key, 0) + quantity
        return body

    def _check_across_bands(self, key: Key, block: SerialRange) -> Reject | None:
        """A batch-less serial n of a project and vintage may be serial n of any of its
        batches (the block came without the batch that would say which), so the two never
        coexist: a batch-less block must not share a number with any batch of its key, nor
        a batch's block with the key's batch-less serials, retired ones included. The only
        way one tonne could otherwise be held twice, once without its batch and once with."""
        first, last = block.first, block.last
        # a batch's block against the batch-less serials (band 0), or the other way round
        bands = [0] if block.batch else list(range(1, len(self.batches.get(key, [""]))))
        for band in bands:
            a, b = band << BAND_SHIFT | first, band << BAND_SHIFT | last
            for ranges, reason in (
                (self.retired.get(key, []), Reason.SERIALS_RETIRED),
                (self.known.get(key, []), Reason.SERIALS_OVERLAP),
            ):
                if serials.overlaps(ranges, a, b):
                    other = self.serial_range(key, a, a)
                    of = f"batch {other.batch}" if other.batch else "no batch"
                    return Reject(
                        reason, f"{block} shares numbers with serials of {key[0]}/{key[1]} {of}"
                    )
        return None

    def _check_batch_block(self, block: SerialRange) -> Reject | str:
        """The registry scope of a block with a batch, or why it may not enter: a batch its
        registry's rules do not write, one of another project or vintage, or serials of its
        scope already in the system (retired ones included)."""
        try:
            ident = registry.identify(block.batch, block.first, block.last)
        except registry.SerialFormatError as exc:
            return Reject(Reason.INVALID_SERIAL_BLOCK, str(exc))
        if ident.project not in (None, block.project) or ident.vintage not in (
            None,
            block.vintage,
        ):
            return Reject(
                Reason.INVALID_SERIAL_BLOCK,
                f"{block} is a serial of {ident.project}/{ident.vintage}, "
                f"not of {block.project}/{block.vintage}",
            )
        scope = ident.scope
        if serials.overlaps(self.scoped_retired.get(scope, []), block.first, block.last):
            return Reject(Reason.SERIALS_RETIRED, f"{block} overlaps retired serials of {scope}")
        if serials.overlaps(self.scoped.get(scope, []), block.first, block.last):
            return Reject(
                Reason.SERIALS_OVERLAP, f"{block} overlaps serials of {scope} already deposited"
            )
        return scope

    def band(self, key: Key, batch: str) -> int | None:
        """The band of `batch` among `key`'s serials (0 for ""), or None if it has none."""
        if not batch:
            return 0
        names = self.batches.get(key)
        if names is None or batch not in names:
            return None
        return names.index(batch)

    def serial_range(self, key: Key, first: int, last: int) -> SerialRange:
        """A ledger range of `key` (band numbers) as the serials and batch it is."""
        band = first >> BAND_SHIFT
        if not band:
            return SerialRange(key[0], key[1], first, last)
        return SerialRange(
            key[0], key[1], first & BAND_MASK, last & BAND_MASK, self.batches[key][band]
        )

    def banded(self, r: SerialRange) -> Range | None:
        """The ledger's numbers for `r` (None if the ledger has no serials of its batch)."""
        assert 0 <= r.first <= r.last <= SERIAL_MAX, "a range the caller checked"
        band = self.band(r.key, r.batch)
        if band is None:
            return None
        return band << BAND_SHIFT | r.first, band << BAND_SHIFT | r.last

    def scope_of(self, key: Key, band: int) -> str:
        """Where a band's serials are unique: the registry's scope of its batch; a
        batch-less band has no registry scope ("")."""
        return registry.identify(self.batches[key][band], 0, 0).scope if band else ""

    def holding(self, account: int, key: Key) -> list[SerialRange]:
        """Every serial of `key` the account owns, as serial ranges with their batches."""
        return [self.serial_range(key, a, b) for a, b in self.accounts[account].credits[key]]

    def withdraw_credits(
        self,
        account: int,
        project: str,
        vintage: int,
        start: int,
        end: int,
        quantity: int,
        convention: RangeConvention,
        ref: str,
        ts: int,
        batch: str = "",
    ) -> Reject | CreditsWithdrawn:
        """Exact available serials (of `batch`, or batch-less) leave for the registry."""
        acct = self.accounts.get(account)
        if acct is None:
            return Reject(Reason.UNKNOWN_ACCOUNT, f"no account {account}")
        rng = serials.normalize(start, end, quantity, convention)
        if isinstance(rng, str):
            return Reject(Reason.INVALID_SERIAL_BLOCK, rng)
        key = (project, vintage)
        block = SerialRange(project, vintage, rng[0], rng[1], batch)
        banded = self.banded(block)
        if banded is None:
            return Reject(Reason.SERIALS_NOT_HELD, f"{block}: no serials of that batch")
        first, last = banded
        rejected = self.check_available(acct, key, first, last)
        if rejected is not None:
            return rejected
        body = CreditsWithdrawn(account, block, ref, ts)
        self.log.append(body)
        serials.remove(acct.credits[key], first, last)
        serials.remove(self.known[key], first, last)
        if batch:
            serials.remove(self.scoped[self.scope_of(key, first >> BAND_SHIFT)], *rng)
        acct.credit_qty[key] -= quantity
        self.credits_net[key] -= quantity
        return body

    def check_available(
        self, acct: Account, key: Key, first: int, last: int, also: int = 0
    ) -> Reject | None:
        """Why `first..last` of `key` may not leave `acct` (None when it may): it must be
        owned, and the account must keep enough to cover its holds (`also` more credits of
        `key` leave in the same command)."""
        where = str(self.serial_range(key, first, last))
        if not serials.covers(acct.credits.get(key, []), first, last):
            if serials.overlaps(self.retired.get(key, []), first, last):
                return Reject(Reason.SERIALS_RETIRED, f"{where}: retired serials never move")
            return Reject(Reason.SERIALS_NOT_HELD, f"{where}: not all in account {acct.id}")
        available = acct.credit_qty.get(key, 0)
        if last - first + 1 + also > available:
            return Reject(
                Reason.CREDITS_HELD,
                f"{where}: only {available} t are not held by open sell orders",
            )
        return None

    # -- holds ---------------------------------------------------------------------------------

    def hold_cash(self, order_id: int, account: int, currency: str, amount: int) -> Reject | None:
        """Reserve `amount` for a buy order (or add to its hold, for an amend up)."""
        acct = self.accounts.get(account)
        if acct is None:
            return Reject(Reason.UNKNOWN_ACCOUNT, f"no account {account}")
        held = acct.cash_held.get(currency)
        if held is None:
            return Reject(Reason.UNKNOWN_CURRENCY, f"no currency {currency!r}")
        available = acct.cash[currency] - held
        if amount > available:
            return Reject(
                Reason.INSUFFICIENT_CASH,
                f"needs {amount} {currency} minor units, has {available} available",
            )
        hold = self.cash_holds.get(order_id)
        if hold is None:
            self.cash_holds[order_id] = CashHold(account, currency, amount)
        else:
            hold.amount += amount
        acct.cash_held[currency] = held + amount
        return None

    def hold_credits(
        self, order_id: int, account: int, series: str, keys: list[Key], qty: int
    ) -> Reject | None:
        """Reserve `qty` credits for a sell order (or add them, for an amend up), from the
        first key in `keys` that has any available, then the next."""
        acct = self.accounts.get(account)
        if acct is None:
            return Reject(Reason.UNKNOWN_ACCOUNT, f"no account {account}")
        credit_qty = acct.credit_qty
        if len(keys) == 1:
            key = keys[0]
            have = credit_qty.get(key, 0)
            if qty > have:
                return Reject(
                    Reason.INSUFFICIENT_CREDITS,
                    f"needs {qty} t of {series}, has {have} t available",
                )
            hold = self.credit_holds.get(order_id)
            if hold is None:
                hold = self.credit_holds[order_id] = CreditHold(account, series)
            parts = hold.parts
            if parts and parts[-1][0] == key:
                parts[-1][1] += qty
            else:
                parts.append([key, qty])
            credit_qty[key] = have - qty
            held = acct.credits_held
            held[key] = held.get(key, 0) + qty
            hold.qty += qty
            return None
        available = 0
        for key in keys:
            available += credit_qty.get(key, 0)
        if qty > available:
            return Reject(
                Reason.INSUFFICIENT_CREDITS,
                f"needs {qty} t of {series}, has {available} t available",
            )
        hold = self.credit_holds.get(order_id)
        if hold is None:
            hold = self.credit_holds[order_id] = CreditHold(account, series)
        parts = hold.parts
        left = qty
        for key in keys:
            have = credit_qty.get(key, 0)
            if not have:
                continue
            n = have if have < left else left
            if parts and parts[-1][0] == key:
                parts[-1][1] += n
            else:
                parts.append([key, n])
            credit_qty[key] = have - n
            acct.credits_held[key] = acct.credits_held.get(key, 0) + n
            left -= n
            if not left:
                break
        hold.qty += qty
        return None

    def release_cash(self, order_id: int, keep: int = 0) -> None:
        """Shrink a buy order's hold to `keep` (0: release it entirely)."""
        hold = self.cash_holds.get(order_id)
        if hold is None:
            return
        assert 0 <= keep <= hold.amount, "a release never grows a hold"
        acct = self.accounts[hold.account]
        acct.cash_held[hold.currency] -= hold.amount - keep
        if keep:
            hold.amount = keep
        else:
            del self.cash_holds[order_id]

    def release_credits(self, order_id: int, keep: int = 0) -> None:
        """Shrink a sell order's hold to `keep` credits, releasing the last-held parts first
        (0: release it entirely)."""
        hold = self.credit_holds.get(order_id)
        if hold is None:
            return
        excess = hold.qty - keep
        assert 0 <= excess <= hold.qty, "a release never grows a hold"
        if excess:
            acct = self.accounts[hold.account]
            parts = hold.parts
            credit_qty, held = acct.credit_qty, acct.credits_held
            while excess:
                part = parts[-1]
                key, n = part
                if n > excess:
                    part[1] = n - excess
                    n = excess
                else:
                    parts.pop()
                credit_qty[key] += n
                held[key] -= n
                excess -= n
        if keep:
            hold.qty = keep
        else:
            del self.credit_holds[order_id]

    # -- fills -------------------------------------------------------------------------------

    def apply_fill(self, plan: FillPlan) -> Settled:
        """Apply a fill that `settlement.dvp.plan_fill` checked against this very state, at
        once: plain arithmetic and list edits on the entries the plan found, nothing that
        can refuse or raise, so both legs move together by construction. Returns the
        movement event."""
        cash_hold, buyer, seller, currency = plan.cash_hold, plan.buyer, plan.seller, plan.currency
        credit_hold, cost, body, record = plan.credit_hold, plan.cost, plan.body, plan.record
        # the record first: `push` checks it follows this very head, so a plan is applied
        # at once (nothing else moved the log since) and once (it does not follow itself)
        self.log.push(record)
        # cash: the buyer's held cost to the seller (less its fee) and the fee account
        cash_hold.amount -= cost
        buyer.cash_held[currency] -= cost
        buyer.cash[currency] -= cost
        seller.cash[currency] += plan.proceeds
        plan.fee_acct.cash[currency] += plan.fees
        # credits: out of the sell hold's parts, then the lowest serials of each key
        parts = credit_hold.parts
        seller_held = seller.credits_held
        for key, m in plan.used:
            part = parts[0]
            if part[1] == m:
                del parts[0]
            else:
                part[1] -= m
            seller_held[key] -= m
        credit_hold.qty -= body.qty
        buyer_credits = buyer.credits
        buyer_qty = buyer.credit_qty
        for d in plan.deliveries:
            key, m, ranges, whole, rest, pieces = d.key, d.qty, d.ranges, d.whole, d.rest, d.pieces
            if rest is None:  # the lowest serials: a prefix of the seller's list
                del ranges[:whole]
            elif whole:
                ranges[: whole + 1] = (rest,)
            else:
                ranges[0] = rest
            got = buyer_credits.get(key)
            if got:
                add_ascending(got, pieces)
            else:
                buyer_credits[key] = pieces  # the plan's own list, handed over
            buyer_qty[key] = buyer_qty.get(key, 0) + m
        assert cash_hold.amount >= 0 and credit_hold.qty >= 0, "a fill within its holds"
        return body

    # -- retirements -------------------------------------------------------------------------

    def retire(self, account: int, key: Key, ranges: list[Range], body: Retired) -> LogRecord:
        """Retire `ranges` of the account's `key` (a plan `settlement.retirement` checked
        against this state: available, not held) under the next certificate number, with
        the record `body`; they stay in `known` and move to `retired` for good."""
        assert body.cert_id == f"RC-{self.next_cert:08d}", "the next certificate"
        record = self.log.append(body)
        self.next_cert += 1
        self._end(self.accounts[account], key, ranges, body.qty)
        return record

    def cancel_credits(
        self, account: int, key: Key, banded: Range, body: CreditsCancelled
    ) -> LogRecord:
        """A reversal: the registry cancelled `banded` (checked available in the account);
        like retired serials they stay in `known`, in `retired`, for good."""
        record = self.log.append(body)
        self._end(self.accounts[account], key, [banded], body.range.qty)
        return record

    def retire_delivered(self, body: FillRetired) -> LogRecord:
        """Buy-and-retire: retire exactly what a fill just delivered to `body.account`
        (settlement/basket.py), under the order's certificate number, which the caller
        assigned; the record comes right after the fill's."""
        acct = self.accounts[body.account]
        record = self.log.append(body)
        for r in body.ranges:
            banded = self.banded(r)
            assert banded is not None, "a fill delivers serials of batches the ledger knows"
            self._end(acct, r.key, [banded], r.qty)
        return record

    def _end(self, acct: Account, key: Key, ranges: list[Range], qty: int) -> None:
        """Move `ranges` (`qty` credits) of `key` out of `acct` into `retired`."""
        retired = self.retired.setdefault(key, [])
        for a, b in ranges:
            serials.remove(acct.credits[key], a, b)
            serials.add(retired, a, b)
            band = a >> BAND_SHIFT
            if band:
                scoped = self.scoped_retired.setdefault(self.scope_of(key, band), [])
                serials.add(scoped, a & BAND_MASK, b & BAND_MASK)
        acct.credit_qty[key] -= qty
        self.credits_net[key] -= qty
        assert acct.credit_qty[key] >= 0, "ended only what holds leave free"

    # -- queries ---------------------------------------------------------------------------

    def balance(self, account: int, currency: str) -> tuple[int, int]:
        """(total, held) cash of an account in one currency."""
        acct = self.accounts[account]
        return acct.cash[currency], acct.cash_held[currency]

    def available_credits(self, account: int, key: Key) -> list[Range]:
        """The account's ranges of `key`, in the ledger's band numbers (see `holding`)."""
        return list(self.accounts[account].credits.get(key, []))

    # -- limits ----------------------------------------------------------------------------

    def upgrade(self) -> None:
        """Give a ledger unpickled from a snapshot older than the limits their defaults."""
        if not hasattr(self, "cash_total_max"):
            self.cash_total_max = CASH_TOTAL_MAX
            self.credits_total_max = CREDITS_TOTAL_MAX
        self.__dict__.pop("fault", None)  # the failure-injection hook, gone with plan/apply
        if not hasattr(self, "batches"):  # before registry batches: every serial in band 0
            self.batches = {}
            self.scoped = {}
            self.scoped_retired = {}

    def over_limit(self) -> str | None:
        """What this ledger holds beyond a limit (only a state that the limits did not guard
        can: one restored from an older snapshot), or None."""
        cash_max = min(self.cash_total_max, AMOUNT_MAX)  # a setting is never above AMOUNT_MAX
        for currency, total in sorted(self.cash_net.items()):
            if total > cash_max:
                return f"{total} {currency} in custody, above cash_total_max {cash_max}"
        credits = sum(self.credits_net.values())
        credits_max = min(self.credits_total_max, AMOUNT_MAX)
        if credits > credits_max:
            return f"{credits} t in custody, above credits_total_max {credits_max}"
        if self.next_cert - 1 > CERTIFICATES_MAX:
            return f"{self.next_cert - 1} certificates, above {CERTIFICATES_MAX}"
        if max(self.accounts) > ACCOUNT_MAX:
            return f"account {max(self.accounts)}, above {ACCOUNT_MAX}"
        return None

    # -- invariants ------------------------------------------------------------------------

    def check_invariants(self) -> None:
        """Plain asserts over the whole ledger (tests call this after every step)."""
        held_cash: dict[tuple[int, str], int] = {}
        for hold in self.cash_holds.values():
            assert hold.amount > 0, "a cash hold is positive"
            k = (hold.account, hold.currency)
            held_cash[k] = held_cash.get(k, 0) + hold.amount
        held_credits: dict[tuple[int, Key], int] = {}
        for ch in self.credit_holds.values():
            assert ch.qty == sum(n for _, n in ch.parts) > 0, "hold qty = its parts"
            assert all(n > 0 for _, n in ch.parts), "no empty part"
            for key, n in ch.parts:
                hk = (ch.account, key)
                held_credits[hk] = held_credits.get(hk, 0) + n
        place: dict[Key, list[Range]] = {}  # every live or retired serial, from where it sits
        totals = dict.fromkeys(self.currencies, 0)
        live: dict[Key, int] = {}
        for acct in self.accounts.values():
            for currency, value in acct.cash.items():
                held = acct.cash_held[currency]
                assert held == held_cash.get((acct.id, currency), 0), "held = sum of holds"
                assert 0 <= held <= value, f"account {acct.id}: 0 <= held <= total {currency}"
                totals[currency] += value
            for key in set(acct.credits) | set(acct.credit_qty) | set(acct.credits_held):
                ranges = acct.credits.get(key, [])
                owned = serials.total(ranges)
                available = acct.credit_qty.get(key, 0)
                held = acct.credits_held.get(key, 0)
                assert held == held_credits.get((acct.id, key), 0), "held credits = holds"
                assert available >= 0 and held >= 0, "no negative credits"
                assert available + held == owned, f"available + held = owned ({key})"
                for i, (a, b) in enumerate(ranges):
                    assert a <= b and (i == 0 or ranges[i - 1][1] + 1 < a), "sorted, merged"
                place.setdefault(key, []).extend(ranges)
                live[key] = live.get(key, 0) + owned
        assert totals == self.cash_net, f"cash conserved: {totals} != {self.cash_net}"
        for key in set(self.credits_net) | set(live):
            assert live.get(key, 0) == self.credits_net.get(key, 0), f"{key} conserved"
        for key, ranges in self.retired.items():
            place.setdefault(key, []).extend(ranges)
        for key, ranges in place.items():
            ranges.sort()
            for i in range(1, len(ranges)):
                assert ranges[i - 1][1] < ranges[i][0], f"a serial of {key} is in two places"
            merged: list[Range] = []
            for a, b in ranges:
                serials.add(merged, a, b)
            assert merged == self.known.get(key, []), f"every known serial of {key} has a place"
        for key, ranges in self.known.items():
            assert not ranges or key in place, f"known serials of {key} have a place"
        for key, names in self.batches.items():
            assert names[0] == "" and len(set(names)) == len(names) > 1, f"{key}: bands named"
            assert len(names) <= BATCHES_PER_KEY_MAX + 1, f"{key}: at most the batch limit"
        for key, ranges in self.known.items():
            bands = len(self.batches.get(key, [""]))
            assert all(a >> BAND_SHIFT == b >> BAND_SHIFT < bands for a, b in ranges), "banded"
        scoped = (
            {s: r for s, r in self.scoped.items() if r},
            {s: r for s, r in self.scoped_retired.items() if r},
        )
        assert self.scopes() == scoped, "the scope indexes agree with known and retired"

    def scopes(self) -> tuple[dict[str, list[Range]], dict[str, list[Range]]]:
        """`scoped` and `scoped_retired` as `known`, `retired` and `batches` say they are
        (a deposit that overlaps another band's serial of the same scope is refused, so
        ranges of one scope from different keys never overlap)."""
        out: tuple[dict[str, list[Range]], dict[str, list[Range]]] = ({}, {})
        for index, source in zip(out, (self.known, self.retired), strict=True):
            for key in sorted(source):
                for a, b in source[key]:
                    band = a >> BAND_SHIFT
                    if band:
                        ranges = index.setdefault(self.scope_of(key, band), [])
                        serials.add(ranges, a & BAND_MASK, b & BAND_MASK)
        for index in out:
            for scope in [s for s, r in index.items() if not r]:
                del index[scope]
        return out
