"""What the report draws: one ``Chart`` per figure, serialised for the page's script.

Each chart has one x axis shared by its series (uPlot's aligned-data model); series from runs
whose intervals end at other times get ``None`` there and the line spans the gap.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

from loadgen.report.loading import LoadedRun
from loadgen.report.memory import Counter, RunMemory
from loadgen.report.series import (
    IntervalSeries,
    corrected_histogram,
    is_open_model,
    scheduled_overall,
    scheduled_rates,
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
    #: What the legend shows when no point is hovered: the whole run's value where there is
    #: one (its throughput, its p99), else the last point (``finish`` fills that in).
    overall: float | None = None
    width: float = 2.0


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
    #: The legend's x cell when nothing is hovered: "whole run" when the series' ``overall``
    #: values are the run's own, "last" when they are the last points.
    overall_label: str = "last"
    #: One series per run: later runs are drawn thinner over earlier ones, so that identical
    #: series stay visible (``finish`` sets the widths).
    overlay: bool = False
    x_range: tuple[float, float] | None = None  # shared by every time chart (``finish``)
    y_range: tuple[float, float] | None = None  # shared by every run's latency chart

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _last(values: Sequence[float | None]) -> float | None:
    return next((v for v in reversed(values) if v is not None), None)


#: Line widths of overlaid runs, first run widest: a later identical line lies inside it.
OVERLAY_WIDTHS = (5.0, 3.0, 1.6, 1.2)


def finish(charts: Sequence[Chart]) -> list[Chart]:
    """What every chart of a page shares: one x range for every time chart (0 to the
    longest run), the legend's resting values, and overlay widths with a word on series
    that are identical to an earlier one (one would hide the other)."""
    ends = [max(c.x) for c in charts if c.x_kind == "seconds" and c.x]
    x_range = (0.0, max(ends)) if ends else None
    finished = []
    for chart in charts:
        series = []
        for index, line in enumerate(chart.series):
            overall = line.overall if line.overall is not None else _last(line.values)
            label, width = line.label, line.width
            if chart.overlay and len(chart.series) > 1:
                width = OVERLAY_WIDTHS[min(index, len(OVERLAY_WIDTHS) - 1)]
                same = next(
                    (s.label for s in chart.series[:index] if s.values == line.values), None
                )
                if same is not None:
                    label += f" (identical to {same})"
            series.append(replace(line, overall=overall, label=label, width=width))
        seconds = chart.x_kind == "seconds"
        finished.append(replace(chart, series=series, x_range=x_range if seconds else None))
    return finished


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
    """Each run's throughput per interval; for an open-model run also the rate its schedule
    asked for (dashed, same colour): a ramp that was not kept shows as a gap between them."""
    columns: list[tuple[list[float], list[float | None]]] = []
    lines: list[tuple[str, str, bool, float | None]] = []
    for index, (run, data) in enumerate(zip(runs, series, strict=True)):
        columns.append((data.time_s, list(data.throughput_rps)))
        lines.append((run.label, run_colour(index), False, run.result.summary.throughput_rps))
        scheduled = scheduled_rates(run)
        if scheduled is not None:
            columns.append((data.time_s, scheduled))
            lines.append(
                (f"{run.label}: scheduled", run_colour(index), True, scheduled_overall(run))
            )
    x_axis, aligned = _aligned(columns)
    scheduled_any = any(dash for _, _, dash, _ in lines)
    return Chart(
        id="throughput",
        title="Throughput over time",
        description="Requests completed per second, each interval on its own."
        + (
            " Dashed: the rate the open-model schedule asked for in that interval."
            if scheduled_any
            else ""
        ),
        x=x_axis,
        series=[
            Series(label, colour, values, dash=dash, overall=overall)
            for (label, colour, dash, overall), values in zip(lines, aligned, strict=True)
        ],
        y_format="rate",
        y_label="requests / s",
        overall_label="whole run",
        overlay=not scheduled_any,
    )


def has_latency(run: LoadedRun) -> bool:
    """A run that completed no request has no latency to draw."""
    return run.result.summary.latency_us.count > 0


def _overall_latency(run: LoadedRun, name: str) -> float | None:
    """The whole run's value of an interval latency line (µs): p50, p90, p99, max of the
    honest latency, raw p99 of the raw one."""
    summary = run.result.summary
    if name == "raw p99":
        return summary.latency_us.p99
    latency = summary.latency_corrected_us or summary.latency_us
    return getattr(latency, name, None)


def latency_charts(runs: Sequence[LoadedRun], series: Sequence[IntervalSeries]) -> list[Chart]:
    """One chart per run that completed requests, all on one y range (so runs compare at a
    glance: the same height is the same latency)."""
    drawn = [
        (index, run, data)
        for index, (run, data) in enumerate(zip(runs, series, strict=True))
        if has_latency(run)
    ]
    positive = [
        value
        for _, _, data in drawn
        for values in data.latency_us.values()
        for value in values
        if value is not None and value > 0
    ]
    y_range = (min(positive), max(positive)) if len(drawn) > 1 and positive else None
    charts = []
    for index, run, data in drawn:
        charts.append(
            Chart(
                id=f"latency-{index}",
                title=run.label,
                description="p50, p90, p99 and maximum of each interval's own histogram "
                "(log scale"
                + ("; every run's chart on one scale)." if y_range else ").")
                + (
                    " Measured from each request's intended send time (corrected for "
                    "coordinated omission); dashed: raw p99, from the actual send."
                    if is_open_model(run)
                    else ""
                ),
                x=data.time_s,
                series=[
                    Series(
                        name,
                        PERCENTILE_COLOURS[name],
                        values,
                        dash=name.startswith("raw"),
                        overall=_overall_latency(run, name),
                    )
                    for name, values in data.latency_us.items()
                ],
                y_format="latency",
                y_label="latency",
                log_y=True,
                overall_label="whole run",
                y_range=y_range,
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
        overall_label="100% (max)",
        overlay=not has_corrected,
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
                        overall=_per_second(run, run.result.summary.errors.get(kind, 0)),
                    )
                    for kind, values in data.errors_per_s.items()
                ],
                y_format="rate",
                y_label="errors / s",
                overall_label="whole run",
            )
        )
    return charts


def _per_second(run: LoadedRun, count: int) -> float | None:
    duration = run.result.summary.duration_s
    return count / duration if duration > 0 else None


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
        overlay=True,
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
                overlay=True,
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
        Series(run.label, run_colour(index), values, overall=run.result.generator.cpu_percent)
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
        overall_label="whole run",
    )
