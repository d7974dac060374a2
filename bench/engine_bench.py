"""`tonne bench`: the standard engine workload, run by our engine and two reference engines.

Every engine runs the same pre-generated command list (`bench.workload`) in the same process;
the figure that matters is the ratio of their rates, because this machine is shared and any
absolute number drifts with its load.

The two references, both a `SortedDict` of price levels per side, each a `deque`:

- `reference (full: validation + events)` (`bench.reference_full`) implements the engine's
  whole specification the obvious way: it validates every command, rejects with the same
  reason codes, and emits the same events in the same order as the engine (Accepted,
  Rejected, Trade, Cancelled, Expired, Amended, BookDelta with its sequence number,
  StatusChanged). It does the job the engine does, so it is the fair baseline: the headline
  ratio is "engine / reference" against it.
- `matcher only (no validation, fills only)` (`bench.reference_engine`) is a bare matcher:
  it validates nothing, emits no acknowledgements, rejections, cancel confirmations or L2
  updates, and returns only fill tuples. An exchange cannot leave that work out, so a ratio
  against it compares unlike jobs; it is printed beside the headline, labelled, for
  transparency.

Each engine's fill sequence (maker id, taker id, price, qty per trade) is hashed; the run
fails (exit 1) if the digests differ. The engine and the full reference also hash their whole
event streams (every command's events, msgpack-encoded, with a rejection's readable text left
out: only its reason code is specified); the run fails if those differ too.

How a run is timed, the same for every engine: build a fresh engine, `gc.collect()` and
`gc.freeze()` (so neither pays for scanning the workload), then feed the commands in chunks
of `CHUNK_COMMANDS`, keeping each command's result. The clock (`time.perf_counter`) runs
while the engine takes the chunk and while the chunk's results are released; it stops while
the fills (and the event digest) are read out of the results. The garbage collector stays
on. With `--repeat K` the engines take turns (A B C, C B A, A B C, ...) and each reports its
best run.

Why not take turns chunk by chunk within one run, which would pair the engines' exposure to
the machine's load more tightly: all engines would then be alive at once and share the
garbage collector (and the caches), so a collection triggered by one engine's allocations
scans the others' objects (the settlement ledger's above all) on that engine's clock. Tried
at 1M commands: the reference ran 2x slower and the ratio moved from 0.54x to 0.76x; at 300k
with the collector off most of the reference's slowdown went away. A bias, not a steadier
figure.

A further line, "engine + settlement", runs the same commands through `settlement.core.Core`
(a hold before each order, DvP settlement of each fill) with every account funded so that
no hold is refused: its fills must be the engine's too.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import hashlib
import importlib
import pstats
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from bench.reference_engine import Fill, ReferenceEngine
from bench.reference_full import FullReferenceEngine
from bench.workload import DEFAULT_SEED, Workload, WorkloadStats, generate
from engine import Command, Event, Exchange, Rejected, Trade
from engine.reference import STANDARD_OF_REGISTRY, Project
from settlement.build import compiled

CHUNK_COMMANDS = 10_000
DEFAULT_COMMANDS = 1_000_000

MATCHER_ONLY = "matcher only (no validation, fills only)"
FULL_REFERENCE = "reference (full: validation + events)"
ENGINE = "engine"
ENGINE_SETTLEMENT = "engine + settlement"


@dataclass
class Contender:
    """An engine under test: `start` builds a fresh one and returns its per-command entry
    point; `fills_of` reads the fills out of what one command returned; `events_of`, for an
    engine that emits the engine's events, reads those (None: fills only)."""

    name: str
    start: Callable[[Workload], Callable[[Command], Any]]
    fills_of: Callable[[Any], Iterable[Fill]]
    events_of: Callable[[Any], list[Event]] | None = None


@dataclass
class Result:
    name: str
    seconds: list[float] = field(default_factory=list)
    fills: int = 0
    digest: str = ""
    events: int = 0
    events_digest: str = ""  # "" when the contender emits fills only

    @property
    def best_s(self) -> float:
        return min(self.seconds)

    def rate(self, commands: int) -> float:
        return commands / self.best_s


def _trade_fills(events: list[Any]) -> Iterable[Fill]:
    return [
        (e.maker_order_id, e.taker_order_id, e.price, e.qty) for e in events if type(e) is Trade
    ]


def _as_events(events: list[Event]) -> list[Event]:
    return events


