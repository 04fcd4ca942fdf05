"""Baseline against current: per-metric change, significance and a pass/fail verdict.

The unit is the run: requests inside one run share its machine state, so they are not
independent samples, and a test over them would find "significant" noise. Each run gives one
value per metric (its throughput, its p99, ...).

* Three or more runs on each side: a one-sided Mann-Whitney U test in the direction that
  would be worse (three a side is the least that can be significant at all: complete
  separation gives p = 1/20 = 0.05) and a bootstrap interval of the relative change of
  medians. A metric fails only when the change is significant (p <= alpha) **and** worse than
  the tolerance: significant-but-small and large-but-noisy both pass, and say so.
* Fewer: the relative change of medians against the tolerance alone, labelled as such.

Latency is the corrected latency in the open model (from intended send times, the one its
thresholds use) and the only one in the closed model. Error rate is errors per attempt
(``Summary.error_rate``: a failed request is one attempt, not two); from a zero baseline
any error is an infinite relative change, so new errors fail a tolerance-only comparison.
"""

from __future__ import annotations

import difflib
import json
import math
import re
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from loadgen.config.thresholds import ThresholdVerdict
from loadgen.report import cluster as cluster_text
from loadgen.report.loading import LoadedRun
from loadgen.result.model import Cluster, LatencySummary, Summary
from loadgen.result.stop import StopKind, StopReason
from loadgen.stats.significance import bootstrap_ci, mann_whitney_u, relative_change

DEFAULT_TOLERANCE = 0.10  # 10 %: run-to-run noise on shared machines is a few percent
ALPHA = 0.05  # the usual 5 % false-alarm rate per metric
CONFIDENCE = 0.95
MIN_RUNS_FOR_TEST = 3  # fewer cannot reach p <= 0.05 in a one-sided U test


class Verdict(StrEnum):
    REGRESSION = "regression"
    IMPROVED = "improved"
    OK = "ok"
    NOT_SIGNIFICANT = "not significant"  # beyond tolerance, but within run-to-run noise
    NO_DATA = "no data"


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    unit: str
    higher_is_better: bool
    value: Callable[[Summary], float | None]


def _latency(summary: Summary) -> LatencySummary:
    """Corrected latency in the open model (what its thresholds use too), else the only one."""
    return summary.latency_corrected_us or summary.latency_us


def _error_rate_percent(summary: Summary) -> float:
    return 100.0 * summary.error_rate


METRICS: tuple[Metric, ...] = (
    Metric("throughput", "throughput", "req/s", True, lambda s: s.throughput_rps),
    Metric("p50", "p50 latency", "µs", False, lambda s: _latency(s).p50),
    Metric("p90", "p90 latency", "µs", False, lambda s: _latency(s).p90),
    Metric("p99", "p99 latency", "µs", False, lambda s: _latency(s).p99),
    Metric("p99_9", "p99.9 latency", "µs", False, lambda s: _latency(s).p99_9),
    Metric("max", "max latency", "µs", False, lambda s: _latency(s).max),
    Metric("error_rate", "error rate", "%", False, _error_rate_percent),
)


METRIC_KEYS = tuple(metric.key for metric in METRICS)


@dataclass(frozen=True)
class Tolerances:
    """The largest change that still passes: ``default`` for every metric, or its own."""

    default: float = DEFAULT_TOLERANCE
    per_metric: tuple[tuple[str, float], ...] = ()

    def of(self, metric: str) -> float:
        return dict(self.per_metric).get(metric, self.default)

    @property
    def uniform(self) -> bool:
        return all(value == self.default for _, value in self.per_metric)

    def describe(self) -> str:
        """``10%`` or ``10%, p99 5%, throughput 3%``."""
        own = [f"{_label(key)} {format_percent(value)}" for key, value in self.per_metric]
        return ", ".join([format_percent(self.default), *own])


def _label(key: str) -> str:
    return key.replace("p99_9", "p99.9")


@dataclass(frozen=True)
class MetricComparison:
    metric: Metric
    baseline: tuple[float, ...]
    current: tuple[float, ...]
    change: float | None  # relative change of medians; +-inf from a zero baseline
    p_value: float | None  # one-sided, toward "worse"; None when not tested
    ci: tuple[float, float] | None  # bootstrap interval of ``change``
    verdict: Verdict
    reason: str
    tolerance: float = DEFAULT_TOLERANCE

    @property
    def baseline_median(self) -> float | None:
        return statistics.median(self.baseline) if self.baseline else None

    @property
    def current_median(self) -> float | None:
        return statistics.median(self.current) if self.current else None

    @property
    def failed(self) -> bool:
        return self.verdict is Verdict.REGRESSION


