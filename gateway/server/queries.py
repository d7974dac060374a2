"""Queries and subscriptions: requests the server answers itself, without a core command.

Open orders, balances, holdings and the series list are read from the exchange and the
ledger as they stand when the request is handled (after every command before it in the same
read); a screen and a contract's rule versions from the settlement core's catalogue, a
screen at the request's own stamp (`now`: rolling vintage windows follow the server's wall
time). Subscribe and unsubscribe queue a snapshot and a callable that changes the
subscription when the batch is released (gateway/server/server.py), so a subscriber gets exactly
the updates after its snapshot. Nothing here is journaled: it changes no state of the core.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine.events import Reason
from gateway.server.marketdata import MarketData
from gateway.server.routing import reject_for
from gateway.server.session import Session
from gateway.wire import protocol as p
from screening.language import Credit, ScreenError, parse
from settlement.catalogue_types import ScreenHit

# (target, message) pairs of a batch, as gateway/server/server.py releases them
Items = list[tuple[Any, Any]]


class Queries:
    """Answers the queries and subscription requests of logged-on sessions."""

    def __init__(
        self,
        exchange: Any,
        ledger: Any,
        md: MarketData,
        projects: dict[str, Any] | None = None,
        catalogue: Any = None,
    ) -> None:
        self.exchange = exchange
        self.ledger = ledger  # None: an order-only core (benchmarks)
        self.md = md
        self.projects = projects if projects is not None else {}  # id -> engine Project
        # the settlement core's `screen` and `contract_rules` (None: a core without them)
        self.catalogue = catalogue

    def open_orders(self, s: Session, msg: p.QueryOpenOrders, items: Items, _now: int) -> None:
        mine = getattr(self.exchange, "open_by_coid", {}).get(s.account, {})
        orders = [
            p.OpenOrder(o.order_id, o.client_order_id, o.series, o.side, o.price, o.qty, o.tif)
            for o in sorted(mine.values(), key=lambda o: o.order_id)
            if not msg.series or o.series == msg.series
        ]
        items.append((s, p.OpenOrders(orders=orders, req_id=msg.req_id)))

    def ledger_account(self, s: Session, msg: Any, items: Items) -> Any:
        """The session's ledger account, or None after queueing a reject."""
        if self.ledger is None:
            items.append((s, reject_for(msg, Reason.NOT_SUPPORTED, "no ledger")))
            return None
        acct = self.ledger.accounts.get(s.account)
        if acct is None:
            items.append((s, reject_for(msg, Reason.UNKNOWN_ACCOUNT, "no such account")))
        return acct

    def balances(self, s: Session, msg: p.QueryBalances, items: Items, _now: int) -> None:
        acct = self.ledger_account(s, msg, items)
        if acct is not None:
            cash = [p.CashBalance(c, acct.cash[c], acct.cash_held[c]) for c in sorted(acct.cash)]
            items.append((s, p.Balances(account=s.account, cash=cash, req_id=msg.req_id)))

    def holdings(self, s: Session, msg: p.QueryHoldings, items: Items, _now: int) -> None:
        acct = self.ledger_account(s, msg, items)
        if acct is None:
            return
        out = []
        for key in sorted(set(acct.credits) | set(acct.credits_held)):
            project, vintage = key
            ranges = acct.credits.get(key, [])
            out.append(
                p.Holding(
                    project=project,
                    vintage=vintage,
                    available=acct.credit_qty.get(key, 0),
                    held=acct.credits_held.get(key, 0),
                    serials=[
                        p.serial_range(self.ledger.serial_range(key, a, b)) for a, b in ranges
                    ],
                )
            )
        items.append((s, p.Holdings(account=s.account, holdings=out, req_id=msg.req_id)))

    def series(self, s: Session, msg: p.QuerySeries, items: Items, _now: int) -> None:
        out = []
        for book in self.exchange.books.values():
            se = book.series
            out.append(
                p.SeriesInfo(
                    id=se.id,
                    standard=se.standard,
                    mitigation=se.mitigation.value if se.mitigation is not None else None,
                    vintage=se.vintage,
                    project=se.project,
                    currency=se.currency,
                    tick=se.tick,
                    lot=se.lot,
                    band_low=book.band_low,
                    band_high=book.band_high,
                    max_order_qty=se.max_order_qty,
                    halted=book.halted,
                )
            )
        items.append((s, p.SeriesList(series=out, req_id=msg.req_id)))

    def project_list(self, s: Session, msg: p.QueryProjects, items: Items, _now: int) -> None:
        known = self.projects
        unknown = [x for x in msg.ids if x not in known]
        if unknown:
            items.append((s, reject_for(msg, Reason.UNKNOWN_PROJECT, f"no project {unknown[0]!r}")))
            return
        out = [
            p.ProjectInfo(
                id=pr.id,
                registry=pr.registry,
                name=pr.name,
                country=pr.country,
                category=pr.category,
                project_type=pr.project_type,
                mitigation=pr.mitigation.value if pr.mitigation is not None else None,
                basis=pr.basis.value if pr.basis is not None else None,
                methodology=pr.methodology,
                sdgs=list(pr.sdgs),
                labels=list(pr.labels),
                rating=pr.rating,
            )
            for pr in (known[x] for x in sorted(set(msg.ids) or known))
        ]
        items.append((s, p.ProjectList(projects=out, req_id=msg.req_id)))

    def subscribe(self, s: Session, msg: p.Subscribe, items: Items, _now: int) -> None:
        books = self.exchange.books
        unknown = [x for x in msg.series if x not in books]
        if unknown:
            items.append((s, reject_for(msg, Reason.UNKNOWN_SERIES, f"no series {unknown[0]!r}")))
            return
        md = self.md
        for series in dict.fromkeys(msg.series):
            items.append((s, md.snapshot(books[series], msg.req_id)))
            items.append((None, lambda series=series: md.subscribe(s, series)))
        items.append((s, p.Done(request="subscribe", count=len(msg.series), req_id=msg.req_id)))

    def unsubscribe(self, s: Session, msg: p.Unsubscribe, items: Items, _now: int) -> None:
        md = self.md
        for series in msg.series:
            items.append((None, lambda series=series: md.unsubscribe(s, series)))
        items.append((s, p.Done(request="unsubscribe", count=len(msg.series), req_id=msg.req_id)))

    def screen(self, s: Session, msg: p.Screen, items: Items, now: int) -> None:
        """The series whose credits `msg.expr` admits at `now` (the request's stamp, so a
        rolling vintage window is judged by the server's wall time)."""
        try:
            expr = parse(msg.expr)
        except ScreenError as exc:
            items.append((s, reject_for(msg, Reason.INVALID_SCREEN, str(exc))))
            return
        screen_of = getattr(self.catalogue, "screen", None)
        if screen_of is None:
            items.append((s, reject_for(msg, Reason.NOT_SUPPORTED, "no catalogue")))
            return
        hits = [screen_hit(h) for h in screen_of(expr, now)]
        items.append((s, p.ScreenResult(hits=hits, req_id=msg.req_id)))

    def contract(self, s: Session, msg: p.QueryContract, items: Items, _now: int) -> None:
        """A contract's rule versions; a series that is not a contract is refused by name."""
        rules_of = getattr(self.catalogue, "contract_rules", None)
        if rules_of is None:
            items.append((s, reject_for(msg, Reason.NOT_SUPPORTED, "no catalogue")))
            return
        if msg.series not in self.exchange.books:
            text = f"no series {msg.series!r}"
            items.append((s, reject_for(msg, Reason.UNKNOWN_SERIES, text)))
            return
        rules = rules_of(msg.series)
        if not rules:
            text = f"{msg.series!r} is a project's series, not a contract with a rule"
            items.append((s, reject_for(msg, Reason.NOT_A_CONTRACT, text)))
            return
        versions = [p.RuleVersionInfo(r.version, r.effective, r.rule) for r in rules]
        answer = p.ContractRules(series=msg.series, versions=versions, req_id=msg.req_id)
        items.append((s, answer))


