"""The core: the matching engine and the ledger as one deterministic state machine.

`Core.apply(cmd)` takes any engine or settlement command and returns its events. For an
order it runs the exchange's steps one by one, so that the ledger can hold before the book
sees the order and settle each fill as it happens:

1. `exchange.expire_due(ts)`, releasing the holds of the orders that expired;
2. `exchange.check(cmd)`; a rejection changes nothing;
3. the hold (buy: limit price x qty, or the market buy's cash limit, plus the largest fee;
   sell: the series' credits; amend: only the increase), or a rejection;
4. `exchange.apply(cmd)`, then every `Trade` settled DvP in order (a `Settled` event right
   after it), and every order that left the book or shrank has its hold released or cut
   to what its open quantity still needs.

A settlement failure after matching is a bug (the holds guarantee settlement): it raises,
with the ledger exactly as it was before that fill, and the process must stop.
"""

from __future__ import annotations

import pickle
from bisect import insort
from collections.abc import Callable, Iterable
from typing import Any

from engine.commands import (
    AdvanceTime,
    Amend,
    Cancel,
    Command,
    Halt,
    MassCancel,
    NewOrder,
    OrderType,
    Resume,
    SetReferencePrice,
    Side,
    TimeInForce,
)
from engine.events import Cancelled, Event, Expired, Reason, Rejected, Trade
from engine.exchange import COID_WINDOW, Exchange
from engine.reference import Project, Series
from screening.language import Credit, Expr, matches
from settlement import catalogue_commands, registry, snapshot
from settlement.basket import (
    Retiring,
    apply_basket,
    certificate,
    certificates_left,
    check_retire,
    retire_fill,
)
from settlement.build import compiled
from settlement.catalogue import NEVER, Catalogue, implicit_rule, year_of
from settlement.catalogue_types import RuleVersion, ScreenHit
from settlement.commands import (
    AddRuleVersion,
    AnyCommand,
    BasketBuy,
    CancelCredits,
    CatalogueCommand,
    ChangeLabel,
    Deposit,
    DepositCredits,
    ListContract,
    ListProject,
    ListSeries,
    OpenAccount,
    ReinstateProject,
    Retire,
    SuspendProject,
    Withdraw,
    WithdrawCredits,
)
from settlement.dvp import plan_fill
from settlement.events import AccountOpened, Listed, SettlementEvent
from settlement.fees import BPS, FeeSchedule
from settlement.ledger import CURRENCIES, FEE_ACCOUNT, Ledger, Reject
from settlement.limits import (
    AMOUNT_MAX,
    CASH_TOTAL_MAX,
    CERTIFICATES_MAX,
    CREDITS_TOTAL_MAX,
)
from settlement.log import LogRecord
from settlement.retirement import (
    apply_retirement,
    check_details,
    plan_by_quantity,
    plan_by_ranges,
)
from settlement.serials import Key
from settlement.state import OLDER, canonical, state_digest

BUY = Side.BUY
MARKET = OrderType.MARKET
AnyEvent = Event | SettlementEvent


