"""Loads and SLO values as people read them, for the answer, the console, markdown and HTML."""

from __future__ import annotations

from collections.abc import Sequence

from loadgen.capacity.model import SloAt, Vary
from loadgen.report.formatting import format_threshold_value


def format_load(value: float | None, vary: Vary) -> str:
    """``1,600 req/s``, ``12.5 req/s``, ``48 connections``."""
    if value is None:
        return "\u2013"
    if vary is Vary.CONNECTIONS:
        count = round(value)
        return f"{count:,} connection{'s' if count != 1 else ''}"
    return f"{value:,.0f} req/s" if value >= 100 else f"{value:.3g} req/s"


def format_change(low: float, high: float) -> str:
    """How far ``high`` is above ``low``: ``+5%``."""
    return f"+{(high / low - 1) * 100:.3g}%" if low > 0 else "+\u221e"


def _metric_name(metric: str) -> str:
    return metric.replace("p99_9", "p99.9")


def slo_value(slo: SloAt, with_slo: bool = True) -> str:
    """``p99 = 8.21 ms (SLO p99 < 10ms)``; a value of several steps is their median."""
    observed = format_threshold_value(slo.metric, slo.median)
    text = f"{_metric_name(slo.metric)} = {observed}"
    return f"{text} (SLO {slo.expression})" if with_slo else text


def slo_values(slos: Sequence[SloAt], only_broken: bool = False) -> str:
    chosen = [slo for slo in slos if not (only_broken and slo.passed)]
    return ", ".join(slo_value(slo, with_slo=not only_broken) for slo in chosen)
