"""Thresholds: ``p99 < 5ms``, ``error_rate < 0.1%``, ``failed_rate < 1%``, ``throughput > 1k/s``,
checked on a result.

``error_rate`` is errors of any kind per attempt (a request, or an exchange that ended in an
error without a response); ``failed_rate`` is failed requests (answered outside the
expectation, e.g. an HTTP status outside ``http.expect``) per request, as k6's
``http_req_failed``; ``failed`` counts them.

Parsed when the scenario is validated (a misspelled metric is an error there, never a silent
pass) and evaluated on the summary at the end of the run. Latency metrics compare in
seconds-based units given with the threshold (``5ms``; a bare number is an error, as in a
scenario); in the open model the plain names (``p99``) mean the latency from each request's
*intended* send time (the honest one) and ``raw_p99`` the latency from its actual send.

Latency statistics: ``min``, ``mean`` (or ``avg``, k6's name), ``med``, ``max`` and any
percentile ``pNN`` or ``pNN.N`` (``p75``, ``p95``, ``p99.99``; k6's ``p(95)`` too). The
summary's own percentiles (p50, p90, p99, p99.9) are read from it; any other from the run's
histogram, so a percentile nobody listed in advance is as exact as the listed ones.
"""

from __future__ import annotations

import difflib
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from loadgen.config.units import parse_count, parse_duration_s, parse_rate_per_s
from loadgen.stats.histogram import HdrHistogram

_LATENCY_STATS = ("min", "mean", "p50", "p90", "p99", "p99_9", "max")
_ALIASES = {"avg": "mean", "med": "p50"}
#: ``p95``, ``p99.99``, ``raw_p75``, ``connect_p95``: any percentile above 0 and up to 100.
_PERCENTILE = re.compile(r"^(?P<prefix>raw_|connect_)?p(?P<value>\d{1,3}(?:[._]\d+)?)$")
_K6_PERCENTILE = re.compile(r"\bp\((\d{1,3}(?:\.\d+)?)\)")
_PREFIXES = ("", "raw_", "connect_")
#: Which histogram each latency prefix reads (the honest one first for the plain names).
_HISTOGRAMS = {
    "": ("latency_corrected", "latency"),
    "raw_": ("latency",),
    "connect_": ("connect_latency",),
}
_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_EXPRESSION = re.compile(
    r"^\s*(?P<metric>[A-Za-z_][\w.]*)\s*(?P<op><=|>=|<|>)\s*(?P<value>.+?)\s*$"
)


def _parse_fraction(text: object) -> float:
    value = str(text).strip()
    fraction = float(value[:-1]) / 100 if value.endswith("%") else float(value)
    if not 0 <= fraction <= 1:  # also refuses nan
        raise ValueError(
            f"an error rate is a share of the requests, 0% to 100% (0 to 1), got {value}"
        )
    return fraction


def _written_duration_s(value: object) -> float:
    return parse_duration_s(value, unit_required=True)


def _metric_parsers() -> dict[str, Callable[[object], float]]:
    parsers: dict[str, Callable[[object], float]] = {}
    for stat in (*_LATENCY_STATS, *_ALIASES):
        for prefix in _PREFIXES:
            parsers[prefix + stat] = _written_duration_s
    parsers["error_rate"] = _parse_fraction
    parsers["failed_rate"] = _parse_fraction
    parsers["failed"] = lambda v: float(parse_count(v))
    parsers["throughput"] = parse_rate_per_s
    parsers["errors"] = lambda v: float(parse_count(v))
    parsers["requests"] = lambda v: float(parse_count(v))
    return parsers


METRICS = _metric_parsers()