class Core:
    """Exchange + ledger. Every state change after construction goes through `apply`."""

    _retiring: Retiring | None = None  # the buy-and-retire order being applied (issue 14)

    def __init__(
        self,
        series: Iterable[Series] = (),
        projects: Iterable[Project] = (),
        *,
        maker_fee_bps: int = 0,
        taker_fee_bps: int = 0,
        currencies: Iterable[str] = CURRENCIES,
        fee_account: int = FEE_ACCOUNT,
        cash_total_max: int = CASH_TOTAL_MAX,
        credits_total_max: int = CREDITS_TOTAL_MAX,
        coid_window: int = COID_WINDOW,
    ) -> None:
        self.fees = FeeSchedule(maker_fee_bps, taker_fee_bps)
        self._max_bps = self.fees.max_bps
        self.exchange = Exchange(coid_window=coid_window)
        self.ledger = Ledger(
            tuple(currencies),
            self.fees,
            fee_account,
            cash_total_max=cash_total_max,
            credits_total_max=credits_total_max,
        )
        self.projects: dict[str, Project] = {}
        self.currency: dict[str, str] = {}  # series id -> currency
        self.keys: dict[str, list[Key]] = {}  # series id -> eligible (project, vintage), in order
        self.catalogue = Catalogue()  # labels, suspensions, contract rules (issue 13)
        self.last_price: dict[str, int] = {}  # series id -> its last trade's price
        for p in projects:
            if p.id in self.projects:
                raise ValueError(f"project {p.id} given twice")
            self._list_project(p)
        for s in series:
            rejected = self._check_series(s)
            if rejected is not None:
                raise ValueError(rejected.text)
            self._list_series(s)

    # -- the command interface -----------------------------------------------------------------

    def apply(self, cmd: AnyCommand) -> list[AnyEvent]:
        """Apply one command; its events, in order. Deterministic: no clock, no I/O."""
        kind = type(cmd)
        if kind is NewOrder:  # the hot paths skip the dispatch table
            return self._new_order(cmd)  # type: ignore[arg-type]
        if kind is Cancel:
            return self._cancel(cmd)  # type: ignore[arg-type]
        return _DISPATCH[kind](self, cmd)

    def drain_records(self) -> list[LogRecord]:
        """Settlement-log records appended since the last drain, oldest first."""
        return self.ledger.log.drain()

    # -- orders ---------------------------------------------------------------------------------

    def _expire(self, ts: int, events: list[AnyEvent]) -> None:
        """Expire due GTD orders into `events` (empty on entry) and release their holds;
        then apply the catalogue changes effective by `ts` (cancelling the resting sell
        orders they make ineligible)."""
        self.exchange.expire_due(ts, events)  # type: ignore[arg-type]
        if events:
            self._release_expired(events)
        if ts >= self.catalogue.due:
            catalogue_commands.tick(self, ts, events)

    def _release_expired(self, events: list[AnyEvent]) -> None:
        ledger = self.ledger
        for ev in events:
            if isinstance(ev, Expired):
                if ev.side is BUY:
                    ledger.release_cash(ev.order_id)
                else:
                    ledger.release_credits(ev.order_id)

    def _new_order(self, cmd: NewOrder) -> list[AnyEvent]:
        events: list[AnyEvent] = []
        ex = self.exchange
        ex.expire_due(cmd.ts, events)  # type: ignore[arg-type]  # (inlined _expire)
        if events:
            self._release_expired(events)
        if cmd.ts >= self.catalogue.due:
            catalogue_commands.tick(self, cmd.ts, events)
        rejected = ex.check(cmd)
        if rejected is None and cmd.retire is not None:
            rejected = self._check_buy_and_retire(cmd)
        if rejected is not None:
            events.append(rejected)
            return events
        order_id = ex.next_order_id
        ledger = self.ledger
        if cmd.side is BUY:
            if cmd.type is MARKET:
                if not cmd.max_notional:
                    events.append(
                        _rejected(
                            cmd.account,
                            cmd.client_order_id,
                            0,
                            Reject(
                                Reason.MARKET_BUY_NEEDS_CASH_LIMIT,
                                "a market buy needs max_notional, the most it may spend",
                            ),
                            cmd.ts,
                        )
                    )
                    return events
                notional = cmd.max_notional
            else:
                notional = cmd.price * cmd.qty
            refused = ledger.hold_cash(
                order_id,
                cmd.account,
                self.currency[cmd.series],
                notional + notional * self._max_bps // BPS,  # = fees.buy_hold(notional)
            )
        else:
            refused = ledger.hold_credits(
                order_id, cmd.account, cmd.series, self.keys[cmd.series], cmd.qty
            )
        if refused is not None:
            events.append(_rejected(cmd.account, cmd.client_order_id, 0, refused, cmd.ts))
            return events
        start = len(events)
        if cmd.retire is not None:
            return self._buy_and_retire(cmd, events, start, order_id)
        ex.apply(cmd, events)  # type: ignore[arg-type]
        if len(events) - start == 2 and order_id in ex.open_orders:
            return events  # Accepted + BookDelta: it rested untouched, holding what it needs
        return self._settle(cmd, events, start, order_id, cmd.side)

    def _buy_and_retire(
        self, cmd: NewOrder, events: list[AnyEvent], start: int, order_id: int
    ) -> list[AnyEvent]:
        """A held buy-and-retire order (checked on entry): every fill's credits retired in
        the fill's own transaction, one certificate at the end (settlement/basket.py)."""
        assert cmd.retire is not None
        self._retiring = retiring = Retiring(order_id, cmd.account, cmd.client_order_id, cmd.retire)
        try:
            self.exchange.apply(cmd, events)  # type: ignore[arg-type]
            self._settle(cmd, events, start, order_id, cmd.side)
            if retiring.fills:
                events.append(certificate(retiring, cmd.ts))
        finally:
            self._retiring = None
        return events

    def _basket(self, cmd: BasketBuy) -> list[AnyEvent]:
        events: list[AnyEvent] = []
        self._expire(cmd.ts, events)
        refused = apply_basket(self, cmd, events)
        if refused is not None:
            events.append(_rejected(cmd.account, cmd.client_order_id, 0, refused, cmd.ts))
        return events

    def _check_buy_and_retire(self, cmd: NewOrder) -> Rejected | None:
        assert cmd.retire is not None
        resting = cmd.type is not MARKET and cmd.tif not in (TimeInForce.IOC, TimeInForce.FOK)
        refused = check_retire(cmd.retire, cmd.side, resting)
        if refused is None and not certificates_left(self):
            refused = Reject(Reason.LIMIT_EXCEEDED, f"more than {CERTIFICATES_MAX} certificates")
        if refused is None:
            return None
        return _rejected(cmd.account, cmd.client_order_id, 0, refused, cmd.ts)

    def _cancel(self, cmd: Cancel) -> list[AnyEvent]:
        """`_engine` for one cancel, without the generic steps: it trades nothing, and only
        the order it cancels (and any order that expired first) gives its hold back."""
        events: list[AnyEvent] = []
        ex = self.exchange
        ex.expire_due(cmd.ts, events)  # type: ignore[arg-type]
        if events:
            self._release_expired(events)
        if cmd.ts >= self.catalogue.due:
            catalogue_commands.tick(self, cmd.ts, events)
        rejected = ex.check(cmd)
        if rejected is not None:
            events.append(rejected)
            return events
        start = len(events)
        ex.apply(cmd, events)  # type: ignore[arg-type]
        ledger = self.ledger
        for i in range(start, len(events)):
            ev: Any = events[i]
            if type(ev) is Cancelled:
                if ev.side is BUY:
                    ledger.release_cash(ev.order_id)
                else:
                    ledger.release_credits(ev.order_id)
        return events

    def _run(
        self, cmd: Command, events: list[AnyEvent], order_id: int, side: Side | None
    ) -> list[AnyEvent]:
        """Apply a checked (and held) engine command, then `_settle` its events."""
        start = len(events)
        self.exchange.apply(cmd, events)  # type: ignore[arg-type]
        return self._settle(cmd, events, start, order_id, side)

    def _settle(
        self,
        cmd: Command,
        events: list[AnyEvent],
        start: int,
        order_id: int,
        side: Side | None,
    ) -> list[AnyEvent]:
        """Settle and release as the engine's events from `start` on say.

        Each `Trade` is settled as it comes, in order; the `Settled` events follow the
        engine's events (clients pair them by `trade_id`)."""
        open_orders = self.exchange.open_orders
        ledger = self.ledger
        buy_hold = self.fees.buy_hold
        currency = self.currency
        versions = self.catalogue.fill_version
        last_price = self.last_price
        settled: list[AnyEvent] = []
        touched = False  # whether the command's own order traded or was cancelled
        for i in range(start, len(events)):
            ev: Any = events[i]
            kind = type(ev)
            if kind is Trade:
                touched = True
                # DvP: plan the fill (refuses with nothing moved), then apply it (cannot fail)
                sid = ev.series
                plan = plan_fill(ledger, ev, currency[sid], versions.get(sid, 0))
                body = ledger.apply_fill(plan)
                settled.append(body)
                last_price[sid] = ev.price
                if self._retiring is not None:  # buy-and-retire: in the same transaction
                    settled.append(retire_fill(self, self._retiring, body))
                # the maker traded at its own price: keep only what its open rest needs
                maker_id = ev.maker_order_id
                maker = open_orders.get(maker_id)
                if ev.aggressor is BUY:
                    if maker is None:  # an open sell's hold already equals its open qty
                        ledger.release_credits(maker_id)
                elif maker is None:
                    ledger.release_cash(maker_id)
                else:
                    keep = buy_hold(maker.price * maker.qty)
                    if ledger.cash_holds[maker_id].amount > keep:
                        ledger.release_cash(maker_id, keep)
            elif kind is Cancelled or kind is Expired:
                touched = True
                if ev.side is BUY:
                    ledger.release_cash(ev.order_id)
                else:
                    ledger.release_credits(ev.order_id)
        if settled:
            events.extend(settled)
        # an order that rested untouched holds exactly what it needs
        if side is not None and (touched or type(cmd) is not NewOrder):
            self._reconcile(order_id, side)
        return events

    def _reconcile(self, order_id: int, side: Side) -> None:
        """Cut an order's hold to what its open quantity needs (nothing once it is closed)."""
        order = self.exchange.open_orders.get(order_id)
        ledger = self.ledger
        if side is BUY:
            if order is None:
                ledger.release_cash(order_id)
                return
            keep = self.fees.buy_hold(order.price * order.qty)
            if ledger.cash_holds[order_id].amount > keep:
                ledger.release_cash(order_id, keep)
        else:
            ledger.release_credits(order_id, order.qty if order is not None else 0)

    def _amend(self, cmd: Amend) -> list[AnyEvent]:
        events: list[AnyEvent] = []
        ex = self.exchange
        self._expire(cmd.ts, events)
        rejected = ex.check(cmd)
        if rejected is not None:
            events.append(rejected)
            return events
        order = ex.open_orders[cmd.order_id]
        price = cmd.price or order.price
        qty = cmd.qty or order.qty
        ledger = self.ledger
        refused: Reject | None = None
        if order.side is BUY:
            more = self.fees.buy_hold(price * qty) - ledger.cash_holds[order.order_id].amount
            if more > 0:
                refused = ledger.hold_cash(
                    order.order_id, order.account, self.currency[order.series], more
                )
        else:
            more = qty - ledger.credit_holds[order.order_id].qty
            if more > 0:
                refused = ledger.hold_credits(
                    order.order_id, order.account, order.series, self.keys[order.series], more
                )
        if refused is not None:
            events.append(
                _rejected(cmd.account, order.client_order_id, order.order_id, refused, cmd.ts)
            )
            return events
        return self._run(cmd, events, order.order_id, order.side)

    def _engine(
        self, cmd: Cancel | MassCancel | Halt | Resume | SetReferencePrice
    ) -> list[AnyEvent]:
        events: list[AnyEvent] = []
        self._expire(cmd.ts, events)
        rejected = self.exchange.check(cmd)
        if rejected is not None:
            events.append(rejected)
            return events
        return self._run(cmd, events, 0, None)

    def _advance_time(self, cmd: AdvanceTime) -> list[AnyEvent]:
        """Expire what is due by `cmd.ts` and release its holds; nothing else."""
        events: list[AnyEvent] = []
        self._expire(cmd.ts, events)
        return events

    def next_expiry_ts(self) -> int | None:
        """When time next changes the state by itself (None: nothing waits): the next GTD
        expiry (`Exchange.next_expiry_ts`) or catalogue change (a label or rule version
        effective later, a new year for a rolling vintage window), whichever is first. The
        server applies `AdvanceTime` then."""
        expiry = self.exchange.next_expiry_ts()
        due = self.catalogue.due
        if due == NEVER:
            return expiry
        return due if expiry is None else min(expiry, due)

    # -- settlement commands -----------------------------------------------------------------

    def _open_account(self, cmd: OpenAccount) -> list[AnyEvent]:
        events: list[AnyEvent] = []
        self._expire(cmd.ts, events)
        refused = self.ledger.open_account(cmd.account)
        events.append(
            _rejected(cmd.account, "", 0, refused, cmd.ts)
            if refused is not None
            else AccountOpened(cmd.account, cmd.ts)
        )
        return events

    def _cash(self, cmd: Deposit | Withdraw) -> list[AnyEvent]:
        events: list[AnyEvent] = []
        self._expire(cmd.ts, events)
        move = self.ledger.deposit_cash if type(cmd) is Deposit else self.ledger.withdraw_cash
        result = move(cmd.account, cmd.currency, cmd.amount, cmd.ref, cmd.ts)
        events.append(
            _rejected(cmd.account, cmd.ref, 0, result, cmd.ts)
            if isinstance(result, Reject)
            else result
        )
        return events

    def _credits(self, cmd: DepositCredits | WithdrawCredits) -> list[AnyEvent]:
        events: list[AnyEvent] = []
        self._expire(cmd.ts, events)
        if cmd.project not in self.projects:
            refused = Reject(Reason.UNKNOWN_PROJECT, f"no project {cmd.project!r}")
            events.append(_rejected(cmd.account, cmd.ref, 0, refused, cmd.ts))
            return events
        if cmd.project in self.catalogue.suspended:
            refused = Reject(
                Reason.PROJECT_SUSPENDED,
                f"project {cmd.project} is suspended: its credits are frozen",
            )
            events.append(_rejected(cmd.account, cmd.ref, 0, refused, cmd.ts))
            return events
        if cmd.batch:
            refused_batch = _check_registry(self.projects[cmd.project], cmd.batch)
            if refused_batch is not None:
                events.append(_rejected(cmd.account, cmd.ref, 0, refused_batch, cmd.ts))
                return events
        ledger = self.ledger
        new_key = (cmd.project, cmd.vintage) not in ledger.known
        move = ledger.deposit_credits if type(cmd) is DepositCredits else ledger.withdraw_credits
        result = move(
            cmd.account,
            cmd.project,
            cmd.vintage,
            cmd.start,
            cmd.end,
            cmd.quantity,
            cmd.convention,
            cmd.ref,
            cmd.ts,
            cmd.batch,
        )
        if isinstance(result, Reject):
            events.append(_rejected(cmd.account, cmd.ref, 0, result, cmd.ts))
            return events
        events.append(result)
        if new_key and type(cmd) is DepositCredits:
            self._key_added((cmd.project, cmd.vintage))
        return events

    def _key_added(self, key: Key) -> None:
        """Credits of a new (project, vintage) arrived: each contract whose rule admits
        them now lists the key, in allocation order."""
        project = self.projects[key[0]]
        cat = self.catalogue
        credit = cat.credit(project, key[1])
        if key[0] in cat.suspended:
            return
        for sid, book in self.exchange.books.items():
            rule = cat.rules.get(sid) and cat.governing_rule(sid)
            if (
                book.series.project is None
                and rule
                and matches(cat.expr(rule.rule), credit, cat.year)
            ):
                insort(self.keys[sid], key)

    def _retire(self, cmd: Retire) -> list[AnyEvent]:
        events: list[AnyEvent] = []
        self._expire(cmd.ts, events)
        ledger = self.ledger
        plan: Reject | dict[Key, list[tuple[int, int]]]
        if cmd.account not in ledger.accounts:
            plan = Reject(Reason.UNKNOWN_ACCOUNT, f"no account {cmd.account}")
        elif (
            refused := check_details(cmd.beneficiary, cmd.claim, cmd.period_start, cmd.period_end)
        ) is not None:
            plan = refused
        elif cmd.ranges:
            if cmd.series or cmd.qty:
                plan = Reject(Reason.INVALID_RETIREMENT, "give either ranges or series and qty")
            elif frozen := [r for r in cmd.ranges if r.project in self.catalogue.suspended]:
                plan = Reject(Reason.PROJECT_SUSPENDED, f"project {frozen[0].project} is suspended")
            else:
                plan = plan_by_ranges(ledger, cmd.account, cmd.ranges)
        elif cmd.series not in self.keys:
            plan = Reject(Reason.UNKNOWN_SERIES, f"no series {cmd.series!r}")
        elif (
            project := self.exchange.books[cmd.series].series.project
        ) in self.catalogue.suspended:
            plan = Reject(Reason.PROJECT_SUSPENDED, f"project {project} is suspended")
        else:
            plan = plan_by_quantity(ledger, cmd.account, self.keys[cmd.series], cmd.qty, cmd.series)
        if not isinstance(plan, Reject) and ledger.next_cert - 1 + len(plan) > CERTIFICATES_MAX:
            plan = Reject(Reason.LIMIT_EXCEEDED, f"more than {CERTIFICATES_MAX} certificates")
        if isinstance(plan, Reject):
            events.append(_rejected(cmd.account, cmd.ref, 0, plan, cmd.ts))
            return events
        events.extend(
            apply_retirement(
                ledger,
                cmd.account,
                plan,
                cmd.beneficiary,
                cmd.purpose,
                cmd.claim,
                cmd.period_start,
                cmd.period_end,
                cmd.ts,
            )
        )
        return events

    def _list(self, cmd: ListProject | ListSeries) -> list[AnyEvent]:
        events: list[AnyEvent] = []
        self._expire(cmd.ts, events)
        if isinstance(cmd, ListProject):
            if cmd.project.id in self.projects:
                refused: Reject | None = Reject(
                    Reason.ALREADY_LISTED, f"project {cmd.project.id} is already listed"
                )
            else:
                refused = None
                self._list_project(cmd.project)
                events.append(Listed("project", cmd.project.id, cmd.ts))
        else:
            refused = self._check_series(cmd.series)
            if refused is None:
                self._list_series(cmd.series)
                events.append(Listed("series", cmd.series.id, cmd.ts))
        if refused is not None:
            events.append(_rejected(0, "", 0, refused, cmd.ts))
        return events

    # -- reference data ------------------------------------------------------------------------

    def _check_series(self, s: Series, contract: bool = False) -> Reject | None:
        """Why `s` may not be listed (None if it may); `contract`: it comes with a rule."""
        if s.id in self.exchange.books:
            return Reject(Reason.ALREADY_LISTED, f"series {s.id} is already listed")
        if s.currency not in self.ledger.currencies:
            return Reject(Reason.UNKNOWN_CURRENCY, f"series {s.id}: no currency {s.currency!r}")
        if s.project is None and s.mitigation is None and not contract:
            return Reject(
                Reason.NOT_A_CONTRACT,
                f"series {s.id}: a series without a project needs a standard, mitigation and "
                "vintage, or a rule (list it with list_contract)",
            )
        if max(s.tick, s.lot, s.ref_price, s.band_bps, s.max_order_qty) > AMOUNT_MAX:
            return Reject(
                Reason.LIMIT_EXCEEDED, f"series {s.id}: a trading parameter is above {AMOUNT_MAX}"
            )
        return None

    def _list_project(self, p: Project) -> None:
        """A new project has no credits in the ledger yet: no series' keys change."""
        self.projects[p.id] = p

    def _list_series(self, s: Series) -> None:
        """Open the book; a generic series listed by standard, mitigation and vintage gets
        the rule that says so as its version 1 (a contract has its own already)."""
        if s.project is None and s.id not in self.catalogue.rules:
            self.catalogue.add_contract(s.id, implicit_rule(s), 0, recorded=False)
        self.exchange.add_series(s)
        self.currency[s.id] = s.currency
        self.keys[s.id] = self.catalogue.eligible(s, self.projects, list(self.ledger.known))

    def _catalogue(self, cmd: CatalogueCommand) -> list[AnyEvent]:
        """A catalogue command (settlement/catalogue_commands.py), after expiry."""
        events: list[AnyEvent] = []
        self._expire(cmd.ts, events)
        result = _CATALOGUE[type(cmd)](self, cmd)
        if isinstance(result, Reject):
            account = cmd.account if isinstance(cmd, CancelCredits) else 0
            events.append(_rejected(account, cmd.ref, 0, result, cmd.ts))
        else:
            events.extend(result)
        return events

    # -- queries -------------------------------------------------------------------------------

    def balances(self, account: int) -> dict[str, tuple[int, int]]:
        """currency -> (total, held) cash of an account."""
        acct = self.ledger.accounts[account]
        return {c: (acct.cash[c], acct.cash_held[c]) for c in sorted(acct.cash)}

    def credits(self, account: int) -> dict[Key, tuple[int, int]]:
        """(project, vintage) -> (available, held) credits of an account."""
        acct = self.ledger.accounts[account]
        keys = sorted(set(acct.credit_qty) | set(acct.credits_held))
        out = {k: (acct.credit_qty.get(k, 0), acct.credits_held.get(k, 0)) for k in keys}
        return {k: v for k, v in out.items() if v != (0, 0)}

    def contract_rules(self, series: str) -> list[RuleVersion]:
        """Every rule version of a generic series, oldest first ([] for a project's)."""
        return list(self.catalogue.rules.get(series, []))

    def screened(self, expr: Expr, ts: int) -> list[tuple[Series, tuple[Credit, ...]]]:
        """Each series a screen admits, by id, with the credit lines it admits (see
        `screen`); a basket sweeps these books."""
        cat, year = self.catalogue, year_of(ts)
        out = []
        for sid in sorted(self.exchange.books):
            s = self.exchange.books[sid].series
            if s.project is not None:
                keys = [(s.project, s.vintage)]
            else:  # the lines it could deliver now: eligible, with credits in custody
                keys = [k for k in self.keys[sid] if self.ledger.credits_net.get(k, 0) > 0]
            credits = tuple(cat.credit(self.projects[p], v) for p, v in keys if p in self.projects)
            if credits and all(matches(expr, c, year) for c in credits):
                out.append((s, credits))
        return out

    def screen(self, expr: Expr, ts: int) -> list[ScreenHit]:
        """The series a screen admits, by id, judged at `ts` (rolling vintage windows use
        its year; labels and suspensions are as of the last command). A project's series
        matches when the screen admits its project and vintage; a contract matches when
        it has eligible credits in the ledger and the screen admits every one of them:
        whatever a seller may deliver into it then passes the screen."""
        cat = self.catalogue
        hits = []
        for s, credits in self.screened(expr, ts):
            sid = s.id
            book = self.exchange.books[sid]
            rule = cat.governing_rule(sid) if s.project is None else None
            hits.append(
                ScreenHit(
                    series=s,
                    credits=credits,
                    best_bid=book.best_bid(),
                    best_ask=book.best_ask(),
                    last_price=self.last_price.get(sid),
                    offered=sum(level.qty for level in book.asks.values()),
                    rule_version=rule.version if rule is not None else 0,
                    rule=rule.rule if rule is not None else "",
                    halted=book.halted,
                )
            )
        return hits

    # -- state ---------------------------------------------------------------------------------

    def canonical(self) -> list[Any]:
        """The whole state as plain lists, ints and strings in a canonical order."""
        return canonical(self)

    def state_hash(self) -> str:
        """Hex SHA-256 of `canonical()`: equal states give equal hashes in any process."""
        return state_digest(self.canonical())

    def has_state_hash(self, recorded: str) -> bool:
        """Whether `recorded` (a snapshot's) is this state's hash, in the current format or
        in a format before it (`settlement.state.OLDER`), so that folders written by earlier
        versions keep their snapshots."""
        if recorded == self.state_hash():
            return True
        return any(recorded == state_digest(canonical(self, v)) for v in OLDER)

    def snapshot(self) -> bytes:
        """The full state as bytes, independent of class layout (settlement/snapshot.py)."""
        return snapshot.dump(self)

    @classmethod
    def restore(cls, data: bytes) -> Core:
        """The core a snapshot holds. ValueError if it is not one, or if it holds more than
        the limits allow (a folder written before they existed): such a state is not
        restored, and recovery replays the journal instead, which names the command.

        A snapshot written before the layout-independent format is a pickle of the core:
        the pure-Python build still reads it; the compiled one cannot (its classes have
        another layout) and refuses it, so recovery sets it aside and replays the journal
        from an older snapshot or from genesis."""
        if snapshot.is_snapshot(data):
            core = snapshot.load(data)
        elif data[:1] == b"\x80":  # pickle protocol 2 and later: what snapshots were before
            core = cls._unpickle(data)
        else:
            raise ValueError("not a Core snapshot")
        over = core.ledger.over_limit()
        if over is not None:
            raise ValueError(f"the snapshot holds {over}")
        return core

    @classmethod
    def _unpickle(cls, data: bytes) -> Core:
        """A core pickled by a version before settlement/snapshot.py, upgraded."""
        if compiled():
            raise ValueError(
                "a pickled snapshot (written before the layout-independent format): the "
                "compiled build does not read pickles"
            )
        try:
            core = pickle.loads(data)
        except Exception as exc:  # whatever a damaged pickle raises
            raise ValueError(f"not a Core snapshot: {exc!r}") from exc
        if not isinstance(core, cls):
            raise ValueError("not a Core snapshot")
        core.ledger.upgrade()
        core._upgrade()
        return core

    def _upgrade(self) -> None:
        """Give a core unpickled from a snapshot older than the catalogue one: no registry
        event yet, every generic series under the rule of its standard, mitigation and
        vintage, its keys the ledger's keys that rule admits."""
        if hasattr(self, "catalogue"):
            return
        self.catalogue = Catalogue()
        self.last_price = {}
        for sid, book in self.exchange.books.items():
            if book.series.project is None:
                self.catalogue.add_contract(sid, implicit_rule(book.series), 0, recorded=False)
        for sid, book in self.exchange.books.items():
            self.keys[sid] = self.catalogue.eligible(
                book.series, self.projects, list(self.ledger.known)
            )

    def check_invariants(self) -> None:
        """Plain asserts: the engine's and the ledger's, and that holds match open orders."""
        ex, ledger = self.exchange, self.ledger
        ex.check_invariants()
        ledger.check_invariants()
        buys = {i for i, o in ex.open_orders.items() if o.side is BUY}
        sells = set(ex.open_orders) - buys
        assert set(ledger.cash_holds) == buys, "a cash hold for every open buy, and only those"
        assert set(ledger.credit_holds) == sells, "a credit hold for every open sell"
        for oid in buys:
            o, h = ex.open_orders[oid], ledger.cash_holds[oid]
            assert h.account == o.account and h.currency == self.currency[o.series]
            assert h.amount == self.fees.buy_hold(o.price * o.qty), "buy hold = what rest needs"
        for oid in sells:
            o, c = ex.open_orders[oid], ledger.credit_holds[oid]
            assert c.account == o.account and c.qty == o.qty, "sell hold = open quantity"
            keys = set(self.keys[o.series])
            assert all(k in keys for k, _ in c.parts), "held credits are eligible"