@dataclass(frozen=True)
class NameSide:
    """One request name on one side: medians over the runs that have it."""

    runs: int
    p50_us: float | None
    p99_us: float | None
    failed_percent: float | None


@dataclass(frozen=True)
class NameComparison:
    name: str
    baseline: NameSide
    current: NameSide

    @property
    def p99_change(self) -> float | None:
        base, now = self.baseline.p99_us, self.current.p99_us
        return None if base is None or now is None else relative_change(base, now)


def _median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def _name_side(name: str, runs: Sequence[LoadedRun]) -> NameSide:
    items = [i for run in runs for i in run.result.requests_by_name if i.name == name]
    latencies = [item.latency_corrected_us or item.latency_us for item in items]
    return NameSide(
        runs=len(items),
        p50_us=_median([latency.p50 for latency in latencies]),
        p99_us=_median([latency.p99 for latency in latencies]),
        failed_percent=_median(
            [None if i.failed_rate is None else 100 * i.failed_rate for i in items]
        ),
    )


def compare_by_name(
    baseline: Sequence[LoadedRun], current: Sequence[LoadedRun]
) -> tuple[NameComparison, ...]:
    """Every request name of either side, in the order first seen."""
    names = dict.fromkeys(
        item.name for run in [*baseline, *current] for item in run.result.requests_by_name
    )
    return tuple(
        NameComparison(name, _name_side(name, baseline), _name_side(name, current))
        for name in names
    )


@dataclass(frozen=True)
class Comparison:
    tolerance: float  # the default tolerance (``tolerances`` has each metric's)
    tested: bool  # True: Mann-Whitney U + bootstrap; False: tolerance only
    baseline_sources: tuple[str, ...]
    current_sources: tuple[str, ...]
    metrics: tuple[MetricComparison, ...]
    warnings: tuple[InputWarning, ...]
    #: The current runs' own threshold verdicts (run label, verdict): a gate reports them too.
    thresholds: tuple[tuple[str, ThresholdVerdict], ...] = ()
    #: Runs (either side) whose generator was the bottleneck: (label, reasons). Their numbers
    #: measure the generator, so the comparison is shown but not trusted (``run`` exits 3).
    invalid_runs: tuple[tuple[str, tuple[str, ...]], ...] = ()
    #: Distributed runs (either side): (label, cluster), for the hosts tables and lost hosts.
    clusters: tuple[tuple[str, Cluster], ...] = ()
    tolerances: Tolerances = Tolerances()
    #: Runs (either side) that did not complete: (label, why they stopped).
    stopped_runs: tuple[tuple[str, StopReason], ...] = ()
    #: Current runs that did not complete (label, why they stopped): a gate cannot pass a
    #: run that failed or was cut short (empty when ``compare_runs`` was told to allow them).
    incomplete: tuple[tuple[str, StopReason], ...] = ()
    #: Request sets: each request name's medians on both sides (shown, not judged).
    by_name: tuple[NameComparison, ...] = ()

    @property
    def regressed(self) -> bool:
        return any(m.failed for m in self.metrics)

    @property
    def thresholds_failed(self) -> bool:
        return any(not verdict.passed for _, verdict in self.thresholds)

    @property
    def failed(self) -> bool:
        """A regression, a current run that failed one of its thresholds (both exit 99), or a
        current run that did not complete (exit 1)."""
        return self.regressed or self.thresholds_failed or bool(self.incomplete)

    @property
    def method(self) -> str:
        if self.tested:
            return (
                f"Mann-Whitney U (one-sided, alpha = {ALPHA:g}) and bootstrap "
                f"{CONFIDENCE:.0%} interval, runs as the unit"
            )
        return (
            f"tolerance only (a significance test needs {MIN_RUNS_FOR_TEST} or more runs "
            "on each side)"
        )


