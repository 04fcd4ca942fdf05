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


def render_comparison(comparison: Comparison, console: Console) -> None:
    """One row per metric with its verdict on one line (80 columns hold it); what a verdict
    means beyond "within the tolerance" follows the table, one line per metric."""
    n_base, n_cur = len(comparison.baseline_sources), len(comparison.current_sources)
    console.print(
        f"{n_base} baseline vs {n_cur} current run(s), tolerance "
        f"{comparison.tolerances.describe()}: {comparison.method}",
        highlight=False,
    )
    per_metric = not comparison.tolerances.uniform
    median = " (median)" if max(n_base, n_cur) > 1 else ""
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("metric", no_wrap=True)
    table.add_column("baseline" + median, justify="right")
    table.add_column("current" + median, justify="right")
    table.add_column("change", justify="right", no_wrap=True)
    if per_metric:
        table.add_column("tolerance", justify="right", no_wrap=True)
    if comparison.tested:
        table.add_column("p (worse)", justify="right")
        table.add_column("95% interval", justify="right")
    table.add_column("verdict", no_wrap=True)
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
        if comparison.tested:
            row += [
                MISSING if metric.p_value is None else f"{metric.p_value:.3g}",
                format_interval(metric.ci),
            ]
        style = _STYLES[metric.verdict]
        row.append(f"[{style}]{metric.verdict.value}[/]")
        table.add_row(*row)
    console.print(table)
    for metric in comparison.metrics:
        if not _is_plain(metric):
            style = _STYLES[metric.verdict]
            console.print(
                f"  {metric.metric.label}: [{style}]{metric.verdict.value}[/], {metric.reason}",
                highlight=False,
            )
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
    ]
    verdict = f"[bold red]FAIL[/]: {', '.join(reasons)}" if reasons else "[green]PASS[/]"
    console.print(f"compare: {verdict}")