def _check_registry(project: Project, batch: str) -> Reject | None:
    """Why a batch cannot hold serials of `project` (None if it can): its registry must
    have serial rules, and the batch must be one of them (settlement/registry.py)."""
    if project.registry not in registry.REGISTRIES:
        return Reject(
            Reason.UNKNOWN_REGISTRY,
            f"project {project.id}: no serial rules for registry {project.registry!r} "
            f"(tonne reads {', '.join(registry.REGISTRIES)})",
        )
    try:
        registry.rule_of_batch(project.registry, batch)
    except registry.SerialFormatError as exc:
        return Reject(Reason.INVALID_SERIAL_BLOCK, f"project {project.id}: {exc}")
    return None


def _rejected(account: int, ref: str, order_id: int, refused: Reject, ts: int) -> Rejected:
    return Rejected(account, ref, order_id, refused.reason, refused.text, ts)


_DISPATCH: dict[type, Callable[[Core, Any], list[AnyEvent]]] = {
    NewOrder: Core._new_order,
    Amend: Core._amend,
    Cancel: Core._cancel,
    MassCancel: Core._engine,
    Halt: Core._engine,
    Resume: Core._engine,
    SetReferencePrice: Core._engine,
    AdvanceTime: Core._advance_time,
    OpenAccount: Core._open_account,
    Deposit: Core._cash,
    Withdraw: Core._cash,
    DepositCredits: Core._credits,
    WithdrawCredits: Core._credits,
    Retire: Core._retire,
    ListProject: Core._list,
    ListSeries: Core._list,
    ListContract: Core._catalogue,
    AddRuleVersion: Core._catalogue,
    ChangeLabel: Core._catalogue,
    SuspendProject: Core._catalogue,
    ReinstateProject: Core._catalogue,
    CancelCredits: Core._catalogue,
    BasketBuy: Core._basket,
}
_CATALOGUE: dict[type, Callable[[Core, Any], list[Any] | Reject]] = {
    ListContract: catalogue_commands.list_contract,
    AddRuleVersion: catalogue_commands.add_rule_version,
    ChangeLabel: catalogue_commands.change_label,
    SuspendProject: catalogue_commands.suspend_project,
    ReinstateProject: catalogue_commands.reinstate_project,
    CancelCredits: catalogue_commands.cancel_credits,
}
