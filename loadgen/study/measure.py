"""One trial of the study: baseline, idle, traffic, after close, as numbers.

1. **baseline**: ``BASELINE_SAMPLES`` quiet samples before anything opens (median of each).
2. **the run** (``runner.run``, the plan's two-phase scenario): it samples memory once a
   second into ``RunResult.memory``. The idle window starts ``settle`` after the interval
   in which every connection was open and ends with the idle phase; the traffic window
   starts ``settle`` into the traffic phase. Each phase's value is the median of the
   samples in its window; throughput and latency come from the traffic window's intervals.
3. **after**: once the run has closed its sockets (and a built-in target has exited), the
   kernel counter is sampled until it is back within ``return_tolerance`` of the baseline
   or ``RETURN_TIMEOUT_S`` passed; a trial that stays above it says so (TIME_WAIT sockets
   and slab pages the allocator keeps cached are the usual rest).

Per-connection numbers are (phase - baseline) / connections. The counters are system-wide
and noisy (other processes allocate too), which is why the study repeats each cell.
"""

from __future__ import annotations

import ctypes
import gc
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from loadgen.config.plan import LoadPlan
from loadgen.config.scenario import Scenario
from loadgen.result.model import RunResult
from loadgen.run.limits import Fit
from loadgen.stats.histogram import HdrHistogram
from loadgen.stats.memory import sample_memory
from loadgen.study import metrics
from loadgen.study.plan import StudyPlan
from loadgen.study.result import Trial, Values

BASELINE_SAMPLES = 3
SAMPLE_GAP_S = 0.3
RETURN_TIMEOUT_S = 5.0
#: Kernel memory counts as returned within this share of the idle cost, or this many
#: bytes, whichever is larger (TIME_WAIT sockets and cached slab pages stay a while).
RETURN_SHARE = 0.25
RETURN_FLOOR_BYTES = 4 * 1024 * 1024

RunFunction = Callable[..., RunResult]
Sample = dict[str, Any]


def take_sample() -> Sample:
    """One sample as ``RunResult.memory`` holds them; no engine here, so nothing posted."""
    record: Sample = dict(sample_memory(0).as_dict())
    del record["engine_posted_bytes"]
    record["engine_posted_recv_bytes"] = 0
    return record


def medians(samples: Sequence[Mapping[str, Any]]) -> tuple[Values, dict[str, str]]:
    """Median of each metric over ``samples`` (None when a metric is missing in any)."""
    if not samples:
        return {}, {}
    read = [metrics.read(sample) for sample in samples]
    reasons: dict[str, str] = {}
    for _, why in read:
        reasons.update(why)
    values: Values = {}
    for name in read[0][0]:
        column = [value[name] for value, _ in read]
        present = [v for v in column if v is not None]
        values[name] = statistics.median(present) if len(present) == len(column) else None
    return values, reasons


def release_freed_memory() -> None:
    """Give the previous trial's freed memory back to the OS before a baseline.

    The allocator keeps freed blocks for reuse; without this the next trial's receive
    buffers would land in pages that are already resident and the RSS delta would miss them
    (measured: 1.3 KiB instead of 64 KiB per connection from the second trial on). glibc's
    ``malloc_trim(0)`` returns every free page (madvise), not only the top of the heap.
    """
    gc.collect()
    if sys.platform != "linux":
        return
    try:
        libc = ctypes.CDLL(None)
        trim = libc.malloc_trim
    except (OSError, AttributeError):  # not glibc (musl has no malloc_trim)
        return
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    trim(0)


def quiet_samples(count: int = BASELINE_SAMPLES, gap_s: float = SAMPLE_GAP_S) -> list[Sample]:
    release_freed_memory()
    samples = []
    for index in range(count):
        if index:
            time.sleep(gap_s)
        samples.append(take_sample())
    return samples


def per_connection(phase: Values, baseline: Values, connections: int) -> Values:
    out: Values = {}
    for name, value in phase.items():
        base = baseline.get(name)
        out[name] = None if value is None or base is None else (value - base) / connections
    return out


def all_open_s(result: RunResult, connections: int) -> float | None:
    """End of the first interval that closed with every connection open."""
    for interval in result.intervals:
        if interval.connections is not None and interval.connections >= connections:
            return interval.start_s + interval.duration_s
    return None


def in_window(samples: Iterable[Sample], start_s: float, end_s: float) -> list[Sample]:
    return [s for s in samples if start_s <= float(s["t_s"]) < end_s]


def traffic_numbers(
    result: RunResult, start_s: float
) -> tuple[int, float | None, float | None, float | None]:
    """(requests, requests/s, p50 us, p99 us) over the intervals from ``start_s`` on."""
    histogram = HdrHistogram()
    requests = 0
    seconds = 0.0
    for interval in result.intervals:
        if interval.start_s + 1e-6 >= start_s:
            histogram.merge(HdrHistogram.from_dict(interval.latency))
            requests += interval.requests
            seconds += interval.duration_s
    if seconds <= 0:
        return 0, None, None, None
    if histogram.total_count == 0:
        return requests, requests / seconds, None, None
    p50, p99 = histogram.percentiles([50.0, 99.0])
    return requests, round(requests / seconds, 3), p50 / 1000, p99 / 1000