def parse_tolerance(text: str) -> float:
    """``"10%"`` or ``"10"`` -> 0.10 (a plain number is a percentage too)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*%?\s*", text)
    if not match:
        raise ValueError(f"tolerance {text!r}: expected a percentage such as 10% or 2.5%")
    return float(match.group(1)) / 100


def parse_tolerances(items: Sequence[str]) -> Tolerances:
    """``["5%", "p99=2%", "throughput=3%"]``: a plain percentage for every metric, and
    ``METRIC=PERCENT`` for one (the last given wins)."""
    default = DEFAULT_TOLERANCE
    own: dict[str, float] = {}
    for item in items:
        name, equals, value = item.partition("=")
        if not equals:
            default = parse_tolerance(item)
            continue
        key = name.strip().replace("p99.9", "p99_9")
        if key not in METRIC_KEYS:
            close = difflib.get_close_matches(key, METRIC_KEYS, n=1)
            hint = f"; did you mean {_label(close[0])!r}?" if close else ""
            known = ", ".join(_label(k) for k in METRIC_KEYS)
            raise ValueError(f"{name!r} is not a compared metric ({known}){hint}")
        own[key] = parse_tolerance(value)
    return Tolerances(default, tuple(own.items()))


def compare_runs(
    baseline: Sequence[LoadedRun],
    current: Sequence[LoadedRun],
    tolerance: float | Tolerances = DEFAULT_TOLERANCE,
    *,
    allow_partial: bool = False,
) -> Comparison:
    """Baseline against current; a current run that is partial (failed, interrupted) fails
    the comparison unless ``allow_partial`` (a baseline that is partial is a warning)."""
    if not baseline or not current:
        raise ValueError("compare needs at least one baseline and one current run")
    tolerances = tolerance if isinstance(tolerance, Tolerances) else Tolerances(tolerance)
    tested = len(baseline) >= MIN_RUNS_FOR_TEST and len(current) >= MIN_RUNS_FOR_TEST
    metrics = tuple(
        compare_metric(
            metric,
            _values(metric, baseline),
            _values(metric, current),
            tolerances.of(metric.key),
            tested,
        )
        for metric in METRICS
    )
    return Comparison(
        tolerance=tolerances.default,
        tolerances=tolerances,
        tested=tested,
        baseline_sources=tuple(run.source or run.label for run in baseline),
        current_sources=tuple(run.source or run.label for run in current),
        metrics=metrics,
        warnings=tuple(input_warnings([*baseline, *current])),
        thresholds=tuple((run.label, v) for run in current for v in run.result.thresholds),
        invalid_runs=tuple(
            (run.label, tuple(run.result.self_check.reasons))
            for run in [*baseline, *current]
            if run.result.self_check is not None and not run.result.self_check.valid
        ),
        clusters=tuple(
            (run.label, run.result.cluster)
            for run in [*baseline, *current]
            if run.result.cluster is not None
        ),
        stopped_runs=tuple(
            (run.label, run.result.stop)
            for run in [*baseline, *current]
            if not run.result.stop.is_completed
        ),
        incomplete=()
        if allow_partial
        else tuple((run.label, run.result.stop) for run in current if run.result.partial),
        by_name=compare_by_name(baseline, current),
    )


def _values(metric: Metric, runs: Sequence[LoadedRun]) -> tuple[float, ...]:
    values = (metric.value(run.result.summary) for run in runs)
    return tuple(float(v) for v in values if v is not None)


def compare_metric(
    metric: Metric,
    baseline: tuple[float, ...],
    current: tuple[float, ...],
    tolerance: float,
    tested: bool,
) -> MetricComparison:
    """One metric's values on each side (one per run), compared: ``tested`` uses the U test
    and the bootstrap, else the tolerance alone (capacity results compare this way too)."""
    if not baseline or not current:
        return MetricComparison(
            metric,
            baseline,
            current,
            None,
            None,
            None,
            Verdict.NO_DATA,
            "no value on one side",
            tolerance,
        )
    if not all(math.isfinite(value) for value in (*baseline, *current)):
        return MetricComparison(
            metric,
            baseline,
            current,
            None,
            None,
            None,
            Verdict.REGRESSION,
            "a value is not a finite number: it cannot be judged",
        )
    change = relative_change(statistics.median(baseline), statistics.median(current))
    worse = -change if metric.higher_is_better else change  # > 0: moved the bad way
    p_worse: float | None = None
    p_better: float | None = None
    ci: tuple[float, float] | None = None
    if tested:
        lower = mann_whitney_u(current, baseline, "less").p_value
        higher = mann_whitney_u(current, baseline, "greater").p_value
        p_worse, p_better = (lower, higher) if metric.higher_is_better else (higher, lower)
        low, high = bootstrap_ci(baseline, current, confidence=CONFIDENCE)
        ci = None if math.isnan(low) else (low, high)
    verdict, reason = _decide(worse, tolerance, p_worse, p_better)
    return MetricComparison(
        metric, baseline, current, change, p_worse, ci, verdict, reason, tolerance
    )


def format_percent(fraction: float) -> str:
    """0.1 -> "10%", 0.025 -> "2.5%"."""
    return f"{fraction * 100:.3g}%"


def _decide(
    worse: float, tolerance: float, p_worse: float | None, p_better: float | None
) -> tuple[Verdict, str]:
    """``worse``: relative change in the bad direction; p-values None when not tested."""
    limit = format_percent(tolerance)
    if p_worse is None or p_better is None:
        if worse > tolerance:
            return Verdict.REGRESSION, f"worse by >{limit}"
        if -worse > tolerance:
            return Verdict.IMPROVED, f"better by >{limit}"
        return Verdict.OK, f"within {limit}"
    if worse > tolerance:
        if p_worse <= ALPHA:
            return Verdict.REGRESSION, f"worse by >{limit}, p = {p_worse:.3g}"
        return (
            Verdict.NOT_SIGNIFICANT,
            f"worse by >{limit}, but p = {p_worse:.3g} > {ALPHA:g}: within run noise",
        )
    if -worse > tolerance:
        if p_better <= ALPHA:
            return Verdict.IMPROVED, f"better by >{limit}, p = {p_better:.3g}"
        return Verdict.OK, f"better by >{limit}, but p = {p_better:.3g} > {ALPHA:g}"
    if min(p_worse, p_better) <= ALPHA:
        return Verdict.OK, f"within {limit} (a significant but small change)"
    return Verdict.OK, f"within {limit}"


# ------------------------------------------------------------------------ input checks


#: Scenario keys that describe rather than define the load: a difference there is no warning.
_DESCRIPTIVE_KEYS = ("description",)
_VALUE_WIDTH = 48  # longer values (phase lists) are shortened so a warning stays readable


@dataclass(frozen=True)
class InputWarning:
    """Something to know before trusting the comparison, with one detail line per item."""

    message: str
    details: tuple[str, ...] = ()


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        flat: dict[str, Any] = {}
        for key, value in data.items():
            flat.update(_flatten(value, f"{prefix}{key}."))
        return flat
    return {prefix.rstrip("."): data}


def _shorten(value: Any) -> str:
    text = "(absent)" if value is _ABSENT else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= _VALUE_WIDTH else text[: _VALUE_WIDTH - 1] + "…"


_ABSENT = object()


def _differences(runs: Sequence[LoadedRun], sections: Sequence[dict[str, Any]]) -> list[str]:
    """``key: value in run, run; other value in run`` for each key whose values differ."""
    flat = [_flatten(section) for section in sections]
    keys = sorted({key for entry in flat for key in entry} - set(_DESCRIPTIVE_KEYS))
    described = []
    for key in keys:
        values = [_shorten(entry.get(key, _ABSENT)) for entry in flat]
        if len(set(values)) == 1:
            continue
        groups: dict[str, list[str]] = {}
        for run, value in zip(runs, values, strict=True):
            groups.setdefault(value, []).append(run.label)
        described.append(
            f"{key}: " + "; ".join(f"{v} in {', '.join(who)}" for v, who in groups.items())
        )
    return described


def _partial_warning(run: LoadedRun) -> InputWarning:
    """A run that measured less than planned, and why: loadgen failed (the detail says
    where and how), a signal, or its coordinator stopped it."""
    stop = run.result.stop
    if stop.kind is StopKind.FAILED:
        return InputWarning(f"{run.label} is partial: loadgen failed", (stop.detail,))
    return InputWarning(f"{run.label} is partial ({run.result.stop_reason})")


def input_warnings(runs: Sequence[LoadedRun]) -> list[InputWarning]:
    """What a reader must know before trusting the comparison: differing inputs, partial
    runs, distributed runs that lost hosts or warned (clocks far apart), invalid runs."""
    warnings = []
    scenario = _differences(runs, [run.result.scenario for run in runs])
    if scenario:
        warnings.append(
            InputWarning("the runs come from different scenarios; they differ in", tuple(scenario))
        )
    environment = _differences(
        runs,
        [
            {
                "backend": run.result.environment.backend,
                "recv_mode": run.result.environment.recv_mode,
                "processes": run.result.environment.processes,
                "loadgen_version": run.result.environment.loadgen_version,
                "hosts": len(run.result.cluster.hosts) if run.result.cluster else 1,
            }
            for run in runs
        ],
    )
    if environment:
        warnings.append(InputWarning("the runs differ in environment", tuple(environment)))
    warnings += [_partial_warning(run) for run in runs if run.result.partial]
    for run in runs:
        cluster = run.result.cluster
        if cluster is not None and (cluster.lost_hosts or cluster.warnings):
            lost = len(cluster.lost_hosts)
            warnings.append(
                InputWarning(
                    f"{run.label} ran on {cluster_text.overview(cluster)}"
                    + ("" if lost else " with warnings"),
                    (*cluster_text.lost_hosts(cluster), *cluster.warnings),
                )
            )
    for run in runs:
        check = run.result.self_check
        if check is not None and not check.valid:
            warnings.append(
                InputWarning(
                    f"{run.label} is INVALID: its generator was the bottleneck, so its numbers "
                    "measure loadgen, not the target",
                    tuple(check.reasons),
                )
            )
    return warnings
