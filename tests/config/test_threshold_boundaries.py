"""Thresholds judged on a summary, at their exact boundaries.

Each value below sits exactly on, just under or just over its limit (counts are integers,
and ``5000 / 1e6 == parse_duration_s("5ms")`` holds in floating point), so ``<`` and ``<=``
(and ``>`` and ``>=``) give different verdicts on the boundary.
"""

from __future__ import annotations

import pytest

from loadgen.config.thresholds import Threshold
from loadgen.result.model import LatencySummary, Summary
from loadgen.stats.histogram import HdrHistogram

EMPTY = LatencySummary.from_histogram(HdrHistogram())


def latency(p99_us: float) -> LatencySummary:
    return LatencySummary(
        count=100, min=1.0, mean=p99_us / 2, p50=p99_us / 2, p90=p99_us / 2, p99=p99_us,
        p99_9=p99_us, max=p99_us,
    )  # fmt: skip


def summary(
    *,
    requests: int = 100,
    errors: dict[str, int] | None = None,
    throughput_rps: float = 1000.0,
    p99_us: float = 5000.0,
    corrected_p99_us: float | None = None,
) -> Summary:
    return Summary(
        requests=requests,
        errors=dict(errors or {}),
        duration_s=1.0,
        throughput_rps=throughput_rps,
        latency_us=latency(p99_us),
        connect_latency_us=latency(250.0),
        connections=10,
        connects=10,
        bytes_sent=64 * requests,
        bytes_received=64 * requests,
        in_flight_at_end=0,
        latency_corrected_us=None if corrected_p99_us is None else latency(corrected_p99_us),
    )


def verdict(expression: str, of: Summary) -> bool:
    return Threshold.parse(expression).check(of).passed


@pytest.mark.parametrize(
    ("requests", "expected"),
    [
        (99, {"<": True, "<=": True, ">": False, ">=": False}),
        (100, {"<": False, "<=": True, ">": False, ">=": True}),  # on the boundary
        (101, {"<": False, "<=": False, ">": True, ">=": True}),
    ],
)
def test_each_operator_at_and_around_its_boundary(requests: int, expected: dict[str, bool]) -> None:
    of = summary(requests=requests)
    assert {op: verdict(f"requests {op} 100", of) for op in expected} == expected


@pytest.mark.parametrize(
    ("op", "on_boundary"), [("<", False), ("<=", True), (">", False), (">=", True)]
)
def test_a_latency_on_its_boundary(op: str, on_boundary: bool) -> None:
    assert verdict(f"p99 {op} 5ms", summary(p99_us=5000.0)) is on_boundary
    assert verdict(f"p99 {op} 5ms", summary(p99_us=4999.0)) is op.startswith("<")
    assert verdict(f"p99 {op} 5ms", summary(p99_us=5001.0)) is op.startswith(">")


def test_a_throughput_on_its_boundary() -> None:
    assert not verdict("throughput > 1k/s", summary(throughput_rps=1000.0))
    assert verdict("throughput >= 1k/s", summary(throughput_rps=1000.0))
    assert verdict("throughput > 1k/s", summary(throughput_rps=1000.5))


def test_error_rate_counts_the_errors_of_every_kind() -> None:
    # 3 errors of 300 attempts (297 answered): exactly 1%.
    of = summary(requests=297, errors={"timeout": 1, "refused": 2})
    threshold = Threshold.parse("error_rate < 1%")
    assert threshold.observe(of) == pytest.approx(0.01, abs=1e-15)
    assert not threshold.check(of).passed  # 1% is not below 1%
    assert verdict("error_rate <= 1%", of)
    assert not verdict("error_rate < 0.9%", of)
    assert verdict("error_rate < 1.1%", of)
    assert verdict("error_rate > 0.5%", of)
    assert verdict("errors >= 3", of) and not verdict("errors > 3", of)


def test_error_rate_without_answers_is_all_errors_and_without_attempts_none() -> None:
    refused = summary(requests=0, errors={"refused": 40})
    assert Threshold.parse("error_rate < 50%").observe(refused) == 1.0
    assert not verdict("error_rate < 50%", refused)
    clean = summary(requests=500)
    assert Threshold.parse("error_rate < 1%").observe(clean) == 0.0
    assert verdict("error_rate < 1%", clean) and not verdict("error_rate > 0%", clean)


def test_open_model_latency_is_the_corrected_one_and_raw_is_asked_for_by_name() -> None:
    of = summary(p99_us=2000.0, corrected_p99_us=8000.0)
    assert Threshold.parse("p99 < 5ms").observe(of) == pytest.approx(0.008)
    assert not verdict("p99 < 5ms", of)
    assert verdict("raw_p99 < 5ms", of)
    assert verdict("connect_p99 <= 250us", of) and not verdict("connect_p99 < 250us", of)


def test_a_metric_with_nothing_measured_fails_whatever_the_operator() -> None:
    nothing = summary(requests=0)
    nothing = Summary(**{**nothing.__dict__, "latency_us": EMPTY})
    for op in ("<", "<=", ">", ">="):
        result = Threshold.parse(f"p99 {op} 1s").check(nothing)
        assert result.value is None and not result.passed
