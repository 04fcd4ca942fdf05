"""What the report draws: one ``Chart`` per figure, serialised for the page's script.

Each chart has one x axis shared by its series (uPlot's aligned-data model); series from runs
whose intervals end at other times get ``None`` there and the line spans the gap.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from loadgen.report.loading import LoadedRun
from loadgen.report.memory import Counter, RunMemory
from loadgen.report.series import (
    IntervalSeries,
    corrected_histogram,
    is_open_model,
    spectrum_grid,
    spectrum_values,
)

# Colour-blind-safe run colours (Okabe-Ito), then a darker set when there are many runs.
RUN_COLOURS = (
    "#0072b2",
    "#d55e00",
    "#009e73",
    "#cc79a7",
    "#e69f00",
    "#56b4e9",
    "#000000",
    "#7f5a00",
)
PERCENTILE_COLOURS = {
    "p50": "#009e73",
    "p90": "#0072b2",
    "p99": "#e69f00",
    "max": "#d55e00",
    "raw p99": "#e69f00",
}
ERROR_COLOURS = {
    "refused": "#d55e00",
    "reset": "#cc79a7",
    "timeout": "#e69f00",
    "eof": "#0072b2",
    "verify": "#000000",
    "no_buffers": "#56b4e9",
    "unreachable": "#f0e442",
    "address_unavailable": "#009e73",
    "other": "#7f7f7f",
}

YFormat = Literal["latency", "rate", "count", "bytes", "percent"]
XKind = Literal["seconds", "percentile"]


@dataclass(frozen=True)
class Series:
    label: str
    colour: str
    values: list[float | None]
    dash: bool = False
    points: bool = False


@dataclass(frozen=True)
class Chart:
    id: str
    title: str
    description: str
    x: list[float]
    series: list[Series]
    x_kind: XKind = "seconds"
    y_format: YFormat = "count"
    y_label: str = ""
    log_y: bool = False

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def run_colour(index: int) -> str:
    return RUN_COLOURS[index % len(RUN_COLOURS)]


def _aligned(
    columns: Sequence[tuple[list[float], list[float | None]]],
) -> tuple[list[float], list[list[float | None]]]:
    """Put several (x, y) series on one sorted x axis, ``None`` where a series has no point."""
    x_axis = sorted({x for xs, _ in columns for x in xs})
    aligned = []
    for xs, ys in columns:
        lookup = dict(zip(xs, ys, strict=True))
        aligned.append([lookup.get(x) for x in x_axis])
    return x_axis, aligned


def throughput_chart(runs: Sequence[LoadedRun], series: Sequence[IntervalSeries]) -> Chart:
    x_axis, columns = _aligned([(s.time_s, list(s.throughput_rps)) for s in series])
    return Chart(
        id="throughput",
        title="Throughput over time",
        description="Requests completed per second, each interval on its own.",
        x=x_axis,
        series=[
            Series(run.label, run_colour(i), values)
            for i, (run, values) in enumerate(zip(runs, columns, strict=True))
        ],
        y_format="rate",
        y_label="requests / s",
    )


def has_latency(run: LoadedRun) -> bool:
    """A run that completed no request has no latency to draw."""
    return run.result.summary.latency_us.count > 0


def latency_charts(runs: Sequence[LoadedRun], series: Sequence[IntervalSeries]) -> list[Chart]:
    """One chart per run that completed requests."""
    charts = []
    for index, (run, data) in enumerate(zip(runs, series, strict=True)):
        if not has_latency(run):
            continue
        charts.append(
            Chart(
                id=f"latency-{index}",
                title=run.label,
                description="p50, p90, p99 and maximum of each interval's own histogram "
                "(log scale)."
                + (
                    " Measured from each request's intended send time (corrected for "
                    "coordinated omission); dashed: raw p99, from the actual send."
                    if is_open_model(run)
                    else ""
                ),
                x=data.time_s,
                series=[
                    Series(name, PERCENTILE_COLOURS[name], values, dash=name.startswith("raw"))
                    for name, values in data.latency_us.items()
                ],
                y_format="latency",
                y_label="latency",
                log_y=True,
            )
        )
    return charts


def spectrum_chart(all_runs: Sequence[LoadedRun]) -> Chart | None:
    """Every run that completed requests on one chart; None when no run did."""
    indexed = [(index, run) for index, run in enumerate(all_runs) if has_latency(run)]
    if not indexed:
        return None
    colours = [run_colour(index) for index, _ in indexed]
    runs = [run for _, run in indexed]
    raw = [run.result.histogram("latency") for run in runs]
    corrected = [corrected_histogram(run) for run in runs]
    totals = [h.total_count for h in raw] + [h.total_count for h in corrected if h is not None]
    grid = spectrum_grid(totals)
    curves = []
    for index, run in enumerate(runs):
        colour = colours[index]
        if corrected[index] is None:
            curves.append(Series(run.label, colour, spectrum_values(raw[index], grid)))
            continue
        histogram = corrected[index]
        assert histogram is not None  # for mypy: checked just above
        curves.append(Series(f"{run.label} (corrected)", colour, spectrum_values(histogram, grid)))
        curves.append(
            Series(f"{run.label} (raw)", colour, spectrum_values(raw[index], grid), dash=True)
        )
    has_corrected = any(h is not None for h in corrected)
    return Chart(
        id="spectrum",
        title="Latency by percentile",
        description="The whole latency distribution of each run: the x axis stretches the "
        "tail (90%, 99%, 99.9%, ... are evenly spaced), so rare slow requests stay visible."
        + (
            " Solid: corrected for coordinated omission (measured from the intended send "
            "time); dashed: raw."
            if has_corrected
            else ""
        ),
        x=grid,
        series=curves,
        x_kind="percentile",
        y_format="latency",
        y_label="latency",
        log_y=True,
    )


def error_charts(runs: Sequence[LoadedRun], series: Sequence[IntervalSeries]) -> list[Chart]:
    charts = []
    for index, (run, data) in enumerate(zip(runs, series, strict=True)):
        if not data.errors_per_s:
            continue
        charts.append(
            Chart(
                id=f"errors-{index}",
                title=f"Errors over time: {run.label}",
                description="Errors per second, by kind.",
                x=data.time_s,
                series=[
                    Series(
                        kind,
                        ERROR_COLOURS.get(kind, "#7f7f7f"),
                        list[float | None](values),
                        points=True,
                    )
                    for kind, values in data.errors_per_s.items()
                ],
                y_format="rate",
                y_label="errors / s",
            )
        )
    return charts


def connections_chart(runs: Sequence[LoadedRun], series: Sequence[IntervalSeries]) -> Chart | None:
    """``None`` when no run records connections per interval."""
    with_data = [
        (run, index, data)
        for index, (run, data) in enumerate(zip(runs, series, strict=True))
        if data.connections is not None
    ]
    if not with_data:
        return None
    x_axis, columns = _aligned([(data.time_s, data.connections or []) for _, _, data in with_data])
    return Chart(
        id="connections",
        title="Open connections over time",
        description="Connections open at the end of each interval.",
        x=x_axis,
        series=[
            Series(run.label, run_colour(index), values)
            for (run, index, _), values in zip(with_data, columns, strict=True)
        ],
        y_format="count",
        y_label="connections",
    )


def memory_charts(runs: Sequence[LoadedRun], memory: Sequence[RunMemory | None]) -> list[Chart]:
    """Kernel non-pageable growth, engine-posted receive bytes and RSS over time, every run
    that measured them overlaid; a quantity no run measured gets no chart."""
    charts = []
    specs: tuple[tuple[str, str, str, Callable[[RunMemory], Counter], bool], ...] = (
        (
            "memory-kernel",
            "Kernel non-pageable memory, change since the run's start",
            "Linux: SUnreclaim + TCP socket buffer pages + VmPin (system-wide: with a built-in "
            "target on loopback, both ends of every connection count); Windows: the process's "
            "nonpaged-pool quota. Zero is the first sample, taken before connections opened.",
            lambda m: m.kernel,
            True,
        ),
        (
            "memory-posted",
            "Receive buffers posted by the engine",
            "Bytes of user memory handed to the kernel for receives at each sample (exact: the "
            "engine counts them). Zero-byte receives post none.",
            lambda m: m.posted,
            False,
        ),
        (
            "memory-rss",
            "Generator resident memory (RSS)",
            "The load generator process's resident set (VmRSS).",
            lambda m: m.rss,
            False,
        ),
    )
    for chart_id, title, description, pick, relative in specs:
        drawn = [
            (index, run, data, pick(data))
            for index, (run, data) in enumerate(zip(runs, memory, strict=True))
            if data is not None and pick(data).measured
        ]
        if not drawn:
            continue
        columns = []
        for _, _, data, counter in drawn:
            base = counter.start if relative else 0
            values: list[float | None] = [
                None if v is None or base is None else float(v - base) for v in counter.values
            ]
            columns.append((data.time_s, values))
        x_axis, aligned = _aligned(columns)
        charts.append(
            Chart(
                id=chart_id,
                title=title,
                description=description,
                x=x_axis,
                series=[
                    Series(run.label, run_colour(index), values)
                    for (index, run, _, _), values in zip(drawn, aligned, strict=True)
                ],
                y_format="bytes",
                y_label="bytes" if not relative else "change (bytes)",
            )
        )
    return charts


def generator_cpu_chart(runs: Sequence[LoadedRun]) -> Chart | None:
    """The generator's CPU share per interval, each run overlaid; None when no run has it."""
    columns = []
    drawn = []
    for index, run in enumerate(runs):
        intervals = run.result.intervals
        if not any(i.cpu_percent is not None for i in intervals):
            continue
        drawn.append((index, run))
        columns.append(
            (
                [round(i.start_s + i.duration_s, 6) for i in intervals],
                [i.cpu_percent for i in intervals],
            )
        )
    if not drawn:
        return None
    x_axis, aligned = _aligned(columns)
    limits = {
        run.result.self_check.cpu_limit_percent
        for _, run in drawn
        if run.result.self_check is not None
    }
    series = [
        Series(run.label, run_colour(index), values)
        for (index, run), values in zip(drawn, aligned, strict=True)
    ]
    for limit in sorted(limits):
        series.append(Series(f"bound {limit:g}%", "#b42318", [limit] * len(x_axis), dash=True))
    return Chart(
        id="generator-cpu",
        title="Generator CPU over time",
        description="The load generator's own CPU time per second of each interval (100% is "
        "one core). Dashed: the bound above which the run is invalid.",
        x=x_axis,
        series=series,
        y_format="percent",
        y_label="CPU",
    )
