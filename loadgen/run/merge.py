"""Merge the RunResults of a run's shards into the run's one result, exactly.

Shards start at one shared instant, so their intervals align by index. Merging:

* histograms add (same layout everywhere), and every latency summary is recomputed from the
  merged histograms (never an average of percentiles);
* requests, failed requests, errors by kind, bytes, connects, open connections and the
  open model's ``waited_for_connection``/``unsent`` add; ``duration_s`` is the longest
  shard's (all started together), and throughput is recomputed over it;
* a request set's breakdown adds by request name: each name's histograms add and its
  percentiles are computed from them, its requests, failed requests and errors add;
* TLS handshakes: the ``tls_handshake`` histograms add (the summary is computed from the
  sum) and resumed handshakes add; the reasons kept per error kind add by reason;
* intervals with the same index add (their histograms too); a shard's short last interval
  lasts as long as the longest one of that index;
* the generator's CPU seconds and loop iterations add (so ``cpu_percent`` is of one core
  and can pass 100 with several processes); the worst loop lag is kept;
* memory samples (one a second per shard) are merged by the second they were taken in:
  the kernel's system-wide counters (SUnreclaim, slab, TCP buffer pages, slab caches,
  Windows' system pool and pool tags) are taken from one shard per machine, since every
  shard of a machine read the same kernel, and add across machines (a distributed run's
  hosts);
  per-process counters (``vm_*``, Windows' process pool quotas) and the bytes each engine
  had posted add, each shard at its latest recent sample (``merge_memory``);
* thresholds are evaluated again on the merged summary, and the generator's self-check
  (``loadgen.run.selfcheck``) again on the merged numbers, against every process's core; a
  process that was its own bottleneck makes the whole run invalid (``merge_self_checks``).

A part may itself be a merged result (a distributed run merges each host's merged result):
its ``environment.processes`` counts its processes, and ``labels`` names the parts in the
self-check's reasons ("host 2 of 3: ..." rather than "process 2 of 3: ...").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from loadgen.config.scenario import Scenario
from loadgen.result.model import (
    Environment,
    Generator,
    Interval,
    LatencySummary,
    RequestName,
    RunResult,
    SelfCheck,
    Summary,
)
from loadgen.result.stop import StopKind, StopReason
from loadgen.run.selfcheck import check as check_self
from loadgen.stats.histogram import HdrHistogram

#: Memory sample fields that belong to one process (they add across shards); every other
#: numeric field is a system-wide reading taken from one shard.
PER_PROCESS_MEMORY = frozenset(
    {
        "vm_pin_bytes",
        "vm_lck_bytes",
        "vm_rss_bytes",
        "engine_posted_recv_bytes",
        "process_nonpaged_bytes",
        "process_peak_nonpaged_bytes",
        "process_paged_bytes",
        "process_peak_paged_bytes",
    }
)


def add_counts(counters: Sequence[Mapping[str, int]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for counter in counters:
        for kind, count in counter.items():
            total[kind] = total.get(kind, 0) + count
    return dict(sorted(total.items()))


def add_per_kind(
    parts: Sequence[Mapping[str, Mapping[str, int]]],
) -> dict[str, dict[str, int]]:
    """Counts kept per error kind (``Summary.error_codes``, ``Summary.error_reasons``) of
    several parts added, kind by kind and key by key."""
    kinds = sorted({kind for part in parts for kind in part})
    return {kind: add_counts([part.get(kind, {}) for part in parts]) for kind in kinds}


def add_histograms(encoded: Sequence[Mapping[str, Any] | None]) -> HdrHistogram | None:
    """The sum of ``to_dict()`` histograms (None entries skipped; None if all are)."""
    merged: HdrHistogram | None = None
    for data in encoded:
        if data is None:
            continue
        histogram = HdrHistogram.from_dict(dict(data))
        if merged is None:
            merged = histogram
        else:
            merged.merge(histogram)
    return merged


def merge_intervals(parts: Sequence[Sequence[Interval]]) -> list[Interval]:
    """Intervals of every shard added by index (the shards share their start)."""
    by_index: dict[int, list[Interval]] = {}
    for intervals in parts:
        for interval in intervals:
            by_index.setdefault(interval.index, []).append(interval)
    merged: list[Interval] = []
    for index in sorted(by_index):
        group = by_index[index]
        latency = add_histograms([i.latency for i in group])
        assert latency is not None
        corrected = add_histograms([i.latency_corrected for i in group])
        connections = [i.connections for i in group if i.connections is not None]
        cpu = [i.cpu_percent for i in group if i.cpu_percent is not None]
        merged.append(
            Interval(
                index=index,
                start_s=group[0].start_s,
                duration_s=max(i.duration_s for i in group),
                requests=sum(i.requests for i in group),
                errors=add_counts([i.errors for i in group]),
                bytes_sent=sum(i.bytes_sent for i in group),
                bytes_received=sum(i.bytes_received for i in group),
                latency=latency.to_dict(),
                latency_corrected=None if corrected is None else corrected.to_dict(),
                connections=sum(connections) if connections else None,
                cpu_percent=round(sum(cpu), 1) if cpu else None,  # % of one core, added
                failed=sum(i.failed for i in group),
            )
        )
    return merged


def merge_by_name(parts: Sequence[Sequence[RequestName]]) -> list[RequestName]:
    """Each request name's numbers added over the parts, in the order names first appear."""
    by_name: dict[str, list[RequestName]] = {}
    for named in parts:
        for item in named:
            by_name.setdefault(item.name, []).append(item)
    merged = []
    for name, group in by_name.items():
        latency = add_histograms([item.histograms.get("latency") for item in group])
        corrected = add_histograms([item.histograms.get("latency_corrected") for item in group])
        histograms = {"latency": _or_empty(latency).to_dict()}
        if corrected is not None:
            histograms["latency_corrected"] = corrected.to_dict()
        merged.append(
            RequestName(
                name=name,
                requests=sum(item.requests for item in group),
                failed=sum(item.failed for item in group),
                errors=add_counts([item.errors for item in group]),
                latency_us=_latency(latency),
                latency_corrected_us=None if corrected is None else _latency(corrected),
                histograms=histograms,
            )
        )
    return merged


