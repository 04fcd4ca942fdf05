"""A step's measured window: its run's 1-second intervals after the warm-up, merged, and the
SLOs judged on them; and what the run's self-check says about the generator.

The run records a histogram per 1-second interval (``RunResult.intervals``), so the window
is exact: the intervals that start at or after the warm-up's end, their histograms added.
A warm-up is whole seconds for that reason. Counted in the window: requests, errors, bytes
and both latencies (corrected and raw in the open model); taken from the whole run, since
the run records them only in total: connect latency, schedule lag, the requests that waited
for a connection and those never sent.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from enum import StrEnum

from loadgen.capacity.model import Window
from loadgen.config.thresholds import Threshold, ThresholdVerdict
from loadgen.result.model import LatencySummary, RunResult, SelfCheck, Summary
from loadgen.run.selfcheck import WAITED_CAUSE
from loadgen.stats.histogram import HdrHistogram

#: Intervals start on whole seconds; a float start within this of the warm-up's end counts.
_EDGE_S = 1e-6


@dataclass(frozen=True)
class WindowData:
    """The window as numbers (``window``), as a ``Summary`` thresholds can judge, and its
    honest latency histogram (corrected in the open model) for the spectrum chart."""

    window: Window
    summary: Summary
    latency: HdrHistogram


def measured_window(result: RunResult, warmup_s: float) -> WindowData:
    intervals = [i for i in result.intervals if i.start_s >= warmup_s - _EDGE_S]
    open_model = result.summary.latency_corrected_us is not None
    raw = HdrHistogram()
    corrected = HdrHistogram()
    errors: Counter[str] = Counter()
    for interval in intervals:
        raw.merge(HdrHistogram.from_dict(interval.latency))
        if interval.latency_corrected:
            corrected.merge(HdrHistogram.from_dict(interval.latency_corrected))
        errors.update(interval.errors)
    duration_s = sum(interval.duration_s for interval in intervals)
    requests = sum(interval.requests for interval in intervals)
    achieved = requests / duration_s if duration_s > 0 else 0.0
    raw_summary = LatencySummary.from_histogram(raw)
    corrected_summary = LatencySummary.from_histogram(corrected) if open_model else None
    summary = replace(
        result.summary,
        requests=requests,
        errors=dict(sorted(errors.items())),
        duration_s=round(duration_s, 6),
        throughput_rps=round(achieved, 3),
        latency_us=raw_summary,
        latency_corrected_us=corrected_summary,
        bytes_sent=sum(interval.bytes_sent for interval in intervals),
        bytes_received=sum(interval.bytes_received for interval in intervals),
    )
    window = Window(
        start_s=warmup_s,
        duration_s=round(duration_s, 6),
        requests=requests,
        errors=dict(sorted(errors.items())),
        achieved_rps=round(achieved, 3),
        latency_us=corrected_summary or raw_summary,
        raw_latency_us=raw_summary if open_model else None,
    )
    return WindowData(window, summary, corrected if open_model else raw)


def judge(slos: list[Threshold], summary: Summary) -> list[ThresholdVerdict]:
    """Every SLO on the window's summary (a value that was not measured fails)."""
    return [slo.check(summary) for slo in slos]


class Bottleneck(StrEnum):
    NONE = "none"  # the self-check found nothing (or the result predates it)
    GENERATOR = "generator"  # CPU, runnable time, or a loop that could not send on time
    POOL = "pool"  # open model: requests waited for a free connection of the pool


def bottleneck(check: SelfCheck | None) -> Bottleneck:
    """Who set the pace when the self-check failed, from the values it judged.

    Requests that waited for a connection mean the target held every connection of the
    pool: in a capacity step the pool follows the rate with headroom over the SLO's
    latency (``steps.pool_size``), so the target answered far slower than the SLO allows.
    That is the target's verdict, not the generator's. A busy or starved generator, or one
    whose loop could not send on time with connections free, is the generator's.
    """
    if check is None or check.valid:
        return Bottleneck.NONE
    limit = check.cpu_limit_percent
    runnable = check.runnable_percent
    if check.cpu_percent >= limit or (runnable is not None and runnable >= limit):
        return Bottleneck.GENERATOR
    if (check.waited_fraction or 0.0) > WAITED_CAUSE:
        return Bottleneck.POOL
    return Bottleneck.GENERATOR
