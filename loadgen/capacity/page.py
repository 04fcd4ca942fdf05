"""A capacity search as one self-contained HTML page (``loadgen capacity --html``, or
``loadgen report CAPACITY.json``).

The same frame as the run report (``report.page``: inlined uPlot, stylesheet and chart
drawing, a Content-Security-Policy of ``default-src 'none'``, no URL anywhere) with the
search's own charts (``assets/capacity.js``): the hockey stick (latency percentiles of each
load's measured windows against the offered load, log y, the latency SLOs as dashed lines,
the capacity as a dashed vertical line), achieved against offered load, and every step's
latency spectrum overlaid. Every number is also in the steps table, so the page reads
without JavaScript; any step renders as a run report with ``loadgen report FILE --step N``.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Sequence
from datetime import datetime
from html import escape
from pathlib import Path
from typing import Any

from loadgen.capacity.console import expectation_met, step_cells
from loadgen.capacity.model import CapacityResult, Status, Step, StepVerdict, Vary
from loadgen.capacity.text import format_load
from loadgen.capacity.window import measured_window
from loadgen.config.thresholds import Threshold
from loadgen.report.charts import PERCENTILE_COLOURS
from loadgen.report.html_tables import environment_table
from loadgen.report.loading import from_result
from loadgen.report.page import generated_text, page_section, render_sections_page
from loadgen.report.series import spectrum_grid, spectrum_values
from loadgen.result.files import write_atomically

_LATENCY_STATS = ("min", "mean", "p50", "p90", "p99", "p99_9", "max")
_SLO_COLOUR = "#b42318"
_CAPACITY_COLOUR = "#009e73"
#: Steps' spectra run from the lowest load (light blue) to the highest (vermillion).
_LOW_RGB, _HIGH_RGB = (0x56, 0xB4, 0xE9), (0xD5, 0x5E, 0x00)
_PERCENTILES = (("p50", "p50"), ("p99", "p99"), ("p99_9", "p99.9"))


def _ramp(position: float) -> str:
    channels = (round(a + (b - a) * position) for a, b in zip(_LOW_RGB, _HIGH_RGB, strict=True))
    return "#" + "".join(f"{value:02x}" for value in channels)


def _by_load(steps: Sequence[Step]) -> dict[float, list[Step]]:
    groups: dict[float, list[Step]] = {}
    for step in sorted(steps, key=lambda s: s.offered):
        groups.setdefault(step.offered, []).append(step)
    return groups


def _median(steps: Sequence[Step], pick: Callable[[Step], float | None]) -> float | None:
    values = [value for value in (pick(step) for step in steps) if value is not None]
    return statistics.median(values) if values else None


def _measured(result: CapacityResult) -> list[Step]:
    """Steps that measured the target (a saturated or stopped step measured nothing)."""
    return [s for s in result.steps if s.verdict in (StepVerdict.PASS, StepVerdict.FAIL)]


def _marker(result: CapacityResult) -> dict[str, Any] | None:
    capacity = result.outcome.capacity
    if capacity is None:
        return None
    status = result.outcome.status
    word = "at least " if status in (Status.GENERATOR_LIMITED, Status.ABOVE_MAX) else ""
    label = f"capacity {word}{format_load(capacity, result.settings.vary)}"
    return {"x": capacity, "label": label, "colour": _CAPACITY_COLOUR}


def hockey_chart(result: CapacityResult) -> dict[str, Any] | None:
    groups = _by_load(_measured(result))
    if not groups:
        return None
    loads = list(groups)
    series: list[dict[str, Any]] = []
    for key, name in _PERCENTILES:
        values = [
            _median(steps, lambda s, k=key: getattr(s.window.latency_us, k))  # type: ignore[misc]
            for steps in groups.values()
        ]
        colour = PERCENTILE_COLOURS["max" if key == "p99_9" else key]
        series.append({"label": name, "colour": colour, "values": values})
    for expression in result.settings.slos:
        slo = Threshold.parse(expression)
        if slo.metric.removeprefix("raw_") in _LATENCY_STATS and slo.op in ("<", "<="):
            limit_us = slo.limit * 1e6
            series.append(
                {
                    "label": f"SLO {slo.expression}",
                    "colour": _SLO_COLOUR,
                    "values": [limit_us] * len(loads),
                    "dash": True,
                    "points": False,
                }
            )
    failed = [
        _median(steps, lambda s: s.window.latency_us.p99)
        if not all(s.passed for s in steps)
        else None
        for steps in groups.values()
    ]
    if any(value is not None for value in failed):
        series.append(
            {
                "label": "a step there broke an SLO (p99)",
                "colour": _SLO_COLOUR,
                "values": failed,
                "points_only": True,
            }
        )
    honest = "corrected " if result.settings.vary is Vary.RATE else ""
    return {
        "id": "hockey",
        "title": "Latency against offered load",
        "description": f"{honest}p50, p99 and p99.9 of each step's measured window (the median "
        "over the steps at one load), log scale; dashed: the latency SLOs; the vertical "
        "line: the capacity found.",
        "x": loads,
        "x_kind": result.settings.vary.value,
        "series": series,
        "y_format": "latency",
        "y_label": "latency",
        "log_y": True,
        "marker": _marker(result),
    }


def achieved_chart(result: CapacityResult) -> dict[str, Any] | None:
    groups = _by_load(_measured(result))
    if not groups:
        return None
    loads = list(groups)
    achieved = [_median(steps, lambda s: s.window.achieved_rps) for steps in groups.values()]
    series: list[dict[str, Any]] = [
        {"label": "achieved", "colour": "#0072b2", "values": achieved},
    ]
    if result.settings.vary is Vary.RATE:
        series.append(
            {
                "label": "offered",
                "colour": "#7f7f7f",
                "values": loads,
                "dash": True,
                "points": False,
            }
        )
    return {
        "id": "achieved",
        "title": "Achieved against offered load",
        "description": "Responses per second in each step's measured window (the median over "
        "the steps at one load)"
        + ("; dashed: the offered rate." if result.settings.vary is Vary.RATE else "."),
        "x": loads,
        "x_kind": result.settings.vary.value,
        "series": series,
        "y_format": "rate",
        "y_label": "responses / s",
        "marker": _marker(result),
    }


def spectrum_chart(result: CapacityResult) -> dict[str, Any] | None:
    steps = [s for s in _measured(result) if s.window.latency_us.count > 0]
    if not steps:
        return None
    histograms = [measured_window(s.result, result.settings.warmup_s).latency for s in steps]
    grid = spectrum_grid([h.total_count for h in histograms])
    loads = sorted({s.offered for s in steps})
    series = []
    for step, histogram in sorted(zip(steps, histograms, strict=True), key=lambda p: p[0].offered):
        position = loads.index(step.offered) / max(1, len(loads) - 1)
        series.append(
            {
                "label": f"step {step.index}: {format_load(step.offered, result.settings.vary)}"
                f" ({step.verdict.value})",
                "colour": _ramp(position),
                "values": spectrum_values(histogram, grid),
                "dash": not step.passed,
            }
        )
    return {
        "id": "spectrum",
        "title": "Latency by percentile, every step",
        "description": "Each step's measured window: the x axis stretches the tail (90%, "
        "99%, 99.9%, ... evenly spaced); light to dark: low to high load; dashed: the step "
        "broke an SLO.",
        "x": grid,
        "x_kind": "percentile",
        "series": series,
        "y_format": "latency",
        "y_label": "latency",
        "log_y": True,
    }


def error_chart(result: CapacityResult) -> dict[str, Any] | None:
    groups = _by_load(_measured(result))
    if not any(s.window.error_count for steps in groups.values() for s in steps):
        return None

    def rate(step: Step) -> float:
        attempts = step.window.requests + step.window.error_count
        return 100.0 * step.window.error_count / attempts if attempts else 0.0

    return {
        "id": "errors",
        "title": "Errors against offered load",
        "description": "Errors / (responses + errors) in each step's measured window.",
        "x": list(groups),
        "x_kind": result.settings.vary.value,
        "series": [
            {
                "label": "error rate",
                "colour": "#d55e00",
                "values": [_median(steps, rate) for steps in groups.values()],
            }
        ],
        "y_format": "percent",
        "y_label": "errors",
        "marker": _marker(result),
    }


def _at_rest(chart: dict[str, Any] | None, at: float | None, label: str) -> dict[str, Any] | None:
    """The legend's values while no point is hovered (``charts.js``): each series' value at
    x = ``at`` when the chart has that point, else its last value."""
    if chart is None:
        return None
    x = chart["x"]
    index = x.index(at) if at is not None and at in x else None
    for series in chart["series"]:
        values = series["values"]
        if index is not None:
            series["overall"] = values[index]
        else:
            known = [value for value in values if value is not None]
            series["overall"] = known[-1] if known else None
    chart["overall_label"] = label if index is not None else "last"
    return chart


def _figure(chart: dict[str, Any]) -> str:
    return (
        f'<figure class="chart" id="figure-{escape(chart["id"])}">'
        f"<figcaption><strong>{escape(chart['title'])}</strong>"
        f"<span>{escape(chart['description'])}</span></figcaption>"
        f'<div class="plot" data-chart="{escape(chart["id"])}"></div>'
        '<noscript><p class="note">This chart needs JavaScript; the steps table on this '
        "page holds its numbers.</p></noscript></figure>"
    )


def _section(anchor: str, title: str, lead: str, content: str) -> tuple[str, str, str]:
    """``page_section`` with a plain-text lead."""
    return page_section(anchor, title, escape(lead), content)


_BADGES = {
    Status.PROVEN: "good",
    Status.ABOVE_MAX: "good",
    Status.NOT_PROVEN: "warn",
    Status.UNCONFIRMED: "warn",
    Status.GENERATOR_LIMITED: "warn",
    Status.INTERRUPTED: "warn",
    Status.BELOW_START: "bad",
    Status.FAILED: "bad",
}


def answer_html(result: CapacityResult) -> str:
    outcome = result.outcome
    settings = result.settings
    badge = f'<span class="badge {_BADGES[outcome.status]}">{escape(outcome.status.value)}</span>'
    parts = [f'<p class="lead">{badge} {escape(outcome.message)}</p>']
    if outcome.status is Status.GENERATOR_LIMITED:
        parts.insert(
            0,
            '<div class="invalid" role="alert"><strong>The generator was the bottleneck'
            "</strong><p>The search stopped where this generator could not offer more load; "
            "the capacity shown is what the target sustained before, a lower bound.</p></div>",
        )
    if settings.expect_at_least is not None:
        met = expectation_met(result)
        parts.append(
            f'<p><span class="badge {"good" if met else "bad"}">'
            f"{'met' if met else 'not met'}</span> expected at least "
            f"{escape(format_load(settings.expect_at_least, settings.vary))}</p>"
        )
    if outcome.notes:
        parts.append("<ul>" + "".join(f"<li>{escape(n)}</li>" for n in outcome.notes) + "</ul>")
    rows = [
        ("SLOs", ", ".join(settings.slos)),
        ("varied", f"{settings.vary.value} ({settings.unit})"),
        ("start", format_load(settings.start, settings.vary)),
        ("max", format_load(settings.maximum, settings.vary)),
        ("step", f"{settings.warmup_s:g} s warm-up + {settings.step_duration_s:g} s measured"),
        ("precision", f"{settings.precision * 100:.3g}%"),
        ("confirm", str(settings.confirm)),
        ("steps run", str(len(result.steps))),
        ("started", result.started_at),
    ]
    parts.append(_grid(["setting", "value"], [[k, v] for k, v in rows], labels=1))
    return "".join(parts)


def _grid(head: Sequence[str], rows: Sequence[Sequence[str]], labels: int) -> str:
    header = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join(
        "<tr>"
        + "".join(
            f"<th>{escape(cell)}</th>" if i < labels else f'<td class="num">{escape(cell)}</td>'
            for i, cell in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f'<table class="grid"><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table>'


def steps_table(result: CapacityResult) -> str:
    head = ["step", "phase", "offered", "achieved", "connections", "p50", "p99", "p99.9"]
    head += ["errors", "verdict", "drain after"]
    rows = []
    for step in result.steps:
        drain = step.drain
        drained = (
            "\u2013"
            if drain is None or drain.probes == 0
            else f"{drain.seconds:.1f} s, {drain.probes} probes"
            + ("" if drain.drained else " (not drained)")
        )
        verdict = step.verdict.value + (f": {step.note}" if step.note else "")
        rows.append([*step_cells(step, result.settings), verdict, drained])
    return f'<div class="scroll">{_grid(head, rows, labels=2)}</div>'


def _sections(result: CapacityResult) -> tuple[list[tuple[str, str, str]], list[dict[str, Any]]]:
    capacity = result.outcome.capacity
    at = f"at {format_load(capacity, result.settings.vary)}"
    candidates = (
        _at_rest(hockey_chart(result), capacity, at),
        _at_rest(achieved_chart(result), capacity, at),
        _at_rest(spectrum_chart(result), None, "max"),
    )
    hockey, achieved, spectrum = candidates
    errors = _at_rest(error_chart(result), capacity, at)
    charts = [c for c in (*candidates, errors) if c is not None]
    style = (
        "<style>.scroll { overflow-x: auto; } table.grid td.num { white-space: nowrap; }</style>"
    )
    sections = [_section("answer", "Answer", "", style + answer_html(result))]
    if hockey is not None:
        sections.append(
            _section(
                "hockey",
                "Latency against load",
                "Each step is a fresh run at one load: a warm-up, discarded, then the "
                "measured window. A step passes when every SLO holds in its window.",
                _figure(hockey),
            )
        )
    for chart in (achieved, spectrum, errors):
        if chart is not None:
            sections.append(_section(chart["id"], chart["title"], "", _figure(chart)))
    first = result.steps[0] if result.steps else None
    sections.append(
        _section(
            "steps",
            "Steps",
            "In the order run. Latency: the measured window's (corrected for coordinated "
            "omission in the open model). Render one step as a run report with "
            "`loadgen report FILE --step N`.",
            steps_table(result),
        )
    )
    environment = (
        environment_table([from_result(first.result, label="first step")]) if first else ""
    )
    scenario = escape(json.dumps(result.scenario, indent=2, sort_keys=True))
    sections.append(
        _section(
            "environment",
            "Environment",
            "",
            environment + f"<details><summary>Scenario</summary><pre>{scenario}</pre></details>",
        )
    )
    return sections, charts


def render_capacity_html(result: CapacityResult, generated: datetime | None = None) -> str:
    sections, charts = _sections(result)
    name = str(result.scenario.get("name", "run"))
    heading = f"loadgen capacity: {name}"
    when = generated_text(generated)
    capacity = format_load(result.outcome.capacity, result.settings.vary)
    return render_sections_page(
        title=f"{heading} ({result.outcome.status.value}: {capacity})",
        heading=heading,
        meta=f"{result.outcome.status.value} · {len(result.steps)} steps · SLOs "
        f"{', '.join(result.settings.slos)} · started {result.started_at}",
        sections=sections,
        charts=charts,
        script="capacity.js",
        generated=when,
    )


def write_capacity_html(result: CapacityResult, path: str | Path) -> Path:
    return write_atomically(path, render_capacity_html(result))
