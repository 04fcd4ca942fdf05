"""The study's numbers as text, shared by the console table, the HTML page and the docs."""

from __future__ import annotations

from collections.abc import Callable

from loadgen.report.formatting import MISSING, format_us
from loadgen.study.result import Spread


def signed_bytes(value: float | None) -> str:
    """Bytes in binary units; deltas can be negative (memory given back meanwhile)."""
    if value is None:
        return MISSING
    sign = "-" if value < 0 else ""
    size = abs(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{sign}{size:.0f} {unit}" if unit == "B" else f"{sign}{size:.3g} {unit}"
        size /= 1024
    raise AssertionError("unreachable")  # pragma: no cover - the loop always returns


def rate(value: float | None) -> str:
    return MISSING if value is None else f"{value:,.0f}/s"


def latency(value: float | None) -> str:
    return format_us(value)


Scale = Callable[[float], tuple[float, str]]


def bytes_scale(value: float) -> tuple[float, str]:
    size = abs(value)
    for divisor, unit in ((1024**3, "GiB"), (1024**2, "MiB"), (1024, "KiB")):
        if size >= divisor:
            return divisor, unit
    return 1, "B"


def rate_scale(value: float) -> tuple[float, str]:
    return (1e6, "M/s") if value >= 1e6 else (1e3, "k/s") if value >= 1e3 else (1, "/s")


def latency_scale(us: float) -> tuple[float, str]:
    return (1e6, "s") if us >= 1e6 else (1e3, "ms") if us >= 1e3 else (1, "\u00b5s")


def _number(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"


def with_spread(spread: Spread, scale: Scale) -> str:
    """``5.36 (5.21-5.51) KiB``: the median and the range over the repeats, in the
    median's unit."""
    if spread.median is None:
        return MISSING
    divisor, unit = scale(spread.median)
    median = _number(spread.median / divisor)
    if spread.n < 2 or spread.min is None or spread.max is None or spread.min == spread.max:
        return f"{median} {unit}"
    low, high = _number(spread.min / divisor), _number(spread.max / divisor)
    return f"{median} ({low}\u2013{high}) {unit}"
