"""Crash recovery: rebuild the core from the store, check it, or refuse to start.

0. Check both chains from genesis, hashes only (chaincheck.py): the journal and the
   settlement log, each through its archive's recorded heads, then every live row, each
   ending at the heads the store recorded with its last commit (a replay from genesis,
   `use_snapshots=False`, re-hashes every archived log record too). Any break refuses the
   start, naming the record, wherever it lies: before the newest snapshot too.
1. Take the newest snapshot whose checksum holds, restore it, and check that the restored
   core's state hash is the one recorded with it and that the stored settlement log at the
   snapshot's log position has the recorded head hash. A snapshot failing any check is set
   aside (and reported) and the next older one tried; after the oldest, the genesis state
   (the core built from the stored reference data) is the fallback, since the journal is
   kept from its first command (archived segments included). An intact snapshot that
   contradicts the checked chains (it covers commands the journal no longer has, or
   recorded other heads than the chains have at its position) refuses the start: the rows
   before or after it were removed or rewritten.
2. Replay every journal command after the snapshot through the same deterministic core, and
   check each settlement record the replay produces against the stored one (seq, hash and
   bytes). The log is written in the same transaction as the commands that produced it, so
   any difference is damage.
3. Check that nothing is left over in the log, that the log head matches, and, where a
   snapshot was taken at the final command, that the state hash matches it too.

Anything wrong in the journal or the log is a `RecoveryError` whose message names the first
bad record: we never start with a wrong ledger. A folder written before the limits
(settlement/limits.py) existed may hold a command that the core now refuses: the message
then names that command as well. Only the core's contract (docs/CONTRACTS.md)
is used: `apply`, `drain_records`, `state_hash`, `snapshot`/`restore`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol

import msgspec

from gateway.durability.chaincheck import ChainError, Checked, check_chains
from gateway.durability.journal import Codec, SettlementCodec
from gateway.durability.store import CorruptRecord, LogRow, SnapshotInfo, Store, StoreError
from gateway.server.clock import NS_PER_S, Clock, SystemClock


class RecoveryError(Exception):
    """The store cannot be turned into a trustworthy ledger; the message names the record."""


class CoreLike(Protocol):
    def apply(self, cmd: Any) -> list[Any]: ...
    def drain_records(self) -> list[Any]: ...
    def state_hash(self) -> str: ...
    def snapshot(self) -> bytes: ...


class Recovered(msgspec.Struct):
    """What recovery found, and the rebuilt core."""

    core: Any
    snapshot_seq: int  # the snapshot used (0 = genesis, no snapshot)
    skipped: list[str]  # snapshots set aside, each with the reason
    replayed: int  # journal commands replayed after the snapshot
    seq: int  # last journal command
    log_seq: int  # last settlement record
    log_head: str  # its hash ("" when the log is empty)
    state_hash: str
    elapsed_s: float
    checked_state_hash: bool = False  # a snapshot at the final command confirmed the hash
    chains_s: float = 0.0  # of elapsed_s: checking both chains from genesis (0: not checked)

    def summary(self) -> str:
        start = f"snapshot at seq {self.snapshot_seq}" if self.snapshot_seq else "genesis"
        skipped = f"; set aside: {'; '.join(self.skipped)}" if self.skipped else ""
        return (
            f"chains checked from genesis in {self.chains_s:.3f} s, "
            f"recovered from {start}, replayed {self.replayed} commands to seq {self.seq}, "
            f"log seq {self.log_seq} head {self.log_head[:16] or '-'}, "
            f"state hash {self.state_hash[:16]}, {self.elapsed_s:.3f} s{skipped}"
        )


# -- reference data: what the genesis core is built from ---------------------------------------

LIMIT_EXCEEDED = "LIMIT_EXCEEDED"  # engine.events.Reason.LIMIT_EXCEEDED

REF_SERIES = "series"
REF_PROJECTS = "projects"
REF_CONFIG = "config"


def save_genesis(
    store: Store,
    *,
    series: Iterable[Any] = (),
    projects: Iterable[Any] = (),
    config: dict[str, Any] | None = None,
) -> None:
    """Store the reference data the genesis core is built from. Only before the first
    command: reference data that changed under a journal would change its replay."""
    if store.head().seq:
        raise StoreError("reference data is fixed once the journal has commands")
    enc = msgspec.msgpack.encode
    store.put_reference(REF_SERIES, [(s.id, enc(s)) for s in series])
    store.put_reference(REF_PROJECTS, [(p.id, enc(p)) for p in projects])
    store.put_reference(REF_CONFIG, [("core", enc(config or {}))])


def genesis_core(store: Store) -> Any:
    """The core in its state before the first command: `Core(series, projects, **config)`."""
    from engine.reference import Project, Series
    from settlement.core import Core

    series = [msgspec.msgpack.decode(d, type=Series) for _, d in store.reference(REF_SERIES)]
    projects = [msgspec.msgpack.decode(d, type=Project) for _, d in store.reference(REF_PROJECTS)]
    config_rows = store.reference(REF_CONFIG)
    config = msgspec.msgpack.decode(config_rows[0][1]) if config_rows else {}
    return Core(series=series, projects=projects, **config)


def restore_core(data: bytes) -> Any:
    from settlement.core import Core

    return Core.restore(data)


# -- recovery ---------------------------------------------------------------------------------


def recover(
    store: Store,
    *,
    codec: Codec | None = None,
    genesis: Callable[[Store], Any] = genesis_core,
    restore: Callable[[bytes], Any] = restore_core,
    use_snapshots: bool = True,
    on_command: Callable[[int, Any, list[Any]], None] | None = None,
    resume: Recovered | None = None,
    clock: Clock | None = None,
) -> Recovered:
    """Rebuild the core from `store` (see the module docstring), reading one consistent view
    of it (a server may be writing meanwhile). `use_snapshots=False` replays the whole
    journal from genesis (the audit check). `on_command(seq, cmd, events)` sees every
    replayed command and its events (the crash test uses it). `resume` continues an earlier
    result's replay with the commands stored since (its core is taken over and moved on).
    `clock` (`SystemClock` by default) times it, for `elapsed_s` and `chains_s`."""
    monotonic_ns = (clock or SystemClock()).monotonic_ns
    with store.reading():
        return _recover(
            store, codec, genesis, restore, use_snapshots, on_command, resume, monotonic_ns
        )


def _recover(
    store: Store,
    codec: Codec | None,
    genesis: Callable[[Store], Any],
    restore: Callable[[bytes], Any],
    use_snapshots: bool,
    on_command: Callable[[int, Any, list[Any]], None] | None,
    resume: Recovered | None,
    monotonic_ns: Callable[[], int],
) -> Recovered:
    started = monotonic_ns()
    codec = codec if codec is not None else SettlementCodec()
    skipped: list[str] = []
    core: Any = None
    start = SnapshotInfo(0, 0, "", "", 0, 0)
    chains = (
        None if resume is not None else _check_chains(store, codec, not use_snapshots, monotonic_ns)
    )
    candidates = store.snapshots() if use_snapshots and resume is None else []
    if resume is not None:
        core = resume.core
        start = SnapshotInfo(resume.seq, resume.log_seq, resume.log_head, "", 0, 0)
    for info in candidates:
        assert chains is not None
        reason = _try_snapshot(store, info, restore, chains)
        if isinstance(reason, str):
            skipped.append(f"snapshot seq {info.seq}: {reason}")
            continue
        core, start = reason, info
        break
    if core is None:
        core = genesis(store)  # the chains checked that the journal starts at seq 1
        core.drain_records()  # construction may log nothing; a replay starts clean

    seq, log_seq, log_head = start.seq, start.log_seq, start.log_head
    replayed = 0
    # Snapshots the replay passes: their recorded state hash must be the replay's there.
    checkpoints = {s.seq: s for s in store.snapshots() if s.seq > seq}
    checked = False
    over = ""  # the first replayed command refused with LIMIT_EXCEEDED, if any
    encode_record = codec.encode_record
    stored = store.records(log_seq)
    try:
        for row in store.commands(seq):
            if row.seq != seq + 1:
                raise RecoveryError(
                    f"journal record seq {seq + 1} is missing (next stored is {row.seq})"
                )
            seq = row.seq
            try:
                cmd = codec.decode_command(row.cmd)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                raise RecoveryError(f"journal record seq {seq} does not decode: {exc}") from exc
            if cmd.ts != row.ts:
                raise RecoveryError(
                    f"journal record seq {seq}: its command's ts {cmd.ts} is not the row's {row.ts}"
                )
            try:
                events = core.apply(cmd)
            except Exception as exc:  # a bug or a broken invariant: name where
                raise RecoveryError(f"replay of journal record seq {seq} failed: {exc!r}") from exc
            if events and not over and getattr(events[-1], "reason", None) == LIMIT_EXCEEDED:
                # a folder written before the limits: the replay refuses what was accepted
                over = f" (journal record seq {seq} is over a limit on replay: {events[-1].text})"
            if on_command is not None:
                on_command(seq, cmd, events)
            for record in core.drain_records():
                row_log = next(stored, None)
                _check_record(row_log, record, encode_record, seq)
                assert row_log is not None
                log_seq, log_head = row_log.seq, row_log.hash
            replayed += 1
            if seq in checkpoints:
                checked = _check_checkpoint(store, checkpoints[seq], core, log_seq, log_head)
        extra = next(stored, None)
        if extra is not None:
            raise RecoveryError(
                f"settlement log record seq {extra.seq} is stored but no journal command "
                f"produces it (journal ends at seq {seq})"
            )
    except CorruptRecord as exc:
        raise RecoveryError(f"{exc}: refusing to start") from exc
    except RecoveryError as exc:
        if over:
            raise RecoveryError(f"{exc}{over}") from exc
        raise
    if chains is not None and (seq, log_seq) != (chains.seq, chains.log_seq):
        raise RecoveryError(  # the replay read one view; the chains were checked in it too
            f"replay ended at journal seq {seq}, log seq {log_seq}; the chains at "
            f"{chains.seq}, {chains.log_seq}"
        )
    state_hash = core.state_hash()
    if seq not in checkpoints:  # the last checkpoint, if any, was not at the final command
        checked = bool(start.seq == seq and start.seq and resume is None)
    return Recovered(
        core=core,
        snapshot_seq=resume.snapshot_seq if resume is not None else start.seq,
        skipped=skipped,
        replayed=replayed + (resume.replayed if resume is not None else 0),
        seq=seq,
        log_seq=log_seq,
        log_head=log_head,
        state_hash=state_hash,
        elapsed_s=(monotonic_ns() - started) / NS_PER_S,
        checked_state_hash=checked,
        chains_s=chains.elapsed_s if chains is not None else 0.0,
    )


def _check_chains(
    store: Store, codec: Codec, full: bool, monotonic_ns: Callable[[], int]
) -> Checked:
    """Both chains from genesis, pinned at every stored snapshot's position."""
    infos = store.snapshots()
    try:
        return check_chains(
            store,
            codec,
            seq_pins={s.seq for s in infos},
            log_pins={s.log_seq for s in infos},
            full=full,
            monotonic_ns=monotonic_ns,
        )
    except (ChainError, CorruptRecord) as exc:
        raise RecoveryError(f"{exc}: refusing to start") from exc