def credit_info(c: Credit) -> p.CreditInfo:
    """A screened credit line (screening.language.Credit) as the wire gives it."""
    return p.CreditInfo(
        project=c.project,
        registry=c.registry,
        standard=c.standard,
        vintage=c.vintage,
        mitigation=c.mitigation or None,  # unknown: null, as `project_list` says it
        basis=c.basis or None,
        category=c.category,
        methodology=c.methodology,
        project_type=c.project_type,
        country=c.country,
        sdgs=sorted(c.sdgs),
        labels=sorted(c.labels),
        rating=c.rating or None,
    )


def screen_hit(hit: ScreenHit) -> p.ScreenHitInfo:
    """One series a screen matched (settlement.catalogue_types.ScreenHit), as the wire gives
    it; `tonne screen --data` prints the same form, so both ways read alike."""
    return p.ScreenHitInfo(
        series=hit.series.id,
        currency=hit.series.currency,
        halted=hit.halted,
        rule_version=hit.rule_version,
        rule=hit.rule,
        best_bid=hit.best_bid,
        best_ask=hit.best_ask,
        last_price=hit.last_price,
        offered=hit.offered,
        credits=[credit_info(c) for c in hit.credits],
    )


ANSWERS: dict[type, Callable[[Queries, Session, Any, Items, int], None]] = {
    p.QueryOpenOrders: Queries.open_orders,
    p.QueryBalances: Queries.balances,
    p.QueryHoldings: Queries.holdings,
    p.QuerySeries: Queries.series,
    p.QueryProjects: Queries.project_list,
    p.Subscribe: Queries.subscribe,
    p.Unsubscribe: Queries.unsubscribe,
    p.Screen: Queries.screen,
    p.QueryContract: Queries.contract,
}
