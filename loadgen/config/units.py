"""Parsing of the units scenarios are written in: durations, sizes and counts.

Every parser takes either a number (already in the base unit) or a string with a unit and
raises ``ValueError`` whose message names the accepted units, so a scenario error can say
what was expected.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

_NUMBER = r"(?P<num>\d+(?:\.\d+)?|\.\d+)"
_DURATION_UNIT = r"(?:ns|us|µs|ms|s|m|h)"
#: One or more ``NUMBER UNIT`` parts: ``250ms``, ``1m30s``, ``1h 2m``.
_DURATION = re.compile(rf"^\s*(?:(?:\d+(?:\.\d+)?|\.\d+)\s*{_DURATION_UNIT}\s*)+$")
_DURATION_PART = re.compile(rf"(\d+(?:\.\d+)?|\.\d+)\s*({_DURATION_UNIT})")
_BARE_NUMBER = re.compile(rf"^\s*{_NUMBER}\s*$")
_SIZE = re.compile(rf"^\s*{_NUMBER}\s*(?P<unit>B|KB|KiB|MB|MiB|GB|GiB)?\s*$", re.IGNORECASE)
_COUNT = re.compile(rf"^\s*{_NUMBER}\s*(?P<unit>k|m)?\s*$", re.IGNORECASE)

_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_BYTES = {
    "b": 1,
    "kb": 1000,
    "kib": 1024,
    "mb": 1000**2,
    "mib": 1024**2,
    "gb": 1000**3,
    "gib": 1024**3,
}
_COUNTS = {"k": 1000, "m": 1_000_000}


def parse_duration_s(value: object, *, unit_required: bool = False) -> float:
    """``"250ms"`` → 0.25, ``"1m30s"`` → 90.0 (parts add up, as in Go and k6). Units: ns,
    us, ms, s, m, h.

    A bare number is seconds, unless ``unit_required`` (what people write: scenario files,
    thresholds, the command line), where only 0 may go without a unit: ``think_time: 10`` is
    as likely meant as 10 ms as 10 s, so it is an error that offers both.
    """
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 10s or 250ms")
    if isinstance(value, int | float):
        seconds = float(value)
        bare = True
    else:
        text = str(value)
        number = _BARE_NUMBER.match(text)
        if number is not None:
            seconds, bare = float(number["num"]), True
        elif _DURATION.match(text):
            seconds = sum(float(n) * _SECONDS[u] for n, u in _DURATION_PART.findall(text))
            bare = False
        else:
            raise ValueError(
                f"expected a duration such as 10s, 250ms or 1m30s (units: ns, us, ms, s, m, h), "
                f"got {value!r}"
            )
    if seconds < 0:
        raise ValueError(f"a duration cannot be negative, got {value!r}")
    if bare and unit_required and seconds != 0:
        raise ValueError(
            f"a duration needs a unit: write {seconds:g}s or {seconds:g}ms (got {value!r})"
        )
    return seconds


def parse_size_bytes(value: object) -> int:
    """``"64KiB"`` → 65536; a bare number is bytes. Units: B, KB, KiB, MB, MiB, GB, GiB."""
    if isinstance(value, bool):
        raise ValueError("expected a size such as 64B or 64KiB")
    if isinstance(value, int):
        size = value
    else:
        match = _SIZE.match(str(value))
        if match is None:
            raise ValueError(
                f"expected a size such as 64B or 64KiB (units: B, KB, KiB, MB, MiB, GB, GiB), "
                f"got {value!r}"
            )
        exact = float(match["num"]) * _BYTES[(match["unit"] or "b").lower()]
        if exact != int(exact):
            raise ValueError(f"a size must be a whole number of bytes, got {value!r}")
        size = int(exact)
    if size < 0:
        raise ValueError(f"a size cannot be negative, got {value!r}")
    return size


def parse_count(value: object) -> int:
    """``"10k"`` → 10000; bare integers pass through. Suffixes: k, m."""
    if isinstance(value, bool):
        raise ValueError("expected a count such as 100 or 10k")
    if isinstance(value, int):
        return value
    match = _COUNT.match(str(value))
    if match is None:
        raise ValueError(f"expected a count such as 100 or 10k, got {value!r}")
    exact = float(match["num"]) * _COUNTS.get((match["unit"] or "").lower(), 1)
    if exact != int(exact):
        raise ValueError(f"a count must be a whole number, got {value!r}")
    return int(exact)


def format_duration(seconds: float) -> str:
    """Short human form: 5s, 250ms, 1.5m."""
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g}m"
    if seconds >= 1:
        return f"{seconds:g}s"
    return f"{seconds * 1000:g}ms"


_RATE = re.compile(rf"^\s*{_NUMBER}\s*(?P<mult>k|m)?\s*/\s*(?P<per>s|sec|m|min|h)\s*$", re.I)
_PER_SECONDS = {"s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}


def parse_rate_per_s(value: object) -> float:
    """``"20k/s"`` → 20000.0; ``"600/m"`` → 10.0; a bare number is per second."""
    if isinstance(value, bool):
        raise ValueError("expected a rate such as 500/s or 20k/s")
    if isinstance(value, int | float):
        rate = float(value)
    else:
        match = _RATE.match(str(value))
        if match is None:
            raise ValueError(
                f"expected a rate such as 500/s, 20k/s or 600/m (per s, m or h), got {value!r}"
            )
        multiplier = _COUNTS.get((match["mult"] or "").lower(), 1)
        rate = float(match["num"]) * multiplier / _PER_SECONDS[match["per"].lower()]
    if rate < 0:
        raise ValueError(f"a rate cannot be negative, got {value!r}")
    return rate


def parse_byte_rate_per_s(value: object) -> float:
    """``"10MiB/s"`` → 10485760.0; ``"600KB/m"`` → 10000.0; a bare number is bytes/s.

    A size (``parse_size_bytes``'s units) per s, m or h.
    """
    if isinstance(value, bool):
        raise ValueError("expected a byte rate such as 10MiB/s")
    if isinstance(value, int | float):
        rate = float(value)
    else:
        size, sep, per = str(value).rpartition("/")
        per_s = _PER_SECONDS.get(per.strip().lower())
        if not sep or per_s is None:
            raise ValueError(
                f"expected a byte rate such as 10MiB/s or 500KB/s (a size per s, m or h), "
                f"got {value!r}"
            )
        try:
            rate = parse_size_bytes(size) / per_s
        except ValueError as exc:
            raise ValueError(f"in the byte rate {value!r}: {exc}") from None
    if rate < 0:
        raise ValueError(f"a rate cannot be negative, got {value!r}")
    return rate


def parse_range(value: object, parse: Callable[[object], T]) -> tuple[T, T]:
    """``"1k/s to 20k/s"`` → (1000.0, 20000.0); a single value ``v`` → (v, v)."""
    if isinstance(value, str) and " to " in value:
        start, _, end = value.partition(" to ")
        return parse(start), parse(end)
    single = parse(value)
    return single, single