def _try_snapshot(
    store: Store, info: SnapshotInfo, restore: Callable[[bytes], Any], chains: Checked
) -> Any:
    """The restored core, or a string saying why this snapshot cannot be used. An intact
    snapshot that contradicts the checked chains is a `RecoveryError`: it is evidence that
    rows were removed or rewritten."""
    try:
        snap = store.snapshot(info.seq)
    except CorruptRecord as exc:
        return f"corrupt ({exc})"
    except StoreError as exc:
        return f"unreadable ({exc})"
    _check_pins(info, chains)
    try:
        core = restore(snap.data)
    except Exception as exc:
        return f"does not restore: {exc!r}"
    if not _same_state(core, info.state_hash):
        state_hash = core.state_hash()
        return f"restored state hash {state_hash[:16]} != recorded {info.state_hash[:16]}"
    core.drain_records()
    return core


def _check_pins(info: SnapshotInfo, chains: Checked) -> None:
    """An intact snapshot's recorded heads must be on the chains."""
    if info.seq > chains.seq or info.log_seq > chains.log_seq:
        raise RecoveryError(
            f"journal record seq {chains.seq + 1} is missing: intact snapshot seq {info.seq} "
            f"covers journal seq {info.seq} and log seq {info.log_seq}, but the journal ends at "
            f"seq {chains.seq} and the log at {chains.log_seq} (rows removed): refusing to start"
        )
    if info.journal_head and chains.journal_pins.get(info.seq) != info.journal_head:
        raise RecoveryError(
            f"journal record seq {info.seq} is not the one intact snapshot seq {info.seq} "
            "recorded (the journal up to it was rewritten): refusing to start"
        )
    if info.log_seq and chains.log_pins.get(info.log_seq) != info.log_head:
        raise RecoveryError(
            f"settlement log record seq {info.log_seq} is not the one intact snapshot seq "
            f"{info.seq} recorded (the log up to it was rewritten): refusing to start"
        )


