"""Results with controlled numbers: real RunResults whose histograms hold chosen latencies."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from loadgen.config.thresholds import ThresholdVerdict
from loadgen.report.loading import LoadedRun, from_result
from loadgen.result.model import Environment, Generator, LatencySummary, RunResult, Summary
from loadgen.result.stop import StopKind, StopReason
from loadgen.stats.histogram import HdrHistogram

#: 2,000 latencies spread evenly over 100..1,000 µs: scaling them scales every percentile.
BASE_LATENCY_US = np.linspace(100.0, 1000.0, 2000)


def make_result(
    scale: float = 1.0,
    *,
    throughput_rps: float = 10_000.0,
    errors: dict[str, int] | None = None,
    name: str = "bench",
    connections: int = 10,
    requests: int | None = None,
    partial: bool = False,
    thresholds: tuple[ThresholdVerdict, ...] = (),
) -> RunResult:
    """A run whose latencies are ``BASE_LATENCY_US * scale`` (``requests=0``: none at all)."""
    histogram = HdrHistogram()
    latency_ns = np.round(BASE_LATENCY_US * scale * 1000).astype(np.int64)
    if requests != 0:
        histogram.record_many(latency_ns)
    count = histogram.total_count
    summary = Summary(
        requests=count,
        errors=dict(errors or {}),
        duration_s=count / throughput_rps if throughput_rps else 1.0,
        throughput_rps=throughput_rps if count else 0.0,
        latency_us=LatencySummary.from_histogram(histogram),
        connect_latency_us=LatencySummary.from_histogram(HdrHistogram()),
        connections=connections,
        connects=connections,
        bytes_sent=64 * count,
        bytes_received=64 * count,
        in_flight_at_end=0,
    )
    return RunResult(
        scenario={"name": name, "target": "builtin:echo", "connections": connections},
        environment=Environment(
            backend="epoll",
            recv_mode="buffered",
            os="Linux",
            python="3.11",
            loadgen_version="0.1.0",
            processes=1,
            cpu_count=2,
            hostname="test",
        ),
        summary=summary,
        generator=Generator(cpu_s=0.5, cpu_percent=50.0, loop_iterations=100, max_loop_lag_ms=1.0),
        started_at="2024-05-01T12:00:00.000Z",
        partial=partial,
        stop=StopReason(StopKind.INTERRUPTED, "SIGINT") if partial else StopReason.completed(),
        histograms={"latency": histogram.to_dict(), "connect_latency": HdrHistogram().to_dict()},
        thresholds=list(thresholds),
    )


def loaded(result: RunResult, label: str) -> LoadedRun:
    return from_result(result, label=label, source=f"{label}.json")


def write_runs(folder: Path, prefix: str, results: list[RunResult]) -> list[str]:
    """Write results as ``PREFIX-N.json`` files; their paths as strings, for the CLI."""
    paths = []
    for index, result in enumerate(results):
        paths.append(str(result.write(folder / f"{prefix}-{index}.json")))
    return paths
