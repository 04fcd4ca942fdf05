"""Benchmark results as JSON files under ``benchmarks/results/`` (format: its README.md).

Every benchmark script writes one file per run, named ``<UTC time>-<benchmark>.json``
(``20261127T041500Z-http_peers.json``), holding a common envelope (what ran, where, and how
loaded the machine was) around the benchmark's own figures. Only the files README quotes
are committed (``benchmarks/results/.gitignore``).
"""

from __future__ import annotations

import json
import os
import platform
import socket
import statistics
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"
SCHEMA_VERSION = 1


def spread(values: Sequence[float]) -> dict[str, float | int | None]:
    """Median, min and max of the rounds (``None`` for all three when there are none)."""
    if not values:
        return {"median": None, "min": None, "max": None, "n": 0}
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "n": len(values),
    }


def _script_path() -> str:
    script = Path(sys.argv[0]).resolve()
    try:
        return str(script.relative_to(RESULTS_DIR.parent.parent))
    except ValueError:
        return str(script)


def machine() -> dict[str, Any]:
    """The machine, and its load average now (at the end of a run: the machine may be
    shared, so say how busy it was; scripts add ``load_average_at_start``)."""
    return {
        "hostname": socket.gethostname(),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "cpu_count": os.cpu_count(),
        "cpus_allowed": sorted(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else None,
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def write_result(
    benchmark: str,
    data: dict[str, Any],
    directory: Path | None = None,
    started: datetime | None = None,
) -> Path:
    """Write ``data`` in the common envelope; returns the file's path."""
    directory = RESULTS_DIR if directory is None else directory
    directory.mkdir(parents=True, exist_ok=True)
    started = datetime.now(UTC) if started is None else started
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    path = directory / f"{stamp}-{benchmark}.json"
    suffix = 2
    while path.exists():  # two runs in one second
        path = directory / f"{stamp}-{benchmark}-{suffix}.json"
        suffix += 1
    document = {
        "schema_version": SCHEMA_VERSION,
        "benchmark": benchmark,
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": ["python", _script_path(), *sys.argv[1:]],
        "machine": machine(),
        **data,
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path
