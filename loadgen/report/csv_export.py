"""CSV exports of runs, for spreadsheets and notebooks: ``--csv PREFIX`` writes two files.

* ``PREFIX_summary.csv``: one row per run: label, scenario, status, validity, duration,
  requests, throughput, errors (total and by kind), the latency statistics, bytes,
  connections, the generator's CPU and where it ran.
* ``PREFIX_intervals.csv``: one row per run and interval (a second): when it started and
  how long it lasted, requests and throughput, errors by kind, bytes, open connections, the
  generator's CPU, and p50/p90/p99/max of that interval's own latency histogram.

Latency is microseconds; the honest one, from the intended send time in the open model
(``latency_*``), and in the open model the raw one from the actual send too
(``raw_latency_*``). A value the run does not have is an empty cell, never a zero. Error
kinds are columns (``errors_refused``, ``errors_http_5xx``, ...), the same set in every row.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from loadgen.report.loading import LoadedRun
from loadgen.result.files import write_atomically
from loadgen.result.model import LatencySummary
from loadgen.stats.histogram import HdrHistogram

_STATISTICS = ("min", "mean", "p50", "p90", "p99", "p99_9", "max")
_INTERVAL_PERCENTILES = {"p50": 50.0, "p90": 90.0, "p99": 99.0}


def _latency_columns(prefix: str, latency: LatencySummary | None) -> dict[str, Any]:
    return {
        f"{prefix}_{name}_us": None if latency is None else getattr(latency, name)
        for name in _STATISTICS
    }


def _error_kinds(runs: Sequence[LoadedRun]) -> list[str]:
    kinds = {kind for run in runs for kind in run.result.summary.errors}
    kinds |= {kind for run in runs for i in run.result.intervals for kind in i.errors}
    return sorted(kinds)


def summary_rows(runs: Sequence[LoadedRun]) -> list[dict[str, Any]]:
    kinds = _error_kinds(runs)
    open_model = any(run.result.summary.latency_corrected_us is not None for run in runs)
    rows = []
    for run in runs:
        result = run.result
        summary = result.summary
        attempts = summary.requests + summary.error_count
        row: dict[str, Any] = {
            "label": run.label,
            "scenario": result.scenario.get("name"),
            "started_at": result.started_at,
            "status": result.stop_reason,
            "valid": None if result.self_check is None else result.self_check.valid,
            "duration_s": summary.duration_s,
            "requests": summary.requests,
            "throughput_rps": summary.throughput_rps,
            "errors": summary.error_count,
            "error_rate": summary.error_count / attempts if attempts else 0.0,
            **{f"errors_{kind}": summary.errors.get(kind, 0) for kind in kinds},
            **_latency_columns("latency", summary.latency_corrected_us or summary.latency_us),
        }
        if open_model:
            row.update(_latency_columns("raw_latency", summary.latency_us))
            lag = summary.schedule_lag_us
            row["schedule_lag_p99_us"] = None if lag is None else lag.p99
        row.update(
            {
                "connect_latency_p50_us": summary.connect_latency_us.p50,
                "connect_latency_p99_us": summary.connect_latency_us.p99,
                "connections": summary.connections,
                "connects": summary.connects,
                "bytes_sent": summary.bytes_sent,
                "bytes_received": summary.bytes_received,
                "generator_cpu_percent": result.generator.cpu_percent,
                "backend": result.environment.backend,
                "recv_mode": result.environment.recv_mode,
                "processes": result.environment.processes,
                "hostname": result.environment.hostname,
                "source": run.source,
            }
        )
        rows.append(row)
    return rows


def _interval_latency(data: dict[str, Any] | None) -> dict[str, int | None]:
    """p50, p90, p99, max (µs) of one interval's histogram; None when it holds nothing."""
    histogram = HdrHistogram.from_dict(data) if data else None
    if histogram is None or histogram.total_count == 0:
        return {name: None for name in (*_INTERVAL_PERCENTILES, "max")}
    values = histogram.percentiles(list(_INTERVAL_PERCENTILES.values()))
    found = dict(zip(_INTERVAL_PERCENTILES, values, strict=True))
    found["max"] = histogram.max
    return {name: value for name, value in found.items()}


def interval_rows(runs: Sequence[LoadedRun]) -> list[dict[str, Any]]:
    kinds = _error_kinds(runs)
    open_model = any(run.result.summary.latency_corrected_us is not None for run in runs)
    rows = []
    for run in runs:
        corrected = run.result.summary.latency_corrected_us is not None
        for interval in run.result.intervals:
            honest = _interval_latency(
                interval.latency_corrected if corrected else interval.latency
            )
            row: dict[str, Any] = {
                "label": run.label,
                "index": interval.index,
                "start_s": interval.start_s,
                "duration_s": interval.duration_s,
                "requests": interval.requests,
                "throughput_rps": (
                    round(interval.requests / interval.duration_s, 3)
                    if interval.duration_s > 0
                    else None
                ),
                "errors": sum(interval.errors.values()),
                **{f"errors_{kind}": interval.errors.get(kind, 0) for kind in kinds},
                "bytes_sent": interval.bytes_sent,
                "bytes_received": interval.bytes_received,
                "connections": interval.connections,
                "cpu_percent": interval.cpu_percent,
                **{f"latency_{k}_us": _us(v) for k, v in honest.items()},
            }
            if open_model:
                raw = _interval_latency(interval.latency) if corrected else {}
                row.update({f"raw_latency_{k}_us": _us(raw.get(k)) for k in honest})
            rows.append(row)
    return rows


def _us(value_ns: int | None) -> float | None:
    return None if value_ns is None else value_ns / 1000


def to_csv(rows: Sequence[dict[str, Any]]) -> str:
    """Rows (same keys in each) as CSV text; None is an empty cell."""
    if not rows:
        return ""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: "" if value is None else value for key, value in row.items()})
    return out.getvalue()


def csv_paths(prefix: str | Path) -> tuple[Path, Path]:
    """(summary, intervals) files for ``--csv PREFIX``."""
    base = Path(prefix)
    return (
        base.with_name(base.name + "_summary.csv"),
        base.with_name(base.name + "_intervals.csv"),
    )


def write_csv(runs: Sequence[LoadedRun], prefix: str | Path) -> list[Path]:
    """Write both files (atomically); return their paths."""
    summary_path, intervals_path = csv_paths(prefix)
    return [
        write_atomically(summary_path, to_csv(summary_rows(runs))),
        write_atomically(intervals_path, to_csv(interval_rows(runs))),
    ]
