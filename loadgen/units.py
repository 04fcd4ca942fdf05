"""Parsing of the units scenarios are written in: durations, sizes and counts.

Every parser takes either a number (already in the base unit) or a string with a unit and
raises ``ValueError`` whose message names the accepted units, so a scenario error can say
what was expected.
"""

from __future__ import annotations

import re

_NUMBER = r"(?P<num>\d+(?:\.\d+)?|\.\d+)"
_DURATION = re.compile(rf"^\s*{_NUMBER}\s*(?P<unit>ns|us|µs|ms|s|m|h)?\s*$")
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


def parse_duration_s(value: object) -> float:
    """``"250ms"`` → 0.25; a bare number is seconds. Units: ns, us, ms, s, m, h."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 10s or 250ms")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if match is None:
            raise ValueError(
                f"expected a duration such as 10s or 250ms (units: ns, us, ms, s, m, h), "
                f"got {value!r}"
            )
        seconds = float(match["num"]) * _SECONDS[match["unit"] or "s"]
    if seconds < 0:
        raise ValueError(f"a duration cannot be negative, got {value!r}")
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