def engine_contender() -> Contender:
    def start(workload: Workload) -> Callable[[Command], Any]:
        return Exchange(workload.series).submit

    return Contender(ENGINE, start, _trade_fills, _as_events)


def full_reference_contender() -> Contender:
    def start(workload: Workload) -> Callable[[Command], Any]:
        return FullReferenceEngine(workload.series).submit

    return Contender(FULL_REFERENCE, start, _trade_fills, _as_events)


def matcher_only_contender() -> Contender:
    def start(workload: Workload) -> Callable[[Command], Any]:
        return ReferenceEngine([s.id for s in workload.series]).submit

    def fills_of(fills: list[Fill]) -> Iterable[Fill]:
        return fills

    return Contender(MATCHER_ONLY, start, fills_of)


def settlement_contender() -> tuple[Contender | None, str]:
    """Engine + settlement: `settlement.core.Core.apply`, which places a hold before each
    order and settles every fill DvP; or None, and why, while that core is not available.

    Every account is funded so that no hold is ever refused (the fills must stay the
    engine's); building and funding the core is not timed.
    """
    try:
        core_module = importlib.import_module("settlement.core")
        commands = importlib.import_module("settlement.commands")
    except ModuleNotFoundError as exc:
        if exc.name not in ("settlement.core", "settlement.commands"):
            raise
        return None, f"{exc.name} does not exist yet"

    def start(workload: Workload) -> Callable[[Command], Any]:
        core = funded_core(workload, core_module.Core, commands)
        return core.apply  # type: ignore[no-any-return]

    return Contender(ENGINE_SETTLEMENT, start, _trade_fills), ""


CASH_PER_ACCOUNT = 10**13  # minor units of each series' currency (within cash_total_max)
CREDITS_PER_ACCOUNT = 10**9  # tonnes per account and series


def funded_core(workload: Workload, core_class: Any, commands: Any) -> Any:
    """A settlement core listing the workload's series, with a project behind each (generic
    series get one eligible project of their own), and every account of the workload opened
    and funded with `CASH_PER_ACCOUNT` and `CREDITS_PER_ACCOUNT` of every series."""
    registry_of = {standard: registry for registry, standard in STANDARD_OF_REGISTRY.items()}
    projects: list[Project] = []
    key_of: dict[str, tuple[str, int]] = {}
    for s in workload.series:
        project_id = s.project or f"{s.standard}-BENCH-{s.vintage}"
        projects.append(
            Project(
                id=project_id,
                registry=registry_of.get(s.standard, s.standard),
                name=f"bench project for {s.id}",
                mitigation=s.mitigation,
            )
        )
        key_of[s.id] = (project_id, s.vintage)
    core = core_class(workload.series, projects)
    accounts = sorted({getattr(c, "account", 0) for c in workload.commands} - {0})
    for account in accounts:
        funding = [commands.OpenAccount(account=account)]
        funding += [
            commands.Deposit(account=account, currency=currency, amount=CASH_PER_ACCOUNT)
            for currency in sorted({s.currency for s in workload.series})
        ]
        for i, s in enumerate(workload.series):
            first = (account * 100 + i) * 10 * CREDITS_PER_ACCOUNT + 1
            project_id, vintage = key_of[s.id]
            funding.append(
                commands.DepositCredits(
                    account=account,
                    project=project_id,
                    vintage=vintage,
                    start=first,
                    end=first + CREDITS_PER_ACCOUNT - 1,
                    quantity=CREDITS_PER_ACCOUNT,
                )
            )
        for cmd in funding:
            events = core.apply(cmd)
            refused = [e for e in events if isinstance(e, Rejected)]
            assert not refused, f"funding the bench core failed: {refused}"
    return core


class EventDigest:
    """SHA-256 over an event stream: each command's events as one msgpack array, with the text
    of a rejection left out (only its reason code is specified; the text is each engine's)."""

    def __init__(self) -> None:
        self.hash = hashlib.sha256()
        self.events = 0
        self.encode = msgspec.msgpack.Encoder().encode

    def add(self, events: list[Event]) -> None:
        self.events += len(events)
        self.hash.update(
            self.encode(
                [msgspec.structs.replace(e, text="") if type(e) is Rejected else e for e in events]
            )
        )

    def hexdigest(self) -> str:
        return self.hash.hexdigest()


