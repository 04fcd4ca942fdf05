"""Merging shards' results interval by interval: each merged interval holds exactly what
one histogram fed every shard's values of that interval would hold (latency, and in the
open model the corrected latency), and its counts are the shards' sums.

The shards here are RunResults with chosen latencies (no processes), so every value is
known; ``tests/run/test_processes.py`` checks the same on shards that really ran.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from loadgen.config.scenario import parse_scenario
from loadgen.result.model import Interval, LatencySummary
from loadgen.run.merge import merge_intervals, merge_results
from loadgen.stats.histogram import HdrHistogram
from tests.report.builders import make_result

SHARDS = 3
INTERVALS = 4


def _histogram(values_ns: np.ndarray) -> HdrHistogram:
    histogram = HdrHistogram()
    histogram.record_many(values_ns)
    return histogram


def _values(shard: int, index: int, corrected: bool) -> np.ndarray:
    """Latencies unlike any other shard's or interval's: each shard and interval has its
    own range and count, so a merge that drops or repeats one shows in every statistic."""
    rng = np.random.default_rng(100 * shard + 10 * index + corrected)
    low_us = 100 * (1 + shard) * (1 + index) + (5000 if corrected else 0)
    count = 50 + 17 * shard + 5 * index
    return (rng.uniform(low_us, 3 * low_us, count) * 1000).astype(np.int64)


def _interval(shard: int, index: int, duration_s: float = 1.0) -> Interval:
    latency = _histogram(_values(shard, index, corrected=False))
    corrected = _histogram(_values(shard, index, corrected=True))
    return Interval(
        index=index,
        start_s=float(index),
        duration_s=duration_s,
        requests=latency.total_count,
        errors={"timeout": shard} if shard else {},
        bytes_sent=64 * latency.total_count,
        bytes_received=64 * latency.total_count,
        latency=latency.to_dict(),
        latency_corrected=corrected.to_dict(),
        connections=10 + shard,
        cpu_percent=10.0 * (shard + 1),
    )


def _shard_intervals(shard: int) -> list[Interval]:
    # The last shard ended a little early: its last interval is short and one is missing.
    if shard == SHARDS - 1:
        return [_interval(shard, i) for i in range(INTERVALS - 2)] + [
            _interval(shard, INTERVALS - 2, duration_s=0.4)
        ]
    return [_interval(shard, i) for i in range(INTERVALS)]


def test_every_merged_interval_holds_every_shards_values() -> None:
    parts = [_shard_intervals(shard) for shard in range(SHARDS)]
    merged = merge_intervals(parts)
    assert [i.index for i in merged] == list(range(INTERVALS))
    for interval in merged:
        shards = [s for s in range(SHARDS) if interval.index < len(parts[s])]
        fed = _histogram(np.concatenate([_values(s, interval.index, False) for s in shards]))
        fed_corrected = _histogram(
            np.concatenate([_values(s, interval.index, True) for s in shards])
        )
        latency = HdrHistogram.from_dict(interval.latency)
        assert latency == fed, interval.index
        assert LatencySummary.from_histogram(latency) == LatencySummary.from_histogram(fed)
        assert interval.latency_corrected is not None
        assert HdrHistogram.from_dict(interval.latency_corrected) == fed_corrected
        assert interval.requests == fed.total_count
        assert interval.bytes_received == 64 * fed.total_count
        assert interval.errors == ({"timeout": sum(shards)} if sum(shards) else {})
        assert interval.connections == sum(10 + s for s in shards)
        assert interval.cpu_percent == sum(10.0 * (s + 1) for s in shards)
        # A shard's short last interval lasts as long as the longest one of that index.
        assert interval.duration_s == 1.0


def test_a_merged_result_keeps_per_interval_histograms_of_every_shard() -> None:
    scenario = parse_scenario("name: m\ntarget: 127.0.0.1:9\nconnections: 30\nduration: 4s\n")
    parts = []
    for shard in range(SHARDS):
        intervals = _shard_intervals(shard)
        whole = HdrHistogram()
        for interval in intervals:
            whole.merge(HdrHistogram.from_dict(interval.latency))
        base = make_result(connections=10)
        parts.append(
            replace(
                base,
                intervals=intervals,
                histograms={**base.histograms, "latency": whole.to_dict()},
                summary=replace(base.summary, requests=whole.total_count),
            )
        )
    merged = merge_results(parts, scenario)
    assert len(merged.intervals) == INTERVALS
    total = HdrHistogram()
    for interval in merged.intervals:
        shards = [s for s in range(SHARDS) if interval.index < len(parts[s].intervals)]
        fed = _histogram(np.concatenate([_values(s, interval.index, False) for s in shards]))
        assert HdrHistogram.from_dict(interval.latency) == fed, interval.index
        total.merge(fed)
    # The intervals add up to the whole run's histogram, which is every shard's.
    assert total == merged.histogram("latency")
    assert merged.summary.requests == sum(i.requests for i in merged.intervals)
