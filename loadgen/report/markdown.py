"""A comparison as a markdown table (for pull requests and GitHub's job summary)."""

from __future__ import annotations

from collections.abc import Sequence

from loadgen.report import cluster as cluster_text
from loadgen.report.compare import (
    Comparison,
    MetricComparison,
    NameComparison,
    Verdict,
    format_percent,
)
from loadgen.report.formatting import (
    MISSING,
    format_change,
    format_interval,
    format_metric,
    format_threshold_value,
)
from loadgen.result.model import Cluster

_VERDICT_CELLS = {
    Verdict.REGRESSION: "❌ **regression**",
    Verdict.IMPROVED: "✅ improved",
    Verdict.OK: "✅ ok",
    Verdict.NOT_SIGNIFICANT: "⚠️ not significant",
    Verdict.NO_DATA: "no data",
}


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _row(metric: MetricComparison, tested: bool, per_metric: bool) -> str:
    unit = metric.metric.unit
    cells = [
        metric.metric.label,
        format_metric(metric.baseline_median, unit),
        format_metric(metric.current_median, unit),
        format_change(metric.change),
    ]
    if per_metric:
        cells.append(format_percent(metric.tolerance))
    if tested:
        p = MISSING if metric.p_value is None else f"{metric.p_value:.3g}"
        cells += [p, format_interval(metric.ci)]
    cells.append(f"{_VERDICT_CELLS[metric.verdict]}: {metric.reason}")
    return "| " + " | ".join(_escape(c) for c in cells) + " |"


def cluster_markdown(clusters: Sequence[tuple[str, Cluster]]) -> list[str]:
    """The hosts of each distributed run: a row per host, lost ones marked, then each run's
    start skew."""
    lines = [
        "**Cluster hosts**",
        "",
        "| run | host | hostname | processes | share | clock offset (ms) | start late (ms) "
        "| status |",
        "|---|---:|---|---:|---:|---:|---:|---|",
    ]
    for label, cluster in clusters:
        for row in cluster_text.host_rows(cluster):
            status = "✅ ok" if row.lost is None else f"❌ **lost**: {row.lost}"
            cells = [label, row.index, row.hostname, row.processes, row.share]
            cells += [row.clock_offset, row.start_late, status]
            lines.append("| " + " | ".join(_escape(c) for c in cells) + " |")
    lines.append("")
    lines += [
        f"- {_escape(label)}: {_escape(cluster_text.overview(cluster))}; "
        f"{_escape(cluster_text.start_skew(cluster))}"
        for label, cluster in clusters
    ]
    return lines


def by_name_markdown(rows: Sequence[NameComparison]) -> list[str]:
    """A request set's names: medians of p50, p99 and the failed share on both sides."""
    lines = [
        "**Requests by name** (medians over the runs; shown, not judged)",
        "",
        "| request | p50 baseline | p50 current | p99 baseline | p99 current | p99 change "
        "| failed baseline | failed current |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        base, now = row.baseline, row.current
        cells = [
            row.name,
            format_metric(base.p50_us, "µs"),
            format_metric(now.p50_us, "µs"),
            format_metric(base.p99_us, "µs"),
            format_metric(now.p99_us, "µs"),
            format_change(row.p99_change),
            format_metric(base.failed_percent, "%"),
            format_metric(now.failed_percent, "%"),
        ]
        lines.append("| " + " | ".join(_escape(c) for c in cells) + " |")
    return lines


def comparison_markdown(comparison: Comparison) -> str:
    outcome = "❌ FAIL" if comparison.failed else "✅ PASS"
    if comparison.invalid_runs:
        outcome = "⛔ INVALID (a generator was the bottleneck)"
    n_base, n_cur = len(comparison.baseline_sources), len(comparison.current_sources)
    lines = [
        f"### loadgen compare: {outcome}",
        "",
        f"{n_base} baseline run{'s' * (n_base != 1)} against {n_cur} current "
        f"run{'s' * (n_cur != 1)}; tolerance {comparison.tolerances.describe()}; "
        f"{comparison.method}.",
        "",
    ]
    for label, reasons in comparison.invalid_runs:
        lines.append(f"> ⛔ **{_escape(label)} is invalid**: {_escape('; '.join(reasons))}")
        lines.append("")
    for label, stop in comparison.incomplete:
        lines.append(f"> ❌ **{_escape(label)} did not complete**: {_escape(str(stop))}")
        lines.append("")
    per_metric = not comparison.tolerances.uniform
    # Several runs a side: each cell is their median, said once in the header.
    header = [
        "metric",
        "baseline" + (f" (median of {n_base})" if n_base > 1 else ""),
        "current" + (f" (median of {n_cur})" if n_cur > 1 else ""),
        "change",
    ]
    if per_metric:
        header.append("tolerance")
    if comparison.tested:
        header += ["p (worse)", "95% interval"]
    header.append("verdict")
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join(["---"] + ["---:"] * (len(header) - 2) + ["---"]) + "|")
    lines += [_row(metric, comparison.tested, per_metric) for metric in comparison.metrics]
    if comparison.thresholds:
        lines += ["", "| run | threshold | observed | verdict |", "|---|---|---:|---|"]
        for label, verdict in comparison.thresholds:
            cells = [
                label,
                f"`{verdict.expression}`",
                format_threshold_value(verdict.metric, verdict.value),
                "✅ pass" if verdict.passed else "❌ **fail**",
            ]
            lines.append("| " + " | ".join(_escape(c) for c in cells) + " |")
    if comparison.by_name:
        lines += ["", *by_name_markdown(comparison.by_name)]
    if comparison.clusters:
        lines += ["", *cluster_markdown(comparison.clusters)]
    if comparison.warnings:
        lines += ["", "**Warnings**", ""]
        for warning in comparison.warnings:
            lines.append(f"- {_escape(warning.message)}")
            lines += [f"  - `{detail}`" for detail in warning.details]
    lines += [
        "",
        "Baseline: " + ", ".join(f"`{s}`" for s in comparison.baseline_sources),
        "",
        "Current: " + ", ".join(f"`{s}`" for s in comparison.current_sources),
    ]
    return "\n".join(lines) + "\n"
