"""Setup commands for benchmarks (and the tests that run their workloads): accounts with ample
cash and credits. (It lived in settlement/ before; it is bench support, not the product.)

`funding_commands(series, accounts, ts)` gives accounts 1..`accounts` enough of every
series' currency and credits that no order of a workload is refused for want of a hold. A
project the core may not know is listed first (a `ListProject`, harmlessly rejected as
`ALREADY_LISTED` if it is known); a generic series gets one synthetic pool project per
(standard, mitigation) so that it has eligible credits. Serials are synthetic, high and
disjoint per account: `base + account * SPAN_PER_ACCOUNT`. `with_cash_limits` gives the
workload's market buys the cash limit the ledger requires.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import msgspec

from engine.commands import Command, NewOrder, OrderType, Side
from engine.reference import STANDARD_OF_REGISTRY, Project, Series
from settlement.commands import (
    AnyCommand,
    Deposit,
    DepositCredits,
    ListProject,
    OpenAccount,
)

CASH_PER_ACCOUNT = 10**13  # minor units of each currency (900 accounts fit cash_total_max)
CREDITS_PER_ACCOUNT = 10**8  # tonnes of each series
SPAN_PER_ACCOUNT = 10**9  # serial numbers reserved per account
SERIAL_BASE = 10**12  # above any real registry serial in data/serials.csv

_REGISTRY_OF_STANDARD = {std: reg for reg, std in STANDARD_OF_REGISTRY.items()}


def pool_project(s: Series) -> Project:
    """The synthetic project whose credits deliver into generic series `s`."""
    return Project(
        id=f"{s.standard}-POOL-{s.mitigation.value.upper()}",
        registry=_REGISTRY_OF_STANDARD.get(s.standard, s.standard),
        name=f"synthetic {s.standard} {s.mitigation.value} pool (benchmarks only)",
        mitigation=s.mitigation,
    )


def funding_commands(
    series: Sequence[Series],
    accounts: int,
    ts: int,
    cash: int = CASH_PER_ACCOUNT,
    credits: int = CREDITS_PER_ACCOUNT,
) -> Iterator[AnyCommand]:
    assert 0 < credits <= SPAN_PER_ACCOUNT
    listed: set[str] = set()
    keys: list[tuple[str, int]] = []
    for s in series:
        if s.project is None:
            project = pool_project(s)
        else:
            project = Project(id=s.project, registry=s.standard, name=s.project)
        if project.id not in listed:
            listed.add(project.id)
            yield ListProject(project=project, ts=ts)
        key = (project.id, s.vintage)
        if key not in keys:
            keys.append(key)
    currencies = sorted({s.currency for s in series})
    for a in range(1, accounts + 1):
        yield OpenAccount(account=a, ts=ts)
        for c in currencies:
            yield Deposit(account=a, currency=c, amount=cash, ref="funding", ts=ts)
        start = SERIAL_BASE + a * SPAN_PER_ACCOUNT
        for project_id, vintage in keys:
            yield DepositCredits(
                account=a,
                project=project_id,
                vintage=vintage,
                start=start,
                end=start + credits - 1,
                quantity=credits,
                ref="funding",
                ts=ts,
            )


def with_cash_limits(commands: Iterable[Command], max_notional: int = 10**12) -> list[Command]:
    """The commands with a cash limit on every market buy that lacks one (the core rejects
    those with MARKET_BUY_NEEDS_CASH_LIMIT); a limit above any order's notional changes no
    fill, so the engine alone makes the same trades."""
    out: list[Command] = []
    for c in commands:
        if (
            type(c) is NewOrder
            and c.type is OrderType.MARKET
            and c.side is Side.BUY
            and not c.max_notional
        ):
            c = msgspec.structs.replace(c, max_notional=max_notional)
        out.append(c)
    return out