@dataclass(frozen=True)
class Threshold:
    expression: str
    metric: str
    op: str
    limit: float  # seconds for latencies, a fraction for error_rate, per second, or a count

    @classmethod
    def parse(cls, text: object) -> Threshold:
        match = _EXPRESSION.match(_K6_PERCENTILE.sub(r"p\1", str(text)))
        if match is None:
            raise ValueError(
                f"expected 'METRIC OP VALUE' such as 'p99 < 5ms' or 'error_rate < 0.1%', "
                f"got {text!r}"
            )
        metric = _canonical(match["metric"])
        parser = _written_duration_s if _percentile_of(metric) else METRICS.get(metric)
        if parser is None:
            close = difflib.get_close_matches(metric, METRICS, n=1)
            hint = f"did you mean {close[0]!r}?" if close else "known: " + ", ".join(METRICS)
            raise ValueError(f"unknown metric {metric!r}; {hint}")
        try:
            limit = parser(match["value"])
        except ValueError as exc:
            raise ValueError(f"{metric}: {exc}") from None
        return cls(str(text).strip(), metric, match["op"], limit)

    def observe(
        self, summary: Any, histograms: Mapping[str, HdrHistogram] | None = None
    ) -> float | None:
        """The metric's value in a ``Summary`` (seconds for latencies), or None if absent.
        A percentile the summary does not hold is read from ``histograms`` (by name, as a
        result keeps them: ``latency``, ``latency_corrected``, ``connect_latency``)."""
        metric = self.metric
        if metric == "error_rate":
            return float(summary.error_rate)
        if metric == "failed_rate":  # None without a request: "not measured", never a pass
            rate = summary.failed_rate
            return None if rate is None else float(rate)
        if metric == "failed":
            return float(summary.failed)
        if metric == "throughput":
            return float(summary.throughput_rps)
        if metric == "errors":
            return float(summary.error_count)
        if metric == "requests":
            return float(summary.requests)
        source, stat = "", metric
        for prefix in ("raw_", "connect_"):
            if metric.startswith(prefix):
                source, stat = prefix, metric[len(prefix) :]
        percentile = _percentile_of(metric)
        if percentile is not None and stat not in _LATENCY_STATS:
            histogram = _histogram(histograms or {}, source)
            if histogram is None or histogram.total_count == 0:
                return None
            return histogram.percentiles([percentile])[0] / 1e9
        latency = {
            "": summary.latency_corrected_us or summary.latency_us,
            "raw_": summary.latency_us,
            "connect_": summary.connect_latency_us,
        }[source]
        value = getattr(latency, stat)
        return None if value is None else value / 1e6

    def check(
        self, summary: Any, histograms: Mapping[str, HdrHistogram] | None = None
    ) -> ThresholdVerdict:
        value = self.observe(summary, histograms)
        passed = value is not None and _OPERATORS[self.op](value, self.limit)
        return ThresholdVerdict(self.expression, self.metric, value, passed)


def _canonical(metric: str) -> str:
    """``p99.9`` -> ``p99_9``, ``avg`` -> ``mean``, ``raw_med`` -> ``raw_p50``."""
    for prefix in _PREFIXES[::-1]:  # "" last: it matches everything
        if metric.startswith(prefix):
            stat = metric[len(prefix) :]
            stat = _ALIASES.get(stat, stat)
            if _PERCENTILE.match(stat):
                stat = stat.replace(".", "_")
            return prefix + stat
    return metric  # pragma: no cover - "" always matches


def _percentile_of(metric: str) -> float | None:
    """95.0 for ``p95``, 99.99 for ``raw_p99_99``; None for other metrics (or out of range)."""
    match = _PERCENTILE.match(metric)
    if match is None:
        return None
    value = float(match["value"].replace("_", "."))
    return value if 0 < value <= 100 else None


def _histogram(histograms: Mapping[str, HdrHistogram], source: str) -> HdrHistogram | None:
    for name in _HISTOGRAMS[source]:
        if name in histograms:
            return histograms[name]
    return None


@dataclass(frozen=True)
class ThresholdVerdict:
    expression: str
    metric: str
    value: float | None  # None: nothing was measured (a failed verdict, never a pass)
    passed: bool
