"""Numbers as people read them, shared by the HTML, markdown and terminal renderings."""

from __future__ import annotations

import math

MISSING = "\u2013"  # en dash: "no value", distinct from a zero


#: (scale in µs, unit), largest first: a latency is shown in the largest unit it reaches.
_LATENCY_UNITS = ((1e6, "s"), (1e3, "ms"), (1.0, "µs"))


def latency_parts(value_us: float) -> tuple[str, str]:
    """(number, unit) with 3 significant digits (what an HDR histogram of 3 significant
    digits holds): 51.3 µs, 1.56 ms, 2.1 s. A value that rounds up to the next unit is shown
    in it (999.7 µs is 1 ms, not "1e+03 µs")."""
    for scale, unit in _LATENCY_UNITS:
        if value_us >= scale * 0.9995 or scale == 1.0:
            return f"{value_us / scale:.3g}", unit
    raise AssertionError("unreachable")  # pragma: no cover - the µs entry always returns


def format_us(value: float | None) -> str:
    """A latency given in microseconds, in the unit that keeps 3 significant digits."""
    if value is None:
        return MISSING
    number, unit = latency_parts(value)
    return f"{number} {unit}"


def format_count(value: int | float) -> str:
    return f"{value:,.0f}"


def format_rate(value: float | None) -> str:
    if value is None:
        return MISSING
    return f"{value:,.0f} req/s" if value >= 100 else f"{value:.3g} req/s"


def format_bytes(value: int) -> str:
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.3g} {unit}"
        size /= 1024
    raise AssertionError("unreachable")  # pragma: no cover - the loop always returns


def format_seconds(value: float) -> str:
    if value < 60:
        return f"{value:.3g} s"
    minutes, seconds = divmod(value, 60)
    return f"{minutes:.0f} min {seconds:.0f} s"


def format_percent_value(value: float | None) -> str:
    """A quantity already in percent (an error rate, a CPU share)."""
    if value is None:
        return MISSING
    if value == 0:
        return "0%"
    return f"{value:.3g}%"


def format_change(change: float | None) -> str:
    """A relative change: +12.3%, -4.01%, +inf (from a zero baseline)."""
    if change is None or math.isnan(change):
        return MISSING
    if math.isinf(change):
        return "+∞" if change > 0 else "-∞"
    percent = change * 100
    return f"{percent:+,.0f}%" if abs(percent) >= 1000 else f"{percent:+.3g}%"


def format_interval(interval: tuple[float, float] | None) -> str:
    if interval is None:
        return MISSING
    return f"[{format_change(interval[0])}, {format_change(interval[1])}]"


def format_metric(value: float | None, unit: str) -> str:
    if unit == "µs":
        return format_us(value)
    if unit == "req/s":
        return format_rate(value)
    if unit == "%":
        return format_percent_value(value)
    return MISSING if value is None else f"{value:.4g} {unit}"


def format_threshold_value(metric: str, value: float | None) -> str:
    """A threshold's observed value in its metric's unit (latencies arrive in seconds)."""
    if value is None:
        return "not measured"
    if metric in ("error_rate", "failed_rate"):
        return format_percent_value(100 * value)
    if metric == "throughput":
        return format_rate(value)
    if metric in ("errors", "requests", "failed"):
        return format_count(value)
    return format_us(value * 1e6)


#: Reasons shown per error kind in a summary (the JSON result keeps them all).
REASONS_SHOWN = 3


def reason_lines(reasons: dict[str, dict[str, int]]) -> list[str]:
    """``tls: certificate verify failed: ... (36)``: the commonest reasons of each kind."""
    lines = []
    for kind, counts in reasons.items():
        ranked = sorted(counts.items(), key=lambda item: -item[1])
        lines += [f"{kind}: {reason} ({count:,})" for reason, count in ranked[:REASONS_SHOWN]]
        if len(ranked) > REASONS_SHOWN:
            lines.append(f"{kind}: {len(ranked) - REASONS_SHOWN} more reasons in the result")
    return lines
