"""A comparison as a terminal table (rich)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from loadgen.report.compare import Comparison, Verdict, format_percent
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


def render_comparison(comparison: Comparison, console: Console) -> None:
    n_base, n_cur = len(comparison.baseline_sources), len(comparison.current_sources)
    console.print(
        f"{n_base} baseline vs {n_cur} current run(s), tolerance "
        f"{format_percent(comparison.tolerance)}: {comparison.method}",
        highlight=False,
    )
    table = Table()
    table.add_column("metric")
    table.add_column("baseline", justify="right")
    table.add_column("current", justify="right")
    table.add_column("change", justify="right")
    if comparison.tested:
        table.add_column("p (worse)", justify="right")
        table.add_column("95% interval", justify="right")
    table.add_column("verdict")
    for metric in comparison.metrics:
        unit = metric.metric.unit
        row = [
            metric.metric.label,
            format_metric(metric.baseline_median, unit),
            format_metric(metric.current_median, unit),
            format_change(metric.change),
        ]
        if comparison.tested:
            row += [
                MISSING if metric.p_value is None else f"{metric.p_value:.3g}",
                format_interval(metric.ci),
            ]
        style = _STYLES[metric.verdict]
        row.append(f"[{style}]{metric.verdict.value}[/]: {metric.reason}")
        table.add_row(*row)
    console.print(table)
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
