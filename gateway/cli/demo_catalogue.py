"""The demo's carbon catalogue part (issue 13): a buyer screens the market the way buyers'
guides teach, one criterion after another, and a standardized contract trades, delivering
exact serials its rule admits, under the rule version the fill records.

Everything goes through the client library over the real protocol, as in the rest of the
demo (gateway/cli/demo.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine import Side, TimeInForce
from gateway.client.client import Client, RequestRejected
from gateway.contracts import CONTRACTS
from gateway.wire import protocol as p

# A buyers' guide's order: type, location, co-benefits, standard, vintage, quality labels.
GUIDE = (
    ("type: removals", "mitigation = removal"),
    ("type: nature-based removals", "mitigation = removal and basis = nature"),
    ("location: in the Americas or Africa", "region in (americas, africa)"),
    ("co-benefits: at least three SDGs", "sdgs at least 3"),
    ("standard: Verra or Gold Standard", "standard in (VCS, GS)"),
    ("vintage: 2021 or later", "vintage >= 2021"),
    ("quality: CCP-labelled or CORSIA-eligible", "label CCP or label CORSIA"),
)
COMBINED = "mitigation = removal and basis = nature and vintage >= year - 5 and label CCP"


def _line(hit: p.ScreenHitInfo) -> str:
    projects = ",".join(sorted({c.project for c in hit.credits}))
    labels = ",".join(sorted({label for c in hit.credits for label in c.labels})) or "-"
    ask = "-" if hit.best_ask is None else str(hit.best_ask)
    return f"{hit.series} ({projects}; {labels}; ask {ask}; {hit.offered} t offered)"


async def screen_walk(client: Client, out: Callable[[str], None]) -> None:
    """Screen the market criterion by criterion, then all of them at once."""
    out("\nScreening the market the way a buyers' guide teaches (`tonne screen EXPR`):")
    for title, expr in GUIDE:
        hits = (await client.screen(expr)).hits
        names = ", ".join(h.series for h in hits[:6]) + (" ..." if len(hits) > 6 else "")
        out(f"  {title:<42} {expr!r}: {len(hits)} series  {names}")
    out(f"  all together: {COMBINED!r}")
    for hit in (await client.screen(COMBINED)).hits:
        out(f"    {_line(hit)}")
    try:
        await client.screen("label CCP and (")
    except RequestRejected as exc:
        out(f"  a screen that does not parse is refused: {exc.reason.value}, {exc.text}")


async def contract_trade(
    desks: list[tuple[str, Client]], out: Callable[[str], None], serials: Callable[[Any], str]
) -> None:
    """The first desk that holds credits the nature-based removal contract admits offers
    some; another desk buys them; the fill shows the serials delivered and the rule version."""
    contract = CONTRACTS[0]
    sid = contract.series.id
    rules = (await desks[0][1].contract_rules(sid)).versions
    out(f"\nStandardized contract {sid}: {contract.title}")
    out(f"  rule v{rules[-1].version}: {rules[-1].rule}")
    out(f"  modelled on {contract.analogue}")
    price = contract.series.ref_price
    seller = None
    for name, client in desks:
        try:
            await client.place(sid, Side.SELL, qty=30, price=price)
        except RequestRejected:
            continue  # holds nothing the rule admits
        seller = (name, client)
        break
    if seller is None:
        out("  no desk holds credits the rule admits")
        return
    name, buyer = next((n, c) for n, c in desks if n != seller[0])
    since = buyer.received
    await buyer.place(sid, Side.BUY, qty=20, price=price, tif=TimeInForce.IOC)
    fill = await buyer.wait_for(lambda m: isinstance(m, p.Fill) and bool(m.serials), since=since)
    out(
        f"  {seller[0]} sells {fill.qty} t to {name} at {fill.price / 100:.2f} "
        f"{contract.series.currency} under rule v{fill.rule_version}; serials delivered: "
        f"{serials(fill.serials)}"
    )


BASKET_SCREEN = "mitigation = removal and basis = nature and label CCP"


async def basket_retire(
    desks: list[tuple[str, Client]], out: Callable[[str], None], serials: Callable[[Any], str]
) -> None:
    """A steel maker buys 40 t of CCP-labelled nature-based removals across every book that
    offers them, at most 19.50 USD a tonne, and retires them in the same transaction: one
    basket, one certificate listing every fill's registry serials."""
    name, client = next((n, c) for n, c in desks if n == "Kowloon Steel")
    out(f"\n{name} buys and retires a screened basket: {BASKET_SCREEN!r}, 40 t at most 19.50:")
    try:
        basket = await client.basket_buy(
            BASKET_SCREEN,
            40,
            1950,
            retire_for=p.RetireFor(
                beneficiary="Kowloon Steel Ltd",
                claim="FY2026 scope 1 offset",
                period_start="2026-01-01",
                period_end="2026-12-31",
            ),
        )
    except RequestRejected as exc:
        out(f"  refused {exc.reason.value}: {exc.text}")
        return
    for f in basket.fills:
        out(f"  filled {f.qty} t of {f.series} at {f.price / 100:.2f}: {serials(f.serials)}")
    if basket.cancelled is not None:
        out(
            f"  {basket.cancelled.qty} t not bought (IOC: the books offered no more that the "
            "basket could take at most 19.50)"
        )
    done = basket.done
    if done.filled:
        out(
            f"  done: {done.filled} t of 40, average {done.notional / done.filled / 100:.2f} "
            f"USD/t, projects {', '.join(done.projects)}"
        )
    cert = basket.certificate
    if cert is not None:
        records = ", ".join(f"#{f.record_seq}" for f in cert.fills)
        out(
            f"  certificate {cert.cert_id}: {cert.qty} t retired for {cert.beneficiary!r}, "
            f"{len(cert.fills)} fills, settlement-log records {records}"
        )
