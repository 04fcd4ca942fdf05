"""The receive-mode study as one self-contained HTML page (``loadgen recv-modes``).

The same frame as the run report (``page``: inlined uPlot, stylesheet and chart drawing, a
Content-Security-Policy of ``default-src 'none'``, no URL anywhere), with the study's own
sections and chart options (``assets/study.js``: x is the connection count, one line per mode,
idle solid and under traffic dashed). Every number of the charts is also in a table, so the
page reads without JavaScript.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from html import escape
from pathlib import Path
from typing import Any

from loadgen.report.charts import run_colour
from loadgen.report.page import generated_text, page_section, render_sections_page
from loadgen.result.files import write_atomically
from loadgen.study.result import PHASES, Group, Spread, StudyResult
from loadgen.study.text import (
    bytes_scale,
    latency_scale,
    rate,
    rate_scale,
    signed_bytes,
    with_spread,
)

PHASE_LABELS = {"idle": "idle", "traffic": "under traffic"}


def _median(spread: Spread) -> float | None:
    return spread.median


def _counts(study: StudyResult) -> list[int]:
    return sorted({group.connections for group in study.groups})


def _modes(study: StudyResult) -> list[str]:
    return list(dict.fromkeys(group.mode for group in study.groups))


def _lookup(study: StudyResult, count: int, mode: str) -> Group | None:
    try:
        return study.group(count, mode)
    except KeyError:
        return None


def _series(
    study: StudyResult,
    pick: Callable[[Group], Spread],
    label: str,
    dash: bool,
    index: int,
    mode: str,
    *,
    memory: bool = False,
) -> dict[str, Any]:
    """One line of a chart; for memory per connection, a median below zero (the counter
    fell while the connections were open: noise, not memory given back) is no point."""
    values = []
    noise = False
    for count in _counts(study):
        group = _lookup(study, count, mode)
        value = None if group is None else _median(pick(group))
        noise = memory and value is not None and value < 0
        values.append(None if noise else value)
    return {
        "label": label,
        "colour": run_colour(index),
        "values": values,
        "dash": dash,
        # The legend at rest: the value at the largest count, or why there is none there.
        "overall": values[-1] if values else None,
        "overall_text": "below 0: noise" if noise else None,
    }


def _below_zero(study: StudyResult, metric: str) -> list[str]:
    """``buffered, idle at 1,000`` for each memory median below zero (left out of charts)."""
    found = []
    for group in study.groups:
        for phase in ("idle", "traffic"):
            median = group.per_connection[phase][metric].median
            if median is not None and median < 0:
                found.append(f"{group.mode}, {PHASE_LABELS[phase]} at {group.connections:,}")
    return found


def memory_chart(study: StudyResult, metric: str) -> dict[str, Any] | None:
    """Per connection vs connection count: one line per mode and phase; None when the
    metric was measured nowhere (its reason goes in the page instead)."""
    info = study.metric(metric)
    series = []
    for index, mode in enumerate(_modes(study)):
        for phase, dash in (("idle", False), ("traffic", True)):
            series.append(
                _series(
                    study,
                    lambda g, p=phase: g.per_connection[p][metric],  # type: ignore[misc]
                    f"{mode}, {PHASE_LABELS[phase]}",
                    dash,
                    index,
                    mode,
                    memory=True,
                )
            )
    if all(v is None for s in series for v in s["values"]):
        return None
    for index, line in enumerate(series):  # one point hides another: say which
        same = next((s["label"] for s in series[:index] if s["values"] == line["values"]), None)
        if same is not None:
            line["label"] += f" (identical to {same})"
    below = _below_zero(study, metric)
    return {
        "id": f"memory-{metric}",
        "title": f"{info.label} per connection",
        "description": info.description
        + (
            f" Below zero, so within the counter's noise and not drawn: {'; '.join(below)}."
            if below
            else ""
        ),
        "x": _counts(study),
        "series": series,
        "y_format": "bytes",
        "y_label": "bytes per connection",
        "overall_label": "largest count",
    }


def cost_charts(study: StudyResult) -> list[dict[str, Any]]:
    """Throughput and latency under traffic, per mode, vs connection count."""
    modes = _modes(study)
    throughput = [
        _series(study, lambda g: g.throughput_rps, mode, False, i, mode)
        for i, mode in enumerate(modes)
    ]
    latencies = []
    for i, mode in enumerate(modes):
        latencies.append(_series(study, lambda g: g.latency_p50_us, f"{mode} p50", False, i, mode))
        latencies.append(_series(study, lambda g: g.latency_p99_us, f"{mode} p99", True, i, mode))
    charts = []
    if any(v is not None for s in throughput for v in s["values"]):
        charts.append(
            {
                "id": "throughput",
                "title": "Throughput under traffic",
                "description": "replies per second, every connection in a closed loop",
                "x": _counts(study),
                "series": throughput,
                "y_format": "rate",
                "y_label": "replies per second",
                "overall_label": "largest count",
            }
        )
    if any(v is not None for s in latencies for v in s["values"]):
        charts.append(
            {
                "id": "latency",
                "title": "Latency under traffic",
                "description": "p50 solid with filled points, p99 dashed with hollow ones",
                "x": _counts(study),
                "series": latencies,
                "y_format": "latency",
                "y_label": "latency",
                "overall_label": "largest count",
            }
        )
    return charts


def _figure(chart: dict[str, Any]) -> str:
    return (
        f'<figure class="chart" id="figure-{escape(chart["id"])}">'
        f"<figcaption><strong>{escape(chart['title'])}</strong>"
        f"<span>{escape(chart['description'])}</span></figcaption>"
        f'<div class="plot" data-chart="{escape(chart["id"])}"></div>'
        '<noscript><p class="note">This chart needs JavaScript; the tables on this page '
        "hold its numbers.</p></noscript></figure>"
    )


class Html(str):
    """A table cell that is HTML already (escaped parts and tags of our own)."""


def _cell_html(cell: str) -> str:
    return cell if isinstance(cell, Html) else escape(cell)


def _table(
    head: Sequence[str], rows: Sequence[Sequence[str]], labels: int = 2, text: int | None = None
) -> str:
    """A grid whose first ``labels`` cells of a row are row headings, the rest numbers (kept
    on one line); column ``text`` (notes) wraps like prose."""
    header = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join(
        "<tr>"
        + "".join(
            f"<th>{_cell_html(cell)}</th>"
            if i < labels
            else f'<td class="{"note" if i == text else "num"}">{_cell_html(cell)}</td>'
            for i, cell in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    table = f'<table class="grid study"><thead><tr>{header}</tr></thead><tbody>{body}</tbody>'
    return f'<div class="scroll">{table}</table></div>'


def _spread_html(spread: Spread, scale: Callable[[float], tuple[float, str]]) -> Html:
    """``5.36 KiB`` and, on a line of its own, the range over the repeats: narrow columns."""
    text = with_spread(spread, scale)
    median, bracket, rest = text.partition(" (")
    if not bracket:
        return Html(escape(text))
    spread_text, _, unit = rest.rpartition(") ")
    return Html(
        f'{escape(median)} {escape(unit)}<br><span class="range">{escape(spread_text)}</span>'
    )


def summary_table(study: StudyResult) -> str:
    """One row per (connections, mode, phase), one column per measured metric."""
    measured = [m for m in study.metrics if m.reason is None]
    head = ["connections", "mode", "phase", *(m.label for m in measured)]
    rows = []
    for group in study.groups:
        for phase in PHASES:
            values = group.per_connection[phase]
            rows.append(
                [
                    f"{group.connections:,}",
                    group.mode,
                    PHASE_LABELS[phase],
                    *(_memory_cell(values[m.name]) for m in measured),
                ]
            )
    return _table(head, rows, labels=3)


def _memory_cell(spread: Spread) -> str:
    """A median per connection; below zero it is the counter's noise and says so."""
    cell = _spread_html(spread, bytes_scale)
    return Html(cell + " (noise)") if spread.median is not None and spread.median < 0 else cell


