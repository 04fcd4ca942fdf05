"""Thresholds: ``p99 < 5ms``, ``error_rate < 0.1%``, ``failed_rate < 1%``, ``throughput > 1k/s``,
checked on a result.

``error_rate`` is errors of any kind per attempt (a request, or an exchange that ended in an
error without a response); ``failed_rate`` is failed requests (answered outside the
expectation, e.g. an HTTP status outside ``http.expect``) per request, as k6's
``http_req_failed``; ``failed`` counts them.

Parsed when the scenario is validated (a misspelled metric is an error there, never a silent
pass) and evaluated on the summary at the end of the run. Latency metrics compare in
seconds-based units given with the threshold (``5ms``); in the open model the plain names
(``p99``) mean the latency from each request's *intended* send time (the honest one) and
``raw_p99`` the latency from its actual send.
"""

from __future__ import annotations

import difflib
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from loadgen.config.units import parse_count, parse_duration_s, parse_rate_per_s

_LATENCY_STATS = ("min", "mean", "p50", "p90", "p99", "p99_9", "max")
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
    if value.endswith("%"):
        return float(value[:-1]) / 100
    return float(value)


def _metric_parsers() -> dict[str, Callable[[object], float]]:
    parsers: dict[str, Callable[[object], float]] = {}
    for stat in _LATENCY_STATS:
        for prefix in ("", "raw_", "connect_"):
            parsers[prefix + stat] = parse_duration_s
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
        match = _EXPRESSION.match(str(text))
        if match is None:
            raise ValueError(
                f"expected 'METRIC OP VALUE' such as 'p99 < 5ms' or 'error_rate < 0.1%', "
                f"got {text!r}"
            )
        metric = match["metric"].replace("p99.9", "p99_9")
        parser = METRICS.get(metric)
        if parser is None:
            close = difflib.get_close_matches(metric, METRICS, n=1)
            hint = f"did you mean {close[0]!r}?" if close else "known: " + ", ".join(METRICS)
            raise ValueError(f"unknown metric {metric!r}; {hint}")
        try:
            limit = parser(match["value"])
        except ValueError as exc:
            raise ValueError(f"{metric}: {exc}") from None
        return cls(str(text).strip(), metric, match["op"], limit)

    def observe(self, summary: Any) -> float | None:
        """The metric's value in a ``Summary`` (seconds for latencies), or None if absent."""
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
        latency = {
            "": summary.latency_corrected_us or summary.latency_us,
            "raw_": summary.latency_us,
            "connect_": summary.connect_latency_us,
        }[source]
        value = getattr(latency, stat)
        return None if value is None else value / 1e6

    def check(self, summary: Any) -> ThresholdVerdict:
        value = self.observe(summary)
        passed = value is not None and _OPERATORS[self.op](value, self.limit)
        return ThresholdVerdict(self.expression, self.metric, value, passed)


@dataclass(frozen=True)
class ThresholdVerdict:
    expression: str
    metric: str
    value: float | None  # None: nothing was measured (a failed verdict, never a pass)
    passed: bool
