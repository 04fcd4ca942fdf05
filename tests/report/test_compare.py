"""Comparisons of runs with controlled numbers: verdicts, statistics, and their renderings."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import pytest

from loadgen.config.thresholds import ThresholdVerdict
from loadgen.report.compare import (
    ALPHA,
    Comparison,
    MetricComparison,
    Verdict,
    compare_runs,
    parse_tolerance,
)
from loadgen.report.junit import comparison_junit
from loadgen.report.markdown import comparison_markdown

from .builders import loaded, make_result

LATENCY_KEYS = ("p50", "p90", "p99", "p99_9", "max")


def _compare(
    baseline: list[float],
    current: list[float],
    *,
    base_rps: list[float] | None = None,
    cur_rps: list[float] | None = None,
    tolerance: float = 0.10,
) -> Comparison:
    base_rps = base_rps or [10_000.0] * len(baseline)
    cur_rps = cur_rps or [10_000.0] * len(current)
    return compare_runs(
        [
            loaded(make_result(s, throughput_rps=r), f"a{i}")
            for i, (s, r) in enumerate(zip(baseline, base_rps, strict=True))
        ],
        [
            loaded(make_result(s, throughput_rps=r), f"b{i}")
            for i, (s, r) in enumerate(zip(current, cur_rps, strict=True))
        ],
        tolerance,
    )


def _metric(comparison: Comparison, key: str) -> MetricComparison:
    return next(m for m in comparison.metrics if m.metric.key == key)


def test_one_run_a_side_applies_the_tolerance_alone() -> None:
    comparison = _compare([1.0], [1.2])
    assert not comparison.tested and "tolerance only" in comparison.method
    for key in LATENCY_KEYS:
        metric = _metric(comparison, key)
        assert metric.verdict is Verdict.REGRESSION, key
        assert metric.change == pytest.approx(0.2, abs=0.003)  # HDR buckets: 0.1 % each side
        assert metric.p_value is None and metric.ci is None
        assert metric.reason.startswith(("within", "worse", "better"))
    assert _metric(comparison, "throughput").verdict is Verdict.OK
    assert _metric(comparison, "error_rate").verdict is Verdict.OK
    assert comparison.failed


def test_change_within_tolerance_passes() -> None:
    comparison = _compare([1.0], [1.05])
    assert {m.verdict for m in comparison.metrics} == {Verdict.OK}
    assert not comparison.failed
    assert not _compare([1.0], [1.15], tolerance=0.2).failed


def test_direction_depends_on_the_metric() -> None:
    slower_throughput = _compare([1.0], [1.0], base_rps=[10_000.0], cur_rps=[8_500.0])
    assert _metric(slower_throughput, "throughput").verdict is Verdict.REGRESSION
    faster = _compare([1.0], [0.8], base_rps=[10_000.0], cur_rps=[12_000.0])
    assert _metric(faster, "throughput").verdict is Verdict.IMPROVED
    assert _metric(faster, "p99").verdict is Verdict.IMPROVED
    assert not faster.failed


def test_three_separated_runs_a_side_are_a_significant_regression() -> None:
    comparison = _compare([1.0, 1.01, 0.99], [1.2, 1.21, 1.19])
    assert comparison.tested and "Mann-Whitney" in comparison.method
    p99 = _metric(comparison, "p99")
    assert p99.verdict is Verdict.REGRESSION
    assert p99.p_value == pytest.approx(1 / 20)  # complete separation of 3 and 3
    assert p99.ci is not None and 0.15 < p99.ci[0] <= p99.ci[1] < 0.25
    assert comparison.failed


def test_large_but_noisy_change_is_not_significant_and_passes() -> None:
    # medians 1.0 -> 1.2 (+20 %), but the runs overlap
    comparison = _compare([1.0, 1.3, 0.8], [1.2, 0.9, 1.5])
    p99 = _metric(comparison, "p99")
    assert p99.change == pytest.approx(0.2, abs=0.003)
    assert p99.p_value is not None and p99.p_value > ALPHA
    assert p99.verdict is Verdict.NOT_SIGNIFICANT
    assert not comparison.failed


def test_significant_but_small_change_passes() -> None:
    comparison = _compare([1.0, 1.002, 0.998, 1.001, 0.999], [1.03, 1.032, 1.028, 1.031, 1.029])
    p99 = _metric(comparison, "p99")
    assert p99.p_value is not None and p99.p_value <= ALPHA
    assert p99.verdict is Verdict.OK and "significant but small" in p99.reason
    assert not comparison.failed


def test_new_errors_are_an_infinite_change() -> None:
    comparison = compare_runs(
        [loaded(make_result(), "a")],
        [loaded(make_result(errors={"timeout": 20}), "b")],
    )
    errors = _metric(comparison, "error_rate")
    assert errors.change == math.inf and errors.verdict is Verdict.REGRESSION
    assert errors.current_median == pytest.approx(100 * 20 / 2020)
    assert "+∞" in comparison_markdown(comparison)


def test_a_run_without_requests_has_no_latency_data() -> None:
    comparison = compare_runs([loaded(make_result(), "a")], [loaded(make_result(requests=0), "b")])
    assert _metric(comparison, "p99").verdict is Verdict.NO_DATA
    assert _metric(comparison, "throughput").verdict is Verdict.REGRESSION
    suite = ET.fromstring(comparison_junit(comparison))
    skipped = suite.findall(".//testcase[skipped]")
    assert {case.get("name") for case in skipped} == {
        "p50 latency",
        "p90 latency",
        "p99 latency",
        "p99.9 latency",
        "max latency",
    }


def test_different_scenarios_and_partial_runs_are_warned_about() -> None:
    comparison = compare_runs(
        [loaded(make_result(name="one", connections=10), "a")],
        [loaded(make_result(name="two", connections=50, partial=True), "b")],
    )
    messages = [w.message for w in comparison.warnings]
    assert "the runs come from different scenarios; they differ in" in messages
    details = next(w.details for w in comparison.warnings if "scenarios" in w.message)
    assert 'name: "one" in a; "two" in b' in details
    assert "connections: 10 in a; 50 in b" in details
    assert "b is partial (interrupted (SIGINT))" in messages
    assert not compare_runs([loaded(make_result(), "a")], [loaded(make_result(), "b")]).warnings


def test_junit_has_one_testcase_per_metric_with_failures() -> None:
    comparison = _compare([1.0, 1.01, 0.99], [1.2, 1.21, 1.19])
    root = ET.fromstring(comparison_junit(comparison))
    cases = root.findall(".//testcase")
    assert [c.get("name") for c in cases] == [m.metric.label for m in comparison.metrics]
    failed = [c for c in cases if c.find("failure") is not None]
    assert {c.get("name") for c in failed} == {
        m.metric.label for m in comparison.metrics if m.failed
    }
    assert root.get("failures") == str(len(failed)) == "5"
    failure = failed[0].find("failure")
    assert failure is not None
    message = failure.get("message") or ""
    assert "regression" in message and "p = 0.05" in message


def test_markdown_table_has_a_row_per_metric() -> None:
    text = comparison_markdown(_compare([1.0, 1.01, 0.99], [1.2, 1.21, 1.19]))
    assert text.startswith("### loadgen compare: ❌ FAIL")
    assert (
        "| metric | baseline (median of 3) | current (median of 3) | change | p (worse) "
        "| 95% interval | verdict |"
    ) in text
    assert text.count("median of") == 2  # said once in the header, not in every cell
    rows = [line for line in text.splitlines() if line.startswith("| ") and "latency" in line]
    assert len(rows) == 5 and all("**regression**" in row for row in rows)
    one_each = comparison_markdown(_compare([1.0], [1.0]))
    assert "✅ PASS" in one_each and "p (worse)" not in one_each


@pytest.mark.parametrize(("text", "value"), [("10%", 0.1), ("2.5%", 0.025), ("10", 0.1), ("0%", 0)])
def test_parse_tolerance(text: str, value: float) -> None:
    assert parse_tolerance(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["", "-5%", "ten", "10%%", "0.1x"])
def test_parse_tolerance_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="tolerance"):
        parse_tolerance(text)


def test_current_runs_thresholds_are_checks_too() -> None:
    passed = ThresholdVerdict("p99 < 5ms", "p99", 0.001, True)
    failed = ThresholdVerdict("error_rate < 1%", "error_rate", 0.05, False)
    baseline_only = ThresholdVerdict("requests > 1", "requests", 0.0, False)
    comparison = compare_runs(
        [loaded(make_result(thresholds=(baseline_only,)), "a")],
        [loaded(make_result(thresholds=(passed, failed)), "b")],
    )
    assert not comparison.regressed and comparison.thresholds_failed and comparison.failed
    root = ET.fromstring(comparison_junit(comparison))
    cases = root.findall(".//testcase[@classname='loadgen.config.thresholds']")
    assert [c.get("name") for c in cases] == ["b: p99 < 5ms", "b: error_rate < 1%"]
    failure = cases[1].find("failure")
    assert failure is not None and failure.get("type") == "threshold"
    assert failure.get("message") == "error_rate < 1%: failed (observed 5%)"
    assert root.get("tests") == "9" and root.get("failures") == "1"
    text = comparison_markdown(comparison)
    assert "| b | `p99 < 5ms` | 1 ms | ✅ pass |" in text
    assert "| b | `error_rate < 1%` | 5% | ❌ **fail** |" in text