def cost_table(study: StudyResult) -> str:
    rows = [
        [
            f"{g.connections:,}",
            g.mode,
            _spread_html(g.throughput_rps, rate_scale),
            _spread_html(g.latency_p50_us, latency_scale),
            _spread_html(g.latency_p99_us, latency_scale),
            f"{g.repeats - g.not_returned}/{g.repeats}",
        ]
        for g in study.groups
    ]
    head = ["connections", "mode", "throughput", "p50", "p99", "memory returned"]
    return _table(head, rows)


def trials_table(study: StudyResult) -> str:
    rows = [
        [
            f"{t.connections:,}",
            t.mode,
            str(t.repeat + 1),
            signed_bytes(t.per_connection["idle"].get("kernel")),
            signed_bytes(t.per_connection["traffic"].get("kernel")),
            signed_bytes(t.per_connection["after"].get("kernel")),
            signed_bytes(t.per_connection["idle"].get("posted")),
            signed_bytes(t.per_connection["idle"].get("rss")),
            f"{t.idle_samples}/{t.traffic_samples}",
            rate(t.throughput_rps),
            "; ".join(t.notes) or "\u2013",
        ]
        for t in study.trials
    ]
    head = [
        "connections",
        "mode",
        "repeat",
        "kernel idle",
        "kernel traffic",
        "kernel after close",
        "posted idle",
        "RSS idle",
        "samples idle/traffic",
        "throughput",
        "notes",
    ]
    return _table(head, rows, text=len(head) - 1)


