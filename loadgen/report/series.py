"""Chart data from results: time series per interval and the percentile spectrum.

Pure data (lists of floats and ``None`` for gaps) ready to serialise for the report's charts.
Latencies are microseconds, time is seconds from the run's start (at each interval's end, so
the first second's rate is drawn at 1 s).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from loadgen.report.loading import LoadedRun
from loadgen.stats.histogram import HdrHistogram

NS_PER_US = 1000
#: Points of each spectrum curve, spread evenly on the log 1/(1-p) axis (plus each run's end).
SPECTRUM_POINTS = 240
INTERVAL_PERCENTILES = (50.0, 90.0, 99.0)


@dataclass(frozen=True)
class IntervalSeries:
    """One run's per-interval values, aligned with ``time_s``."""

    time_s: list[float]
    throughput_rps: list[float]
    latency_us: dict[str, list[float | None]]  # p50, p90, p99, max (+ raw p99)
    errors_per_s: dict[str, list[float]]  # by kind; kinds that never occurred are absent
    connections: list[float | None] | None  # None: the result does not record it


def is_open_model(run: LoadedRun) -> bool:
    """Open-model runs carry latency corrected for coordinated omission (intended send time)."""
    return run.result.summary.latency_corrected_us is not None


def _interval_latency(
    histograms: Sequence[HdrHistogram | None], include_p90: bool = True
) -> dict[str, list[float | None]]:
    names = ("p50", "p90", "p99", "max") if include_p90 else ("p99",)
    latency: dict[str, list[float | None]] = {name: [] for name in names}
    for histogram in histograms:
        if histogram is None or histogram.total_count == 0:
            for values in latency.values():
                values.append(None)
            continue
        p50, p90, p99 = histogram.percentiles(list(INTERVAL_PERCENTILES))
        found = {"p50": p50, "p90": p90, "p99": p99, "max": histogram.max}
        for name in names:
            latency[name].append(found[name] / NS_PER_US)
    return latency


def interval_series(run: LoadedRun) -> IntervalSeries:
    """Per-interval series; in the open model latency is the corrected one, plus raw p99."""
    intervals = run.result.intervals
    raw_intervals: list[dict[str, Any]] = list(run.raw.get("intervals") or [])
    time_s = [round(i.start_s + i.duration_s, 6) for i in intervals]
    throughput = [i.requests / i.duration_s if i.duration_s > 0 else 0.0 for i in intervals]
    raw = [HdrHistogram.from_dict(i.latency) for i in intervals]
    if is_open_model(run):
        corrected = [
            HdrHistogram.from_dict(i.latency_corrected) if i.latency_corrected else None
            for i in intervals
        ]
        latency = _interval_latency(corrected)
        latency["raw p99"] = _interval_latency(raw, include_p90=False)["p99"]
    else:
        latency = _interval_latency(list[HdrHistogram | None](raw))
    kinds = sorted({kind for i in intervals for kind in i.errors})
    errors = {
        kind: [i.errors.get(kind, 0) / i.duration_s if i.duration_s > 0 else 0.0 for i in intervals]
        for kind in kinds
    }
    connections: list[float | None] | None = None
    if raw_intervals and any("connections" in item for item in raw_intervals):
        connections = [_number(item.get("connections")) for item in raw_intervals]
    return IntervalSeries(time_s, throughput, latency, errors, connections)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def spectrum_grid(total_counts: Sequence[int]) -> list[float]:
    """x values (1/(1-p)) from 1 to the largest total count, log-spaced, plus each total.

    A run of N samples ends at x = N: beyond it every percentile is its maximum.
    """
    largest = max([*total_counts, 2])
    grid = np.logspace(0.0, math.log10(largest), SPECTRUM_POINTS)
    points = {round(float(x), 6) for x in grid} | {float(n) for n in total_counts if n > 0}
    return sorted(points)


def spectrum_values(histogram: HdrHistogram, grid: Sequence[float]) -> list[float | None]:
    """Latency (µs) at percentile 100 * (1 - 1/x) for each x; None past the run's samples.

    The last point (x = total count) is the maximum, so every curve ends at its worst sample.
    """
    total = histogram.total_count
    inside = [x for x in grid if x <= total]
    percentiles = [100.0 if x >= total else 100.0 * (1.0 - 1.0 / x) for x in inside]
    values = histogram.percentiles(percentiles) if inside else []
    curve: list[float | None] = [v / NS_PER_US for v in values]
    return curve + [None] * (len(grid) - len(inside))


def corrected_histogram(run: LoadedRun) -> HdrHistogram | None:
    """The coordinated-omission-corrected histogram, when the run recorded one."""
    if "latency_corrected" not in run.result.histograms:
        return None
    return run.result.histogram("latency_corrected")


def _phases(run: LoadedRun) -> list[tuple[float, float, float]]:
    """(duration_s, start rate, end rate) of each open-model phase; empty otherwise."""
    load = run.result.scenario.get("load")
    if not isinstance(load, dict) or load.get("model") != "open":
        return []
    phases = []
    for phase in load.get("phases") or []:
        rate = phase.get("rate")
        if not isinstance(rate, list | tuple) or len(rate) != 2:
            return []
        phases.append((float(phase["duration"]), float(rate[0]), float(rate[1])))
    return phases


def _scheduled_by(phases: Sequence[tuple[float, float, float]], t_s: float) -> float:
    """Requests the schedule asks for from the start to ``t_s`` (linear ramps)."""
    total, start = 0.0, 0.0
    for duration, first, last in phases:
        if t_s <= start or duration <= 0:
            break
        elapsed = min(t_s - start, duration)
        total += first * elapsed + (last - first) * elapsed * elapsed / (2 * duration)
        start += duration
    return total


def scheduled_rates(run: LoadedRun) -> list[float | None] | None:
    """The open-model schedule's rate over each interval (what throughput is measured
    against: the requests due in it over its length); None for a closed-model run."""
    phases = _phases(run)
    if not phases:
        return None
    rates: list[float | None] = []
    for interval in run.result.intervals:
        start, end = interval.start_s, interval.start_s + interval.duration_s
        due = _scheduled_by(phases, end) - _scheduled_by(phases, start)
        rates.append(due / interval.duration_s if interval.duration_s > 0 else None)
    return rates


def scheduled_overall(run: LoadedRun) -> float | None:
    """The schedule's mean rate over the run's planned length."""
    phases = _phases(run)
    planned = sum(duration for duration, _, _ in phases)
    return _scheduled_by(phases, planned) / planned if phases and planned > 0 else None
