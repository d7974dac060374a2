"""`tonne bench`: the standard engine workload, run by our engine and the reference engines.

Every engine runs the same pre-generated command list (`bench.workload`) in the same process;
the figure that matters is the ratio of their rates, because this machine is shared and any
absolute number drifts with its load. bench/README.md says what each yardstick does and does
not do, and what was measured.

The yardsticks, and the two targets of issue 17:

- `reference (full: validation + events)` (`bench.reference_full`) implements the engine's
  whole specification plainly: it validates every command, rejects with the same reason
  codes, and emits the same events in the same order as the engine (Accepted, Rejected,
  Trade, Cancelled, Expired, Amended, BookDelta with its sequence number, StatusChanged).
  It does the job the engine does: "engine / reference" is the like-for-like ratio (target
  >= 1.5x).
- `matcher only (no validation, fills only)` (`bench.reference_engine.Matcher`) is bare
  price-time matching as fast as straightforward Python goes: commands as prebuilt tuples,
  fills only, a dict of deques and a sorted list of prices per side. It bounds the cost of
  matching from below (target: engine >= 0.6x of it).
- `matcher only, SortedDict levels` (`bench.reference_engine.SortedDictMatcher`): the same
  with `SortedDict` levels, the version issue 17 calls obvious.
- With `--floor`, `floor: the engine's events alone` rebuilds the engine's events from
  prebuilt fields and does nothing else; with the matcher's time it bounds what any engine
  emitting these events can reach against the matcher, and the run prints that bound.

Each engine's fill sequence (maker id, taker id, price, qty per trade) is hashed; the run
fails (exit 1) if the digests differ. The engine, the full reference (and the floor) also
hash their whole event streams (every command's events, msgpack-encoded, with a rejection's
readable text left out: only its reason code is specified); the run fails if those differ.

How a run is timed, the same for every engine: build a fresh engine, `gc.collect()` and
`gc.freeze()` (so neither pays for scanning the workload), then feed the commands in chunks
of `CHUNK_COMMANDS` (in the contender's form: commands, prebuilt tuples, or event fields,
all made before the clock starts), keeping each chunk's result (an engine's: each command's
events; a matcher's: the chunk's fills). The clock (`time.perf_counter`) runs while the
engine takes the chunk and while the chunk's results are released; it stops while the fills
(and the event digest) are read out of the results. The garbage collector stays
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

from bench.reference_engine import Fill, Matcher, Op, SortedDictMatcher, compile_ops
from bench.reference_full import FullReferenceEngine
from bench.workload import DEFAULT_SEED, Workload, WorkloadStats, generate
from engine import Command, Event, Exchange, Rejected, Trade
from engine.reference import STANDARD_OF_REGISTRY, Project
from settlement.build import compiled

CHUNK_COMMANDS = 10_000
DEFAULT_COMMANDS = 1_000_000

MATCHER_ONLY = "matcher only (no validation, fills only)"
MATCHER_SORTEDDICT = "matcher only, SortedDict levels"
EVENTS_FLOOR = "floor: the engine's events alone"
FULL_REFERENCE = "reference (full: validation + events)"
ENGINE = "engine"
ENGINE_SETTLEMENT = "engine + settlement"
TARGET_FULL = 1.5  # issue 17: the engine against the full reference...
TARGET_MATCHER = 0.6  # ...and against the matcher-only one


@dataclass
class Contender:
    """An engine under test. `start` builds a fresh one and returns what runs one chunk of
    the workload: the chunk in the form `feed` names, a result out; `fills_of` reads the
    fills out of a chunk's result; `events_of`, for an engine that emits the engine's events,
    reads each command's events (None: fills only)."""

    name: str
    start: Callable[[Workload], Callable[[Sequence[Any]], Any]]
    fills_of: Callable[[Any], Iterable[Fill]]
    events_of: Callable[[Any], Iterable[list[Event]]] | None = None
    feed: str = "commands"  # or "ops": prebuilt tuples; "events": the engine's events as fields


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