def _list(items: Sequence[str]) -> str:
    return "<ul>" + "".join(f"<li>{escape(item)}</li>" for item in items) + "</ul>"


def _section(anchor: str, title: str, lead: str, content: str) -> tuple[str, str, str]:
    """``page_section`` with a plain-text lead."""
    return page_section(anchor, title, escape(lead), content)


def _sections(study: StudyResult) -> tuple[list[tuple[str, str, str]], list[dict[str, Any]]]:
    charts: list[dict[str, Any]] = []
    unmeasured = [f"{m.label}: {m.reason}" for m in study.metrics if m.reason]
    memory_figures = ""
    for metric in study.metrics:
        chart = memory_chart(study, metric.name)
        if chart is not None:
            charts.append(chart)
            memory_figures += _figure(chart)
    costs = cost_charts(study)
    charts += costs
    plan = study.plan
    # A median and its range stay on one line (report.css is shared with the run report).
    # Wide tables fit the page (a screenshot or a print shows no scroll bar): small type,
    # headings that wrap, a median's range on a line of its own.
    style = (
        "<style>table.grid.study { font-size: 12.5px; } "
        "table.grid.study td.num { white-space: nowrap; } "
        "table.grid.study thead th { white-space: normal; vertical-align: bottom; } "
        "table.grid.study th, table.grid.study td { padding: 5px 6px; } "
        "table.grid.study td.note { white-space: normal; min-width: 12em; } "
        "table.grid.study .range { color: #5b6475; font-size: 11.5px; } "
        ".scroll { overflow-x: auto; }</style>"
    )
    sections = [
        _section(
            "summary",
            "Memory per connection",
            f"Median over {plan['repeat']} repeat(s), min\u2013max in brackets; "
            "(window median \u2212 quiet baseline) / connections.",
            style
            + summary_table(study)
            + ('<p class="note">Not measurable here:</p>' + _list(unmeasured) if unmeasured else "")
            + _list(study.notes),
        ),
        _section(
            "charts",
            "Memory vs connections",
            "One colour per receive mode; idle: solid lines and filled points, under traffic: "
            "dashed lines and hollow points. With the cursor off a chart, the legend shows "
            "the values at the largest connection count.",
            memory_figures
            or '<p class="note">No memory counter was measurable here; see the notes.</p>',
        ),
        _section(
            "cost",
            "Throughput and latency under traffic",
            "Every connection sends, waits for its whole reply and sends again.",
            cost_table(study) + "".join(_figure(c) for c in costs),
        ),
    ]
    if study.warnings:
        sections.append(_section("warnings", "Warnings", "", _list(study.warnings)))
    metric_rows = [
        [m.name, m.kind, m.label + ": " + m.description + (f" ({m.reason})" if m.reason else "")]
        for m in study.metrics
    ]
    env = study.environment
    sections.append(
        _section(
            "details",
            "Trials, metrics and plan",
            "",
            "<h3>Every trial (per connection)</h3>"
            + trials_table(study)
            + "<h3>Metrics</h3>"
            + _table(["metric", "kind", "what it is"], metric_rows, text=2)
            + "<h3>Plan and environment</h3><pre>"
            + escape(json.dumps({"plan": plan, "environment": env}, indent=2))
            + "</pre>",
        )
    )
    return sections, charts


def render_study_html(study: StudyResult, generated: datetime | None = None) -> str:
    sections, charts = _sections(study)
    env = study.environment
    heading = "loadgen receive-mode study"
    modes = ", ".join(study.plan["modes"])
    counts = ", ".join(f"{c:,}" for c in study.plan["connections"])
    when = generated_text(generated)
    return render_sections_page(
        title=f"{heading} ({modes})",
        heading=heading,
        meta=f"{modes} · {counts} connections · {env['backend']} on {env['os']} · "
        f"started {study.started_at}",
        sections=sections,
        charts=charts,
        script="study.js",
        generated=when,
    )


def write_study_html(study: StudyResult, path: str | Path) -> Path:
    return write_atomically(path, render_study_html(study))
