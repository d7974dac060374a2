"""What a running server counts for `/metrics`, and the collector that exports it.

The hot path pays for plain integer and dict increments only (`ServerMetrics`): the server
counts commands by kind as it handles them, the sessions count bytes in and out, and the
commit loop reports each group commit's latency and size. Rejects, fills and trades are
counted from the batches as they are released (`released`), which the server calls only
when a console is attached. Nothing takes a lock or builds a string until Prometheus
scrapes: then `TonneCollector` turns the counts, the server's own counters, the journal's
figures and the sessions into metric families of `prometheus_client`, which also writes
the text format. A server without metrics (`metrics=None`) skips even the increments; the
durable gateway bench measures both (README, "Operator console").

Names follow the Prometheus conventions: `tonne_` prefix, base units (seconds, bytes),
the unit last, `_total` on counters; label names are lower case (`kind`, `reason`,
`transport`, `event`).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from engine.events import Reason
from gateway.wire import protocol as p

COMMIT_LATENCY_BUCKETS_S = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
)  # fmt: skip
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048)
SNAPSHOT_BUCKETS_S = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0)
RECENT_COMMITS = 4096  # group commits kept for the console's percentiles


class Buckets:
    """A fixed-bucket histogram without a lock: the loop thread is its only writer."""

    __slots__ = ("bounds", "counts", "sum", "n")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)  # the last one: above every bound
        self.sum = 0.0
        self.n = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.n += 1

    def family(self, name: str, doc: str) -> HistogramMetricFamily:
        cumulative, running = [], 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += count
            cumulative.append((_le(bound), running))
        return HistogramMetricFamily(name, doc, buckets=cumulative, sum_value=self.sum)


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(float(bound))


class ServerMetrics:
    """The counts the server keeps for Prometheus and the console (plain ints)."""

    def __init__(self) -> None:
        self.commands: dict[type, int] = {}  # by wire message type
        self.rejects: dict[Reason, int] = {}
        self.fills = 0  # trades settled (one per match, both sides together)
        self.fill_reports = 0  # fill reports sent to accounts (two per trade, or more)
        self.bytes_in = {"tcp": 0, "ws": 0}
        self.bytes_out = {"tcp": 0, "ws": 0}
        self.commit_latency_s = Buckets(COMMIT_LATENCY_BUCKETS_S)
        self.commit_commands = Buckets(BATCH_BUCKETS)
        self.recent_commits: list[tuple[float, int]] = []  # (latency s, commands), a ring
        self._recent_at = 0
        self.snapshot_pause_s = Buckets(SNAPSHOT_BUCKETS_S)
        self._snapshots_seen = 0

    def committed(self, latency_s: float, commands: int) -> None:
        """One group commit: how long its flush took and how many commands it made durable."""
        self.commit_latency_s.observe(latency_s)
        self.commit_commands.observe(commands)
        ring = self.recent_commits
        if len(ring) < RECENT_COMMITS:
            ring.append((latency_s, commands))
        else:
            ring[self._recent_at] = (latency_s, commands)
            self._recent_at = (self._recent_at + 1) % RECENT_COMMITS

    def released(self, batches: Sequence[Any]) -> None:
        """Count what durable batches tell: rejects by reason, fill reports, public trades."""
        rejects = self.rejects
        for batch in batches:
            for target, msg in batch.items:
                kind = type(msg)
                if kind is p.Reject:
                    rejects[msg.reason] = rejects.get(msg.reason, 0) + 1
                elif kind is p.Fill:
                    self.fill_reports += 1
                elif kind is p.PublicTrade and type(target) is str:
                    self.fills += 1

    def snapshots(self, taken: int, pauses_s: Sequence[float]) -> None:
        """Observe the snapshot pauses the journal recorded since the last look."""
        new = min(taken - self._snapshots_seen, len(pauses_s))
        for pause in list(pauses_s)[len(pauses_s) - max(new, 0) :]:
            self.snapshot_pause_s.observe(pause)
        self._snapshots_seen = taken


def percentiles(values: Sequence[float], qs: Sequence[float]) -> list[float]:
    """Nearest-rank percentiles of `values` (0 for none)."""
    if not values:
        return [0.0 for _ in qs]
    ordered = sorted(values)
    n = len(ordered)
    return [ordered[min(n - 1, max(0, int(q / 100 * n + 0.5) - 1))] for q in qs]


class TonneCollector(Collector):
    """Reads `server` (gateway/server/server.py) and its journal at scrape time."""

    def __init__(self, server: Any, journal: Any, metrics: ServerMetrics) -> None:
        self.server = server
        self.journal = journal
        self.m = metrics

    def collect(self) -> Iterator[Metric]:
        m, server, journal = self.m, self.server, self.journal
        commands = CounterMetricFamily(
            "tonne_commands", "Requests handled, by wire message kind", labels=["kind"]
        )
        for kind, n in sorted(m.commands.items(), key=lambda kv: _tag(kv[0])):
            commands.add_metric([_tag(kind)], n)
        yield commands
        rejects = CounterMetricFamily(
            "tonne_rejects", "Rejections sent, by reason code", labels=["reason"]
        )
        for reason, n in sorted(m.rejects.items(), key=lambda kv: kv[0].value):
            rejects.add_metric([reason.value], n)
        yield rejects
        yield CounterMetricFamily("tonne_fills", "Trades settled (one per match)", value=m.fills)
        yield CounterMetricFamily(
            "tonne_fill_reports", "Fill reports sent to accounts", value=m.fill_reports
        )
        yield CounterMetricFamily(
            "tonne_settlement_records",
            "Settlement-log records appended (the log's head sequence number)",
            value=getattr(journal, "log_seq", 0),
        )
        yield m.commit_latency_s.family(
            "tonne_commit_latency_seconds", "Group commit: flush until durable"
        )
        yield m.commit_commands.family(
            "tonne_commit_batch_commands", "Group commit: commands made durable per flush"
        )
        yield GaugeMetricFamily(
            "tonne_journal_lag_commands",
            "Commands applied in memory but not yet durable",
            value=getattr(journal, "seq", 0) - getattr(journal, "durable_seq", 0),
        )
        sessions = GaugeMetricFamily("tonne_sessions", "Open sessions", labels=["transport"])
        for transport, n in session_counts(server).items():
            sessions.add_metric([transport], n)
        yield sessions
        for name, doc, counts in (
            ("tonne_received_bytes", "Bytes received from clients", m.bytes_in),
            ("tonne_sent_bytes", "Bytes sent to clients", m.bytes_out),
        ):
            family = CounterMetricFamily(name, doc, labels=["transport"])
            for transport, n in sorted(counts.items()):
                family.add_metric([transport], n)
            yield family
        counters = dict(server.counters)
        yield CounterMetricFamily(
            "tonne_slow_consumer_drops",
            "Sessions dropped for not reading their output",
            value=counters.get("slow_consumers", 0),
        )
        events = CounterMetricFamily(
            "tonne_server_events", "The server's own event counters", labels=["event"]
        )
        for name, n in sorted(counters.items()):
            events.add_metric([name], n)
        yield events
        m.snapshots(
            getattr(journal, "snapshots_taken", 0), getattr(journal, "snapshot_pauses_s", ())
        )
        yield m.snapshot_pause_s.family(
            "tonne_snapshot_pause_seconds", "How long each snapshot paused the event loop"
        )
        yield CounterMetricFamily(
            "tonne_snapshots", "Snapshots taken", value=getattr(journal, "snapshots_taken", 0)
        )


def session_counts(server: Any) -> dict[str, int]:
    """Open sessions by transport (`tcp`, `ws`)."""
    out = {"tcp": 0, "ws": 0}
    for s in server.sessions:
        out[transport_of(s)] += 1
    return out


def transport_of(session: Any) -> str:
    return "ws" if type(session).__name__ == "WsSession" else "tcp"


def _tag(kind: type) -> str:
    config = getattr(kind, "__struct_config__", None)
    tag = getattr(config, "tag", None)
    return str(tag) if tag else kind.__name__


__all__ = ["ServerMetrics", "TonneCollector", "percentiles", "session_counts"]