def _or_empty(histogram: HdrHistogram | None) -> HdrHistogram:
    return histogram if histogram is not None else HdrHistogram()


#: A process's memory sample stands for it this long (seconds) in a merged sample taken
#: later: shards sample about once a second but a busy loop takes some late or skips one.
MEMORY_SAMPLE_HOLD_S = 2.5


def merge_memory(
    parts: Sequence[Sequence[Mapping[str, Any]]], machines: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """Memory samples of every shard merged on one time line (see the module docstring).

    Shards sample about once a second from the shared start, each on its own clock, and a
    busy one takes a sample late or skips one, so samples are grouped by the whole second
    of their ``t_s``. A merged sample takes ``t_s`` from one shard's sample in that second;
    per-process readings add over every shard, each at its latest sample not older than
    ``MEMORY_SAMPLE_HOLD_S``; system-wide readings come from one shard per machine
    (``machines[i]`` names part i's; by default all parts share one) and add over the
    machines, each at its latest recent sample. When some shard (or machine) has none that
    recent (not yet started, ended, or dead), the sum is None, never a sum of some of them,
    which would read as a drop. ``processes`` counts the shards that sampled in that second.
    """
    machines = list(machines) if machines is not None else [""] * len(parts)
    first_of_machine = [machines.index(machine) for machine in dict.fromkeys(machines)]
    by_second: dict[int, list[Mapping[str, Any]]] = {}
    for samples in parts:
        for sample in samples:
            by_second.setdefault(round(float(sample.get("t_s", 0.0))), []).append(sample)
    merged: list[dict[str, Any]] = []
    for second in sorted(by_second):
        record = dict(by_second[second][0])
        now = float(record.get("t_s", second))
        latest = [_latest_sample(samples, now) for samples in parts]
        for key in PER_PROCESS_MEMORY & record.keys():
            record[key] = _sum_all([latest[i] for i in range(len(parts))], key)
        if len(first_of_machine) > 1:
            for key, value in list(record.items()):
                if key in PER_PROCESS_MEMORY or key == "t_s" or not isinstance(value, int):
                    continue
                record[key] = _sum_all([latest[i] for i in first_of_machine], key)
        record["processes"] = len(by_second[second])
        merged.append(record)
    return merged


def _sum_all(samples: Sequence[Mapping[str, Any] | None], key: str) -> int | None:
    """The sum of ``key`` over ``samples``; None when any of them lacks it."""
    values = [None if sample is None else sample.get(key) for sample in samples]
    numbers = [v for v in values if isinstance(v, int) and not isinstance(v, bool)]
    return sum(numbers) if len(numbers) == len(samples) else None


def _latest_sample(samples: Sequence[Mapping[str, Any]], now_s: float) -> Mapping[str, Any] | None:
    """The last of ``samples`` taken by ``now_s`` (with a little slack for clock jitter
    between shards) and not older than ``MEMORY_SAMPLE_HOLD_S``."""
    found = None
    for sample in samples:
        t_s = float(sample.get("t_s", 0.0))
        if t_s > now_s + 0.5:
            break
        found = sample if now_s - t_s <= MEMORY_SAMPLE_HOLD_S else None
    return found


def _latency(histogram: HdrHistogram | None) -> LatencySummary:
    return LatencySummary.from_histogram(histogram or HdrHistogram())


def _optional_sum(values: Sequence[int | None]) -> int | None:
    present = [v for v in values if v is not None]
    return sum(present) if present else None


def merge_results(
    parts: Sequence[RunResult],
    scenario: Scenario,
    *,
    stop: StopReason | None = None,
    processes: int | None = None,
    labels: Sequence[str] | None = None,
    machines: Sequence[str] | None = None,
) -> RunResult:
    """One result for the whole ``scenario`` from its shards' results.

    ``stop`` overrides the shards' (a coordinator knows of a dead shard or a Ctrl-C); by
    default the parts that failed give it (each named as in the self-check), else the first
    part that did not complete. ``processes`` is what the
    environment records (default: the parts' processes added). ``labels`` name the parts in
    the self-check's reasons (default "process N of M"); ``machines`` tell which parts ran
    on one machine (memory; default: all on this one).
    """
    if not parts:
        raise ValueError("nothing to merge: no shard produced a result")
    histograms: dict[str, dict[str, Any]] = {}
    merged_histograms: dict[str, HdrHistogram] = {}
    for name in dict.fromkeys(name for part in parts for name in part.histograms):
        histogram = add_histograms([part.histograms.get(name) for part in parts])
        assert histogram is not None
        merged_histograms[name] = histogram
        histograms[name] = histogram.to_dict()
    open_model = "latency_corrected" in merged_histograms
    duration_s = max(part.summary.duration_s for part in parts)
    requests = merged_histograms["latency"].total_count
    summaries = [part.summary for part in parts]
    streams = [s.throughput_bytes_per_s for s in summaries if s.throughput_bytes_per_s is not None]
    bytes_sent = sum(s.bytes_sent for s in summaries)
    bytes_received = sum(s.bytes_received for s in summaries)
    summary = Summary(
        requests=requests,
        errors=add_counts([s.errors for s in summaries]),
        error_codes=add_per_kind([s.error_codes for s in summaries]),
        duration_s=duration_s,
        throughput_rps=round(requests / duration_s, 3) if duration_s > 0 else 0.0,
        latency_us=_latency(merged_histograms["latency"]),
        connect_latency_us=_latency(merged_histograms.get("connect_latency")),
        connections=sum(s.connections for s in summaries),
        connects=sum(s.connects for s in summaries),
        bytes_sent=bytes_sent,
        bytes_received=bytes_received,
        throughput_bytes_per_s=(
            round((bytes_sent + bytes_received) / duration_s, 1)
            if streams and duration_s > 0
            else None
        ),
        in_flight_at_end=sum(s.in_flight_at_end for s in summaries),
        latency_corrected_us=(
            _latency(merged_histograms["latency_corrected"]) if open_model else None
        ),
        schedule_lag_us=_latency(merged_histograms.get("schedule_lag")) if open_model else None,
        waited_for_connection=_optional_sum([s.waited_for_connection for s in summaries]),
        unsent=_optional_sum([s.unsent for s in summaries]),
        tls_handshake_us=(
            _latency(merged_histograms["tls_handshake"])
            if "tls_handshake" in merged_histograms
            else None
        ),
        tls_resumed=_optional_sum([s.tls_resumed for s in summaries]),
        error_reasons=add_per_kind([s.error_reasons for s in summaries]),
        failed=sum(s.failed for s in summaries),
    )
    cpu_s = sum(part.generator.cpu_s for part in parts)
    generator = Generator(
        cpu_s=round(cpu_s, 3),
        cpu_percent=round(100 * cpu_s / duration_s, 1) if duration_s > 0 else 0.0,
        loop_iterations=sum(part.generator.loop_iterations for part in parts),
        max_loop_lag_ms=max(part.generator.max_loop_lag_ms for part in parts),
        ring_enobufs=_optional_sum([part.generator.ring_enobufs for part in parts]),
        start_late_ms=max(
            (p.generator.start_late_ms for p in parts if p.generator.start_late_ms is not None),
            default=None,
        ),
    )
    intervals = merge_intervals([part.intervals for part in parts])
    names = labels or [f"process {n} of {len(parts)}" for n in range(1, len(parts) + 1)]
    if stop is None:
        failed = [
            part.stop.labelled(name)
            for name, part in zip(names, parts, strict=True)
            if part.stop.kind is StopKind.FAILED
        ]
        stop = (
            StopReason.failed_parts(failed)
            if failed
            else next((p.stop for p in parts if not p.stop.is_completed), StopReason.completed())
        )
    total_processes = sum(part.environment.processes for part in parts)
    environment: Environment = replace(
        parts[0].environment, processes=total_processes if processes is None else processes
    )
    return RunResult(
        scenario=scenario.to_dict(),
        environment=environment,
        summary=summary,
        generator=generator,
        started_at=min(part.started_at for part in parts),
        partial=not stop.is_completed or any(part.partial for part in parts),
        stop=stop,
        histograms=histograms,
        intervals=intervals,
        memory=merge_memory([part.memory for part in parts], machines),
        thresholds=[
            threshold.check(summary, merged_histograms) for threshold in scenario.thresholds
        ],
        self_check=merge_self_checks(parts, summary, generator, intervals, labels),
        requests_by_name=merge_by_name([part.requests_by_name for part in parts]),
    )


def merge_self_checks(
    parts: Sequence[RunResult],
    summary: Summary,
    generator: Generator,
    intervals: list[Interval],
    labels: Sequence[str] | None = None,
) -> SelfCheck | None:
    """The self-check of the merged run: the merged numbers judged against all the
    processes' cores (CPU adds up, the bound is 90% of one core per process), and invalid as
    well when any one process was its own bottleneck (one saturated process slows its share
    of the connections even when the others idle): that process's reasons are added, named.
    The runnable share is per loop thread, so the merged one is the largest of the
    processes'. None when no part was checked (results older than schema 2)."""
    checks = [part.self_check for part in parts]
    if all(check is None for check in checks):
        return None
    full_s = max((i.duration_s for i in intervals), default=0.0)
    merged = check_self(
        summary,
        processes=sum(part.environment.processes for part in parts),
        cpu_percent=generator.cpu_percent,
        interval_cpu=[i.cpu_percent for i in intervals if i.duration_s >= full_s * 0.999],
        clock_resolution_ns=max(
            (c.clock_resolution_ns for c in checks if c and c.clock_resolution_ns is not None),
            default=None,
        ),
    )
    reasons = list(merged.reasons)
    names = labels or [f"process {n} of {len(parts)}" for n in range(1, len(parts) + 1)]
    for name, check in zip(names, checks, strict=True):
        if check is not None and not check.valid:
            reasons += [f"{name}: {r}" for r in check.reasons if r not in merged.reasons]
    runnable = [
        c.runnable_percent for c in checks if c is not None and c.runnable_percent is not None
    ]
    return replace(
        merged,
        valid=not reasons,
        reasons=reasons,
        runnable_percent=max(runnable) if runnable else None,
    )


def result_from_intervals(
    intervals: Sequence[Interval], like: RunResult, stop: StopReason
) -> RunResult:
    """What a shard that died had reported (its closed intervals) as a RunResult to merge.

    Its connect latency, schedule lag, memory and generator numbers died with it: those
    come out empty or zero; requests, errors, bytes and latency are the intervals' sums.
    """
    latency = add_histograms([i.latency for i in intervals]) or HdrHistogram()
    corrected = add_histograms([i.latency_corrected for i in intervals])
    duration_s = sum(i.duration_s for i in intervals)
    histograms = {"latency": latency.to_dict(), "connect_latency": HdrHistogram().to_dict()}
    open_model = "latency_corrected" in like.histograms
    if open_model:
        histograms["latency_corrected"] = (corrected or HdrHistogram()).to_dict()
        histograms["schedule_lag"] = HdrHistogram().to_dict()
    empty = LatencySummary.from_histogram(HdrHistogram())
    summary = Summary(
        requests=latency.total_count,
        errors=add_counts([i.errors for i in intervals]),
        duration_s=round(duration_s, 6),
        throughput_rps=0.0,
        latency_us=LatencySummary.from_histogram(latency),
        connect_latency_us=empty,
        connections=0,
        connects=0,
        bytes_sent=sum(i.bytes_sent for i in intervals),
        bytes_received=sum(i.bytes_received for i in intervals),
        in_flight_at_end=0,
        failed=sum(i.failed for i in intervals),
    )
    return replace(
        like,
        summary=summary,
        generator=Generator(cpu_s=0.0, cpu_percent=0.0, loop_iterations=0, max_loop_lag_ms=0.0),
        partial=True,
        stop=stop,
        histograms=histograms,
        intervals=list(intervals),
        memory=[],
        thresholds=[],
        self_check=None,  # it did not live to check itself
        requests_by_name=[],  # a breakdown is only in a whole result (not in intervals)
        environment=replace(like.environment, processes=1),
    )
