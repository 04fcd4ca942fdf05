"""Thresholds people write: k6's names (avg, med, p(95)), any percentile, units required."""

from __future__ import annotations

import pytest

from loadgen.config.thresholds import Threshold
from loadgen.result.model import LatencySummary, Summary
from loadgen.stats.histogram import HdrHistogram


def _run(values_ns: list[int]) -> tuple[Summary, dict[str, HdrHistogram]]:
    histogram = HdrHistogram()
    histogram.record_many(values_ns)
    empty = LatencySummary.from_histogram(HdrHistogram())
    summary = Summary(
        requests=histogram.total_count,
        errors={},
        duration_s=1.0,
        throughput_rps=float(histogram.total_count),
        latency_us=LatencySummary.from_histogram(histogram),
        connect_latency_us=empty,
        connections=1,
        connects=1,
        bytes_sent=0,
        bytes_received=0,
        in_flight_at_end=0,
    )
    return summary, {"latency": histogram}


@pytest.mark.parametrize(
    ("expression", "metric"),
    [
        ("p95 < 5ms", "p95"),
        ("p75 < 5ms", "p75"),
        ("p99.99 < 5ms", "p99_99"),
        ("p(95) < 5ms", "p95"),
        ("avg < 5ms", "mean"),
        ("med < 5ms", "p50"),
        ("raw_p95 < 5ms", "raw_p95"),
        ("connect_avg < 5ms", "connect_mean"),
        ("p99.9 < 5ms", "p99_9"),
        ("p100 < 5ms", "p100"),
    ],
)
def test_names_people_write(expression: str, metric: str) -> None:
    threshold = Threshold.parse(expression)
    assert threshold.metric == metric and threshold.limit == 0.005


def test_any_percentile_is_read_from_the_histogram() -> None:
    # 1..1000 ms, one each: p95 is 950 ms, p75 750 ms, avg about 500 ms (HDR: 3 digits).
    summary, histograms = _run([ms * 1_000_000 for ms in range(1, 1001)])
    observed = {
        text: Threshold.parse(text).observe(summary, histograms)
        for text in ("p95 < 1s", "p75 < 1s", "p99.5 < 1s", "avg < 1s", "p(95) < 1s")
    }
    assert observed["p95 < 1s"] == pytest.approx(0.950, rel=1e-3)
    assert observed["p(95) < 1s"] == observed["p95 < 1s"]
    assert observed["p75 < 1s"] == pytest.approx(0.750, rel=1e-3)
    assert observed["p99.5 < 1s"] == pytest.approx(0.995, rel=1e-3)
    assert observed["avg < 1s"] == pytest.approx(0.5005, rel=1e-3)
    assert Threshold.parse("p95 < 900ms").check(summary, histograms).passed is False
    assert Threshold.parse("p95 < 960ms").check(summary, histograms).passed is True
    # Without the histogram a percentile is not measured: a failed verdict, never a pass.
    verdict = Threshold.parse("p95 < 10s").check(summary)
    assert verdict.value is None and verdict.passed is False


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("p99 < 5", "p99: a duration needs a unit: write 5s or 5ms"),
        ("p0 < 5ms", "unknown metric 'p0'"),
        ("p101 < 5ms", "unknown metric 'p101'"),
        ("avgg < 5ms", "did you mean 'avg'"),
    ],
)
def test_bad_thresholds_say_why(expression: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Threshold.parse(expression)
