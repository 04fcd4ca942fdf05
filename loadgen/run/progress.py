"""A run's progress while it runs, as plain data: the numbers the live view and a cluster's
coordinator read, independent of how they are drawn (``loadgen.report.live`` draws them).

With several shards (processes, hosts), the numbers come as ``Tick``s: each shard sends one
about twice a second with its running totals and the intervals it closed since its last tick
(keyed by interval number since the shared start). A ``TickBoard`` adds them up into a
``Snapshot``: totals are summed over shards, and "the last whole second" is the newest
interval every running shard has closed, its histograms added before p50/p99 are read. A
single in-process run feeds the same board, so there is one way numbers reach the view.
Ticks are picklable: they cross process boundaries. Nothing here imports rich.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from loadgen.result.model import Interval
from loadgen.stats.histogram import HdrHistogram


@dataclass(frozen=True)
class Snapshot:
    """What the view shows, read from the run at one moment."""

    elapsed_s: float
    duration_s: float
    phase: str
    requests: int
    last_interval_rps: float | None
    last_p50_us: float | None
    last_p99_us: float | None
    errors: dict[str, int] = field(default_factory=dict)
    open_connections: int = 0
    cpu_percent: float | None = None
    bytes_sent: int = 0
    bytes_received: int = 0
    cpu_s: float = 0.0  # the generator's CPU time so far, all shards


@dataclass(frozen=True)
class Tick:
    """One shard's numbers at one moment (picklable: it crosses process boundaries)."""

    shard: int
    elapsed_s: float  # since the shared start
    requests: int  # running total (closed intervals, the open one, the hot loop's buffer)
    errors: dict[str, int]  # running totals by kind
    open_connections: int
    cpu_s: float  # the shard process's CPU time so far
    intervals: tuple[Interval, ...] = ()  # closed since this shard's previous tick
    bytes_sent: int = 0  # running totals
    bytes_received: int = 0


class TickBoard:
    """Adds up the shards' ticks into the view's ``Snapshot`` (thread-safe)."""

    def __init__(
        self, shards: int, duration_s: float, phase: Callable[[float], str] = lambda _: ""
    ) -> None:
        """``phase`` names the phase at an elapsed time (``LoadPlan.phase_label``)."""
        self._shards = shards
        self._duration_s = duration_s
        self._phase = phase
        self._lock = threading.Lock()
        self._latest: dict[int, Tick] = {}
        self._received_at = 0.0  # monotonic time of the newest tick
        self._cpu_percent: dict[int, float] = {}
        self._cpu_before: dict[int, tuple[float, float]] = {}  # shard -> (cpu_s, elapsed_s)
        #: Every interval each shard has reported, by shard (a dead shard's partial result).
        self.intervals: dict[int, list[Interval]] = {n: [] for n in range(shards)}
        self._retired: set[int] = set()
        self._shown_index = -1
        self._last: tuple[float, int | None, int | None] | None = None
        #: Every closed interval's latency added up (the honest one: from intended send
        #: times in the open model), for live exports such as the metrics endpoint.
        self._latency = HdrHistogram()

    def add(self, tick: Tick) -> None:
        with self._lock:
            before = self._cpu_before.get(tick.shard)
            if before is not None and tick.elapsed_s > before[1]:
                self._cpu_percent[tick.shard] = (
                    100 * (tick.cpu_s - before[0]) / (tick.elapsed_s - before[1])
                )
            self._cpu_before[tick.shard] = (tick.cpu_s, tick.elapsed_s)
            self._latest[tick.shard] = tick
            self._received_at = time.monotonic()
            self.intervals[tick.shard].extend(tick.intervals)
            for interval in tick.intervals:
                honest = interval.latency_corrected or interval.latency
                self._latency.merge(HdrHistogram.from_dict(honest))
            self._close_complete()

    def latency(self) -> HdrHistogram:
        """A copy of the latency of every interval closed so far, all shards added."""
        with self._lock:
            return self._latency.copy()

    def retire(self, shard: int) -> None:
        """A shard that ended (or died): it no longer holds back the last whole second."""
        with self._lock:
            self._retired.add(shard)
            self._close_complete()

    def _close_complete(self) -> None:
        """Take the newest interval every running shard has reported as the view's."""
        reported = [
            self.intervals[n][-1].index if self.intervals[n] else -1
            for n in range(self._shards)
            if n not in self._retired
        ]
        everyone = (
            min(reported)
            if reported
            else max((i[-1].index for i in self.intervals.values() if i), default=-1)
        )
        if everyone <= self._shown_index:
            return
        group = [i for ivs in self.intervals.values() for i in ivs if i.index == everyone]
        histogram = HdrHistogram()
        for interval in group:
            histogram.merge(HdrHistogram.from_dict(interval.latency))
        length = max(interval.duration_s for interval in group)
        p50, p99 = histogram.percentiles([50, 99]) if histogram.total_count else (None, None)
        self._last = (histogram.total_count / length if length > 0 else 0.0, p50, p99)
        self._shown_index = everyone

    def snapshot(self) -> Snapshot:
        with self._lock:
            ticks = list(self._latest.values())
            errors: dict[str, int] = {}
            for tick in ticks:
                for kind, count in tick.errors.items():
                    errors[kind] = errors.get(kind, 0) + count
            elapsed = max((t.elapsed_s for t in ticks), default=0.0)
            if ticks and len(self._retired) < self._shards:  # running: move on between ticks
                elapsed += time.monotonic() - self._received_at
            elapsed = min(elapsed, self._duration_s)
            last = self._last
            return Snapshot(
                elapsed_s=elapsed,
                duration_s=self._duration_s,
                phase=self._phase(elapsed),
                requests=sum(t.requests for t in ticks),
                last_interval_rps=None if last is None else last[0],
                last_p50_us=None if last is None or last[1] is None else last[1] / 1000,
                last_p99_us=None if last is None or last[2] is None else last[2] / 1000,
                errors=dict(sorted(errors.items())),
                open_connections=sum(t.open_connections for t in ticks),
                cpu_percent=sum(self._cpu_percent.values()) if self._cpu_percent else None,
                bytes_sent=sum(t.bytes_sent for t in ticks),
                bytes_received=sum(t.bytes_received for t in ticks),
                cpu_s=sum(t.cpu_s for t in ticks),
            )
