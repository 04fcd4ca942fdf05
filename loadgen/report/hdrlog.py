"""A run's interval histograms in the HdrHistogram log format (``--hdr-log``).

The format of HdrHistogram's ``HistogramLogWriter`` (version 1.3), which HdrHistogram's own
tools (HistogramLogProcessor, the plotter) and the ``hdrhistogram`` package read::

    #[Histogram log format version 1.3]
    #[StartTime: 1700000000.000 (seconds since epoch), 2023-11-14T22:13:20.000Z]
    #[BaseTime: 1700000000.000 (seconds since epoch)]
    "StartTimestamp","Interval_Length","Interval_Max","Interval_Compressed_Histogram"
    0.000,1.000,2.769,HISTFAAAA...

One line per interval: its start relative to BaseTime and its length in seconds, its largest
value in milliseconds (the writer's default ``maxValueUnitRatio`` of 10**6 on nanosecond
values), and that interval's histogram in the compressed V2 encoding. Values are nanoseconds.

Untagged lines hold the run's honest request latency: in the open model the latency from each
request's intended send time (corrected for coordinated omission), in the closed model the
only one there is. Open-model runs add the raw latency (from the actual send) on lines tagged
``Tag=raw``, which HdrHistogram's log readers keep apart by tag.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from loadgen import __version__
from loadgen.result.files import write_atomically
from loadgen.result.model import Interval, RunResult
from loadgen.stats.histogram import HdrHistogram

LOG_FORMAT_VERSION = "1.3"
#: Interval_Max column unit: HistogramLogWriter's default ratio, nanoseconds to milliseconds.
MAX_VALUE_UNIT_RATIO = 1_000_000
LEGEND = '"StartTimestamp","Interval_Length","Interval_Max","Interval_Compressed_Histogram"'


def start_time_s(result: RunResult) -> float:
    """The run's start in seconds since the epoch (``started_at`` is ISO 8601 UTC)."""
    return datetime.fromisoformat(result.started_at.replace("Z", "+00:00")).timestamp()


def format_hdr_log(result: RunResult) -> str:
    """The whole log as text: header comments, legend, one line per interval."""
    start = start_time_s(result)
    open_model = result.summary.latency_corrected_us is not None
    lines = [
        f"#[Histogram log format version {LOG_FORMAT_VERSION}]",
        f"#[StartTime: {start:.3f} (seconds since epoch), {result.started_at}]",
        f"#[BaseTime: {start:.3f} (seconds since epoch)]",
        f"#[loadgen {__version__}: scenario {result.scenario.get('name', '?')}, request "
        "latency in nanoseconds, Interval_Max in milliseconds"
        + (", untagged: corrected, Tag=raw: raw]" if open_model else "]"),
        LEGEND,
    ]
    for interval in result.intervals:
        raw = HdrHistogram.from_dict(interval.latency)
        if not open_model:
            lines.append(_line(interval, raw))
            continue
        corrected = (
            HdrHistogram.from_dict(interval.latency_corrected)
            if interval.latency_corrected
            else HdrHistogram(*raw.layout)
        )
        lines.append(_line(interval, corrected))
        lines.append(_line(interval, raw, tag="raw"))
    return "\n".join(lines) + "\n"


def _line(interval: Interval, histogram: HdrHistogram, tag: str = "") -> str:
    prefix = f"Tag={tag}," if tag else ""
    return (
        f"{prefix}{interval.start_s:.3f},{interval.duration_s:.3f},"
        f"{histogram.max / MAX_VALUE_UNIT_RATIO:.3f},{histogram.encode()}"
    )


def write_hdr_log(result: RunResult, path: str | Path) -> Path:
    """Write ``format_hdr_log(result)`` to ``path`` (folders are created)."""
    return write_atomically(path, format_hdr_log(result))
