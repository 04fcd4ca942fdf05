"""The generator checks itself: was it, rather than the target, the bottleneck of a run?

A load generator that runs out of CPU, or cannot send on schedule, reports its own slowness
as the target's. Such a run is marked invalid (``RunResult.self_check``) with every reason,
each naming the value measured and its bound, and ``loadgen run`` exits 3. The bounds:

* **CPU**: the generator's CPU share reached ``SATURATED_CPU_SHARE`` (90%) of the cores it
  can use, which is one core per generator process (a Python process runs its loop on one
  core). Judged over the whole run and over its busiest ``CPU_WINDOW_S`` (5) seconds, so a
  ramp that saturates only at its top is caught too. A closed loop with no think time runs
  as fast as the slower side allows: against a faster target that side is the generator,
  and the run measures the generator.
* **Runnable share** (Linux, where schedstat is readable): the loop thread was running *or
  waiting for a CPU* 90% of the time. That is a bottleneck too, one that CPU share alone
  misses on a busy machine: there the generator's CPU reads 60% while its loop never slept.
* **Open-model schedule**: requests left late, the p99 of the schedule lag above
  ``SCHEDULE_LAG_P99_FLOOR_MS`` (20 ms) *and* above the target's own p99 (the raw latency,
  from the actual send); or more than ``UNSENT_LIMIT`` (1%) of the scheduled requests never
  left. The corrected latency counts from the intended send time, so lateness is charged to
  the target: beyond both bounds it is the larger part of what the run reports. Below 20 ms
  it is machine noise (3-6 ms p99 measured at 2k/s on this 2-core VM with a load average of
  4.7), which a tighter bound would call invalid on any shared CI runner. A request waits
  when the loop is too busy to send it, or when every connection is busy: either way the
  target did not get the load the scenario describes. The reason says which
  (``waited_for_connection``), because the fixes differ: more generator capacity, or more
  connections. A few requests that wait a moment for a connection are not a reason: only
  lateness beyond the bound is.

* **Clock**: latencies are differences of one clock (``stats.clock``); one coarser than
  ``CLOCK_LIMIT_NS`` (1 us) reads a loopback request as 0 or as one whole tick, so the run's
  latencies are invalid whatever the generator's load (Windows CPython's ``monotonic`` before
  3.13 ticked every 15.6 ms: 42-71 distinct latencies in a run, 1 in 150 read as 0 ns).

Loop lag (``generator.max_loop_lag_ms``) is reported, not judged: a single maximum is one
pause (a page fault, a garbage collection) as often as saturation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from loadgen.result.model import SelfCheck, Summary
from loadgen.stats.clock import CLOCK_LIMIT_NS

SATURATED_CPU_SHARE: Final = 0.90
CPU_WINDOW_S: Final = 5
SCHEDULE_LAG_P99_FLOOR_MS: Final = 20.0
UNSENT_LIMIT: Final = 0.01
#: A "waited for a connection" share above this is named as the cause of schedule lag.
WAITED_CAUSE: Final = 0.01


def busiest(overall: float | None, per_interval: Sequence[float | None]) -> float | None:
    """The larger of the whole run's share and its busiest ``CPU_WINDOW_S`` window's mean."""
    values = [v for v in per_interval if v is not None]
    best = overall
    if len(values) >= CPU_WINDOW_S:
        window = max(
            sum(values[i : i + CPU_WINDOW_S]) / CPU_WINDOW_S
            for i in range(len(values) - CPU_WINDOW_S + 1)
        )
        best = window if best is None else max(best, window)
    return best


def _percent(value: float) -> str:
    return f"{value:.0f}%" if value >= 10 else f"{value:.2g}%"


def check(
    summary: Summary,
    *,
    processes: int,
    cpu_percent: float,
    interval_cpu: Sequence[float | None] = (),
    runnable_percent: float | None = None,
    interval_runnable: Sequence[float | None] = (),
    clock_resolution_ns: float | None = None,
) -> SelfCheck:
    """Judge one run. CPU figures are percent of one core; ``processes`` generator processes
    may use one core each; ``clock_resolution_ns`` is the measuring clock's (None: unknown)."""
    limit = 100 * SATURATED_CPU_SHARE * processes
    cores = f"{processes} generator process{'es' if processes != 1 else ''}, one core each"
    reasons = []
    cpu = busiest(cpu_percent, interval_cpu) or 0.0
    if cpu >= limit:
        where = "over the run" if cpu <= cpu_percent else f"in its busiest {CPU_WINDOW_S} s"
        reasons.append(
            f"generator CPU {_percent(cpu)} {where} (bound {_percent(limit)}: {cores}): the "
            "generator, not the target, set the pace"
        )
    runnable = busiest(runnable_percent, interval_runnable)
    if runnable is not None and runnable >= limit and cpu < limit:
        reasons.append(
            f"the generator's loop was runnable {_percent(runnable)} of the time but ran only "
            f"{_percent(cpu)} (bound {_percent(limit)}): other processes on this machine "
            "kept it from the CPU"
        )

    lag_ms: float | None = None
    lag_limit_ms: float | None = None
    unsent_fraction: float | None = None
    waited_fraction: float | None = None
    lag = summary.schedule_lag_us
    if lag is not None and summary.unsent is not None:
        scheduled = lag.count + summary.unsent
        unsent_fraction = summary.unsent / scheduled if scheduled else 0.0
        waited = summary.waited_for_connection or 0
        waited_fraction = waited / scheduled if scheduled else 0.0
        lag_ms = None if lag.p99 is None else lag.p99 / 1000
        raw_p99_ms = (summary.latency_us.p99 or 0.0) / 1000
        lag_limit_ms = max(SCHEDULE_LAG_P99_FLOOR_MS, raw_p99_ms)
        saturated = bool(reasons)
        if saturated:
            cause = "; the generator was saturated (above)"
        elif summary.errors and summary.requests == 0:
            cause = f"; no connection could be used (errors: {_errors(summary)})"
        elif waited_fraction > WAITED_CAUSE:
            cause = (
                f"; {waited_fraction:.1%} of the scheduled requests waited for a free "
                "connection (raise load.connections, or the target is slower than the rate "
                "allows)"
            )
        else:
            cause = "; the generator's loop could not send them on time"
        missed = []
        if lag_ms is not None and lag_ms > lag_limit_ms:
            missed.append(
                f"requests left {lag_ms:,.1f} ms late at p99 (bound {lag_limit_ms:,.1f} ms: "
                f"{SCHEDULE_LAG_P99_FLOOR_MS:g} ms or the target's own p99, the larger)"
            )
        if unsent_fraction > UNSENT_LIMIT:
            missed.append(
                f"{summary.unsent:,} of {scheduled:,} scheduled requests "
                f"({unsent_fraction:.1%}) were never sent (bound {UNSENT_LIMIT:.0%})"
            )
        if missed:
            reasons.append(f"open-model schedule not kept: {' and '.join(missed)}{cause}")
    if clock_resolution_ns is not None and clock_resolution_ns > CLOCK_LIMIT_NS:
        reasons.append(
            f"latency is invalid: the clock it was timed with ticks every "
            f"{clock_resolution_ns / 1000:,.1f} us (bound {CLOCK_LIMIT_NS / 1000:g} us), so a "
            "short request reads as 0 or as one whole tick"
        )
    return SelfCheck(
        valid=not reasons,
        reasons=reasons,
        cpu_percent=round(cpu, 1),
        cpu_limit_percent=round(limit, 1),
        runnable_percent=None if runnable is None else round(runnable, 1),
        schedule_lag_p99_ms=None if lag_ms is None else round(lag_ms, 3),
        schedule_lag_limit_ms=None if lag_limit_ms is None else round(lag_limit_ms, 3),
        unsent_fraction=None if unsent_fraction is None else round(unsent_fraction, 6),
        waited_fraction=None if waited_fraction is None else round(waited_fraction, 6),
        clock_resolution_ns=clock_resolution_ns,
    )


def _errors(summary: Summary) -> str:
    return ", ".join(f"{kind} {count:,}" for kind, count in summary.errors.items())