def wait_for_return(
    baseline: Values, idle: Values, timeout_s: float = RETURN_TIMEOUT_S
) -> tuple[Sample, bool | None, float]:
    """Sample until kernel memory is back near ``baseline``: (last sample, returned, waited)."""
    started = time.monotonic()
    base, busy = baseline.get("kernel"), idle.get("kernel")
    tolerance: float = RETURN_FLOOR_BYTES
    if base is not None and busy is not None:
        tolerance = max(tolerance, RETURN_SHARE * abs(busy - base))
    while True:
        sample = take_sample()
        value = metrics.read(sample)[0].get("kernel")
        waited = time.monotonic() - started
        if value is None or base is None:
            return sample, None, waited
        if value - base <= tolerance:
            return sample, True, waited
        if waited >= timeout_s:
            return sample, False, waited
        time.sleep(0.5)


def run_trial(
    plan: StudyPlan,
    connections: int,
    mode: str,
    repeat: int,
    run: RunFunction,
    notice: Callable[[str], None] | None = None,
    fit: Fit | None = None,
) -> tuple[Trial, RunResult, dict[str, str]]:
    """Measure one cell once: (the trial, the run's own result, reasons per metric).

    ``fit`` (``limits.fit_run`` of this count) gives the process counts and any source
    addresses spread over; without it the trial runs in one process."""
    scenario: Scenario = plan.trial_scenario(connections, mode)
    processes = target_processes = 1
    if fit is not None:
        processes, target_processes = fit.processes, fit.target_processes
        scenario = scenario.model_copy(update={"source": fit.scenario.source})
    baseline_samples = quiet_samples()
    result = run(
        scenario,
        backend=plan.backend,
        notice=notice,
        processes=processes,
        target_processes=target_processes,
    )

    idle_phase, traffic_phase = LoadPlan.from_scenario(scenario).phases
    idle_end, run_end = idle_phase.end_s, traffic_phase.end_s
    notes: list[str] = []
    opened = all_open_s(result, connections)
    if opened is None:
        most = max((i.connections or 0 for i in result.intervals), default=0)
        notes.append(
            f"only {most:,} of {connections:,} connections were open at once: the idle "
            "numbers are per asked-for connection"
        )
        idle_start = plan.open_allowance_s(connections) + plan.settle_s
    else:
        idle_start = opened + plan.settle_s
    idle_window = in_window(result.memory, idle_start, idle_end)
    traffic_start = idle_end + plan.settle_s
    traffic_window = in_window(result.memory, traffic_start, run_end + 1.0)
    for name, window in (("idle", idle_window), ("traffic", traffic_window)):
        if not window:
            notes.append(
                f"no memory sample fell in the {name} window: lengthen --window "
                f"(the run samples once a second)"
            )

    baseline, reasons = medians(baseline_samples)
    idle, why_idle = medians(idle_window)
    traffic, why_traffic = medians(traffic_window)
    after_sample, returned, waited = wait_for_return(baseline, idle)
    after, why_after = medians([after_sample])
    for why in (why_idle, why_traffic, why_after):
        reasons.update(why)
    for values in (idle, traffic):
        for name in baseline:
            values.setdefault(name, None)
    if returned is False:
        residual = (after.get("kernel") or 0) - (baseline.get("kernel") or 0)
        notes.append(
            f"kernel memory stayed {residual / 1024 / 1024:.1f} MiB above the baseline "
            f"{waited:.1f} s after closing"
        )

    requests, rps, p50, p99 = traffic_numbers(result, traffic_start)
    errors = dict(result.summary.errors)
    if errors:
        codes = result.summary.error_codes  # the OS's own: 10055 is WSAENOBUFS
        notes.append(
            "errors: "
            + ", ".join(
                f"{k} {v:,}" + (f" (OS codes {', '.join(codes[k])})" if codes.get(k) else "")
                for k, v in sorted(errors.items())
            )
        )
    if not result.stop.is_completed:
        notes.append(f"the run stopped early: {result.stop_reason}")
    trial = Trial(
        connections=connections,
        mode=mode,
        repeat=repeat,
        baseline=baseline,
        idle=idle,
        traffic=traffic,
        after=after,
        per_connection={
            "idle": per_connection(idle, baseline, connections),
            "traffic": per_connection(traffic, baseline, connections),
            "after": per_connection(after, baseline, connections),
        },
        idle_samples=len(idle_window),
        traffic_samples=len(traffic_window),
        all_open_s=opened,
        returned=returned,
        return_wait_s=round(waited, 3),
        requests=requests,
        throughput_rps=rps,
        latency_p50_us=p50,
        latency_p99_us=p99,
        errors=errors,
        stop_reason=result.stop_reason,
        stop_kind=result.stop.kind,
        notes=notes,
    )
    return trial, result, reasons