def timed_run(
    contender: Contender, workload: Workload, chunks: Sequence[list[Command]]
) -> tuple[float, list[Fill], EventDigest | None]:
    """Seconds to run every chunk of `workload` through a fresh engine, its fills, and the
    digest of its events (None for a fills-only engine)."""
    submit = contender.start(workload)
    # A core with a settlement log hands its records to the journal after every batch, as
    # the gateway does; here after every chunk, inside the timing.
    drain = getattr(getattr(submit, "__self__", None), "drain_records", None)
    fills_of = contender.fills_of
    events_of = contender.events_of
    events = EventDigest() if events_of is not None else None
    fills: list[Fill] = []
    gc.collect()
    gc.freeze()
    elapsed = 0.0
    try:
        for chunk in chunks:
            t0 = time.perf_counter()
            results = [submit(cmd) for cmd in chunk]
            if drain is not None:
                drain()
            t1 = time.perf_counter()
            for result in results:
                fills.extend(fills_of(result))
                if events is not None:
                    assert events_of is not None
                    events.add(events_of(result))
            t2 = time.perf_counter()
            del results
            elapsed += (t1 - t0) + (time.perf_counter() - t2)
    finally:
        gc.unfreeze()
    return elapsed, fills, events


def digest(fills: list[Fill]) -> str:
    h = hashlib.sha256()
    for maker_id, taker_id, price, qty in fills:
        h.update(b"%d %d %d %d\n" % (maker_id, taker_id, price, qty))
    return h.hexdigest()


def run(workload: Workload, contenders: list[Contender], repeat: int) -> list[Result]:
    """Time every contender `repeat` times, taking turns; fill counts and digests of each."""
    commands = workload.commands
    chunks = [commands[i : i + CHUNK_COMMANDS] for i in range(0, len(commands), CHUNK_COMMANDS)]
    results = {c.name: Result(c.name) for c in contenders}
    for k in range(repeat):
        order = contenders if k % 2 == 0 else contenders[::-1]
        for contender in order:
            seconds, fills, events = timed_run(contender, workload, chunks)
            result = results[contender.name]
            result.seconds.append(seconds)
            d = digest(fills)
            e = events.hexdigest() if events is not None else ""
            if result.digest and (result.digest, result.events_digest) != (d, e):
                raise AssertionError(f"{contender.name}: fills or events differ between repeats")
            result.fills, result.digest = len(fills), d
            if events is not None:
                result.events, result.events_digest = events.events, e
            del fills
    return [results[c.name] for c in contenders]


def describe_workload(stats: WorkloadStats, seconds: float) -> list[str]:
    n = stats.commands

    def pct(count: int, of: int = n) -> str:
        return f"{100 * count / of:5.1f}%" if of else "  -  "

    k = stats.kinds
    cancels, amends = stats.count("cancel"), stats.count("amend")
    return [
        f"workload: {n:,} commands generated in {seconds:.1f} s",
        f"  passive limit    {pct(stats.count('new.passive'))}   GTC, a few ticks from the mid",
        f"  marketable       {pct(stats.count('new.marketable'))}   "
        f"limit IOC {pct(k['new.marketable.limit_ioc'])}, "
        f"limit GTC {pct(k['new.marketable.limit_gtc'])}, "
        f"market IOC {pct(k['new.marketable.market_ioc'])}",
        f"  cancel           {pct(cancels)}   "
        f"{pct(stats.cancels_live, cancels)} hit an open order, "
        f"{pct(stats.cancels_by_client_id, cancels)} by client order id",
        f"  amend            {pct(amends)}   "
        f"qty down {pct(k['amend.qty_down'])}, qty up {pct(k['amend.qty_up'])}, "
        f"price {pct(k['amend.price'])}",
        f"  fills {stats.fills:,}; open orders at the end {stats.open_orders_end:,} "
        f"(at most {stats.open_orders_max:,})",
    ]