def _check_checkpoint(
    store: Store, info: SnapshotInfo, core: Any, log_seq: int, log_head: str
) -> bool:
    """At a snapshot's command, the replayed core must have the state hash and log head the
    snapshot recorded (a difference means the core that wrote it diverged from its journal).
    A snapshot whose own checksum fails is no evidence either way: False."""
    try:
        store.snapshot(info.seq)
    except StoreError:
        return False
    if not _same_state(core, info.state_hash) or (log_seq, log_head) != (
        info.log_seq,
        info.log_head,
    ):
        state_hash = core.state_hash()
        raise RecoveryError(
            f"replay to journal seq {info.seq} gives state hash {state_hash[:16]} and log "
            f"head {log_seq}/{log_head[:16]}, but snapshot seq {info.seq} recorded "
            f"{info.state_hash[:16]} and {info.log_seq}/{info.log_head[:16]}"
        )
    return True


def _same_state(core: Any, recorded: str) -> bool:
    """Whether a snapshot's recorded state hash is `core`'s: in the current format, or in an
    earlier one the core still computes (`Core.has_state_hash`), so older folders open."""
    check = getattr(core, "has_state_hash", None)
    return bool(check(recorded)) if check is not None else core.state_hash() == recorded


def _check_record(
    row: LogRow | None, record: Any, encode_record: Callable[[Any], bytes], cmd_seq: int
) -> None:
    if row is None:
        raise RecoveryError(
            f"replay of journal record seq {cmd_seq} produces settlement record seq "
            f"{record.seq}, which the store lacks"
        )
    if row.seq != record.seq or row.hash != record.hash or row.record != encode_record(record):
        raise RecoveryError(
            f"settlement log record seq {row.seq} differs from what journal record seq "
            f"{cmd_seq} produces on replay"
        )