def _trade_fills(results: list[list[Any]]) -> Iterable[Fill]:
    return [
        (e.maker_order_id, e.taker_order_id, e.price, e.qty)
        for events in results
        for e in events
        if type(e) is Trade
    ]


def _as_events(results: list[list[Event]]) -> list[list[Event]]:
    return results


def _per_command(submit: Callable[[Command], Any]) -> Callable[[Sequence[Any]], Any]:
    """Run a chunk one command at a time, keeping each command's events."""

    def run_chunk(chunk: Sequence[Command]) -> list[Any]:
        return [submit(cmd) for cmd in chunk]

    return run_chunk


def engine_contender() -> Contender:
    def start(workload: Workload) -> Callable[[Sequence[Any]], Any]:
        return _per_command(Exchange(workload.series).submit)

    return Contender(ENGINE, start, _trade_fills, _as_events)


def full_reference_contender() -> Contender:
    def start(workload: Workload) -> Callable[[Sequence[Any]], Any]:
        return _per_command(FullReferenceEngine(workload.series).submit)

    return Contender(FULL_REFERENCE, start, _trade_fills, _as_events)


def _matcher_contender(name: str, matcher_class: type[Matcher]) -> Contender:
    def start(workload: Workload) -> Callable[[Sequence[Any]], Any]:
        matcher = matcher_class(len(workload.series))

        def run_chunk(ops: Sequence[Op]) -> list[Fill]:
            matcher.run(ops)
            fills, matcher.fills = matcher.fills, []
            return fills

        return run_chunk

    def fills_of(fills: list[Fill]) -> Iterable[Fill]:
        return fills

    return Contender(name, start, fills_of, feed="ops")


def matcher_only_contender() -> Contender:
    return _matcher_contender(MATCHER_ONLY, Matcher)


def sorteddict_matcher_contender() -> Contender:
    return _matcher_contender(MATCHER_SORTEDDICT, SortedDictMatcher)


EventFields = list[tuple[type[Event], tuple[Any, ...]]]
"""One command's events, each as its class and its fields (`msgspec.structs.astuple`)."""


def events_floor_contender() -> Contender:
    """Builds, command by command, the events the engine emitted for it (from their fields,
    prebuilt by an untimed engine run), and does nothing else: a floor under any engine that
    emits this event stream. Its fills and events are the engine's, checked like the others'."""

    def start(workload: Workload) -> Callable[[Sequence[Any]], Any]:
        def run_chunk(chunk: Sequence[EventFields]) -> list[list[Event]]:
            return [[kind(*fields) for kind, fields in command] for command in chunk]

        return run_chunk

    return Contender(EVENTS_FLOOR, start, _trade_fills, _as_events, feed="events")


def event_fields(workload: Workload) -> list[EventFields]:
    """The engine's events for every command of `workload`, as classes and fields."""
    submit = Exchange(workload.series).submit
    astuple = msgspec.structs.astuple
    return [[(type(e), astuple(e)) for e in submit(cmd)] for cmd in workload.commands]


