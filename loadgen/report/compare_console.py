"""A comparison as a terminal table (rich)."""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.table import Table

from loadgen.report.compare import Comparison, MetricComparison, Verdict, format_percent
from loadgen.report.formatting import (
    MISSING,
    format_change,
    format_interval,
    format_metric,
    format_threshold_value,
)

_STYLES = {
    Verdict.REGRESSION: "bold red",
    Verdict.IMPROVED: "green",
    Verdict.OK: "green",
    Verdict.NOT_SIGNIFICANT: "yellow",
    Verdict.NO_DATA: "dim",
}


def _is_plain(metric: MetricComparison) -> bool:
    """An ok that says nothing beyond "within the tolerance"."""
    return metric.verdict is Verdict.OK and metric.reason == (
        f"within {format_percent(metric.tolerance)}"
    )


#: Below this width the significance test's p and interval move from the table to the notes
#: under it, so that every row (and its verdict) stays on one line.
WIDE_COLUMNS = 110


def render_comparison(comparison: Comparison, console: Console) -> None:
    """One row per metric with its verdict on one line; what a verdict means beyond "within
    the tolerance" (and, on a narrow terminal, the test's p and interval) follows the table,
    one line per metric."""
    n_base, n_cur = len(comparison.baseline_sources), len(comparison.current_sources)
    medians = ", medians shown" if max(n_base, n_cur) > 1 else ""
    console.print(
        f"{n_base} baseline vs {n_cur} current run(s){medians}, tolerance "
        f"{comparison.tolerances.describe()}: {comparison.method}",
        highlight=False,
    )
    per_metric = not comparison.tolerances.uniform
    statistics_in_table = comparison.tested and console.width >= WIDE_COLUMNS
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 0, 0, 1))
    table.add_column("metric", no_wrap=True)
    table.add_column("baseline", justify="right", overflow="fold")
    table.add_column("current", justify="right", overflow="fold")
    table.add_column("change", justify="right", no_wrap=True)
    if per_metric:
        table.add_column("tolerance", justify="right", no_wrap=True)
    if statistics_in_table:
        table.add_column("p (worse)", justify="right")
        table.add_column("95% interval", justify="right")
    table.add_column("verdict", no_wrap=True)
    notes = []
    for metric in comparison.metrics:
        unit = metric.metric.unit
        row = [
            metric.metric.label,
            format_metric(metric.baseline_median, unit),
            format_metric(metric.current_median, unit),
            format_change(metric.change),
        ]
        if per_metric:
            row.append(format_percent(metric.tolerance))
        p_value = MISSING if metric.p_value is None else f"{metric.p_value:.3g}"
        if statistics_in_table:
            row += [p_value, format_interval(metric.ci)]
        style = _STYLES[metric.verdict]
        row.append(f"[{style}]{metric.verdict.value}[/]")
        table.add_row(*row)
        note = "" if _is_plain(metric) else metric.reason
        if comparison.tested and not statistics_in_table:
            note = ", ".join(
                part
                for part in (note, f"p = {p_value}", f"95% CI {format_interval(metric.ci)}")
                if part and not (part.startswith("p = ") and "p = " in note)
            )
        if note:
            notes.append(f"  {metric.metric.label}: [{style}]{metric.verdict.value}[/], {note}")
    console.print(table)
    for note in notes:
        console.print(note, highlight=False)
    for label, threshold in comparison.thresholds:
        outcome = "[green]pass[/]" if threshold.passed else "[bold red]fail[/]"
        observed = format_threshold_value(threshold.metric, threshold.value)
        console.print(
            f"threshold {outcome}: {label}: {threshold.expression} (observed {observed})",
            highlight=False,
        )
    reasons = [
        *(["invalid runs (their generator was the bottleneck)"] if comparison.invalid_runs else []),
        *(["regression"] if comparison.regressed else []),
        *(["a threshold failed"] if comparison.thresholds_failed else []),
        *(["a current run did not complete"] if comparison.incomplete else []),
    ]
    verdict = f"[bold red]FAIL[/]: {', '.join(reasons)}" if reasons else "[green]PASS[/]"
    console.print(f"compare: {verdict}")