def describe_results(results: list[Result], commands: int) -> list[str]:
    lines = [
        f"{'engine':<42}{'commands/s':>12}{'best s':>8}  {'runs s':<20}{'fills':>10}  "
        f"{'fills sha':<16}  {'events':>10}  events sha"
    ]
    for r in results:
        runs = " ".join(f"{s:.2f}" for s in r.seconds)
        events = f"{r.events:>10,}  {r.events_digest[:16]}" if r.events_digest else f"{'-':>10}  -"
        lines.append(
            f"{r.name:<42}{r.rate(commands):>12,.0f}{r.best_s:>8.2f}  {runs:<20}{r.fills:>10,}  "
            f"{r.digest[:16]:<16}  {events}"
        )
    by_name = {r.name: r for r in results}
    engine = by_name[ENGINE]
    full, matcher = by_name.get(FULL_REFERENCE), by_name.get(MATCHER_ONLY)
    lines.append("")
    if full is not None:
        lines.append(ratio_line("engine / reference", engine, full, commands))
    if matcher is not None:
        lines.append(
            ratio_line("engine / matcher only", engine, matcher, commands)
            + "  (not like with like: the matcher validates nothing and emits fills only)"
        )
    settled = by_name.get(ENGINE_SETTLEMENT)
    if settled is not None:
        for label, base in (("reference", full), ("matcher only", matcher)):
            if base is not None:
                lines.append(ratio_line(f"engine + settlement / {label}", settled, base, commands))
    return lines


def ratio_line(label: str, r: Result, base: Result, commands: int) -> str:
    """`label`: the rate of `r` over the rate of `base`, best against best, and per repeat."""
    ratio = r.rate(commands) / base.rate(commands)
    line = f"{label + ':':<37}{ratio:.2f}x (best against best)"
    if len(r.seconds) > 1:
        # runs k of both engines were back to back, so each pair saw similar load
        paired = zip(base.seconds, r.seconds, strict=True)
        pairs = sorted(base_s / s for base_s, s in paired)
        line += f"; per repeat {' '.join(f'{p:.2f}' for p in pairs)}"
        line += f", median {statistics.median(pairs):.2f}x"
    return line


def profile(workload: Workload, contender: Contender, top: int) -> None:
    """Print where `contender` spends its time on the workload (cProfile, not a timing)."""
    submit = contender.start(workload)
    profiler = cProfile.Profile()
    profiler.enable()
    for cmd in workload.commands:
        submit(cmd)
    profiler.disable()
    pstats.Stats(profiler).sort_stats("tottime").print_stats(top)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tonne bench",
        description="The standard engine workload: our engine against the reference engines "
        "(SortedDict of price levels, each a deque): the full reference, which validates and "
        "emits the engine's events (the headline), and a bare matcher (fills only); same "
        "commands, same process.",
    )
    parser.add_argument("--commands", type=int, default=DEFAULT_COMMANDS, metavar="N")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument(
        "--repeat", type=int, default=1, metavar="K", help="runs per engine; best of K reported"
    )
    parser.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="TOP",
        help="after the timed runs, profile our engine and print the TOP functions",
    )
    args = parser.parse_args(argv)
    if args.commands <= 0 or args.repeat <= 0:
        parser.error("--commands and --repeat must be positive")

    t0 = time.perf_counter()
    workload = generate(args.commands, seed=args.seed)
    generated_s = time.perf_counter() - t0
    contenders = [matcher_only_contender(), full_reference_contender(), engine_contender()]
    settlement, settlement_note = settlement_contender()
    if settlement is not None:
        contenders.append(settlement)

    print(
        f"tonne bench: {args.commands:,} commands, seed {args.seed}, "
        f"{len(workload.series)} series, best of {args.repeat}"
    )
    print(f'core: compiled: {str(compiled()).lower()} (README, "The compiled core")')
    for line in describe_workload(workload.stats, generated_s):
        print(line)
    print()
    results = run(workload, contenders, args.repeat)
    for line in describe_results(results, args.commands):
        print(line)
    if settlement is None:
        print(f"engine + settlement: not measured ({settlement_note})")
    print(
        "measured: time.perf_counter over all commands, each engine fresh, gc.collect() + "
        "gc.freeze() before each run, engines taking turns between repeats"
    )
    digests = {r.digest for r in results}
    if len(digests) != 1:
        print("FAIL: the engines' fill sequences differ")
        return 1
    print(f"fill sequences identical: sha256 {results[0].digest}")
    with_events = [r for r in results if r.events_digest]
    if len({r.events_digest for r in with_events}) != 1:
        print("FAIL: the event streams of " + " and ".join(r.name for r in with_events) + " differ")
        return 1
    print(
        f"event streams identical ({' and '.join(r.name for r in with_events)}, "
        f"{with_events[0].events:,} events, rejection texts excluded): "
        f"sha256 {with_events[0].events_digest}"
    )
    if args.profile:
        profile(workload, engine_contender(), args.profile)
    return 0