def settlement_contender() -> tuple[Contender | None, str]:
    """Engine + settlement: `settlement.core.Core.apply`, which places a hold before each
    order and settles every fill DvP; or None, and why, while that core is not available.

    Every account is funded so that no hold is ever refused (the fills must stay the
    engine's); building and funding the core is not timed. A core with a settlement log
    hands its records to the journal after every batch, as the gateway does; here after
    every chunk, inside the timing.
    """
    try:
        core_module = importlib.import_module("settlement.core")
        commands = importlib.import_module("settlement.commands")
    except ModuleNotFoundError as exc:
        if exc.name not in ("settlement.core", "settlement.commands"):
            raise
        return None, f"{exc.name} does not exist yet"

    def start(workload: Workload) -> Callable[[Sequence[Any]], Any]:
        core = funded_core(workload, core_module.Core, commands)
        apply, drain = core.apply, getattr(core, "drain_records", None)

        def run_chunk(chunk: Sequence[Command]) -> list[Any]:
            results = [apply(cmd) for cmd in chunk]
            if drain is not None:
                drain()
            return results

        return run_chunk

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
    contender: Contender, workload: Workload, chunks: Sequence[Sequence[Any]]
) -> tuple[float, list[Fill], EventDigest | None]:
    """Seconds to run every chunk of `workload` through a fresh engine, its fills, and the
    digest of its events (None for a fills-only engine)."""
    run_chunk = contender.start(workload)
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
            result = run_chunk(chunk)
            t1 = time.perf_counter()
            fills.extend(fills_of(result))
            if events is not None:
                assert events_of is not None
                for command_events in events_of(result):
                    events.add(command_events)
            t2 = time.perf_counter()
            del result
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
    feeds: dict[str, Sequence[Sequence[Any]]] = {"commands": chunks}
    feeds_wanted = {c.feed for c in contenders}
    if "ops" in feeds_wanted:
        ops = compile_ops(commands, [s.id for s in workload.series])
        feeds["ops"] = [ops[i : i + CHUNK_COMMANDS] for i in range(0, len(ops), CHUNK_COMMANDS)]
    if "events" in feeds_wanted:
        fields = event_fields(workload)
        feeds["events"] = [
            fields[i : i + CHUNK_COMMANDS] for i in range(0, len(fields), CHUNK_COMMANDS)
        ]
    results = {c.name: Result(c.name) for c in contenders}
    for k in range(repeat):
        order = contenders if k % 2 == 0 else contenders[::-1]
        for contender in order:
            seconds, fills, events = timed_run(contender, workload, feeds[contender.feed])
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
    sorteddict = by_name.get(MATCHER_SORTEDDICT)
    lines.append("")
    if full is not None:
        lines.append(
            ratio_line("engine / reference", engine, full, commands)
            + f"  (target >= {TARGET_FULL}x: the same work)"
        )
    if matcher is not None:
        lines.append(
            ratio_line("engine / matcher only", engine, matcher, commands)
            + f"  (target >= {TARGET_MATCHER}x: matching alone, fills only, tuples in)"
        )
    if sorteddict is not None:
        lines.append(ratio_line("engine / matcher, SortedDict", engine, sorteddict, commands))
    floor = by_name.get(EVENTS_FLOOR)
    if floor is not None and matcher is not None:
        # An engine has to match (the matcher's time at least) and build its events (the
        # floor's time at least): its rate over the matcher's is below this.
        ceiling = matcher.best_s / (matcher.best_s + floor.best_s)
        lines.append(
            f"{'events alone / matcher only:':<37}{floor.best_s / matcher.best_s:.2f}x the "
            f"time, so engine / matcher only <= {ceiling:.2f}x for any engine that matches "
            "and emits these events"
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
    run_chunk = contender.start(workload)
    commands = workload.commands
    profiler = cProfile.Profile()
    profiler.enable()
    for i in range(0, len(commands), CHUNK_COMMANDS):
        run_chunk(commands[i : i + CHUNK_COMMANDS])
    profiler.disable()
    pstats.Stats(profiler).sort_stats("tottime").print_stats(top)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tonne bench",
        description="The standard engine workload: our engine against the reference engines: "
        "the full reference, which validates and emits the engine's events (the same work), "
        "and bare matchers (fills only, commands as prebuilt tuples); same commands, same "
        "process. See bench/README.md.",
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
    parser.add_argument(
        "--floor",
        action="store_true",
        help="also time building the engine's events alone (from prebuilt fields): the floor "
        "under any engine with this event stream, and the ceiling it puts on the ratio to the "
        "matcher",
    )
    args = parser.parse_args(argv)
    if args.commands <= 0 or args.repeat <= 0:
        parser.error("--commands and --repeat must be positive")

    t0 = time.perf_counter()
    workload = generate(args.commands, seed=args.seed)
    generated_s = time.perf_counter() - t0
    contenders = [
        matcher_only_contender(),
        sorteddict_matcher_contender(),
        full_reference_contender(),
        engine_contender(),
    ]
    if args.floor:
        contenders.insert(2, events_floor_contender())
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
