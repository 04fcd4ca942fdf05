"""``loadgen compare``: baseline runs against current runs, as a CI gate."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from loadgen.cli.common import (
    EXIT_INVALID_RUN,
    EXIT_RUNTIME_FAILURE,
    EXIT_THRESHOLDS_FAILED,
    EXIT_USAGE,
    AllowSaturatedOption,
    console,
    errors,
    fail,
)

if TYPE_CHECKING:
    from loadgen.report.compare import Comparison


def _split_sides(tokens: list[str]) -> tuple[list[Path], list[Path]]:
    """``--baseline A [A2 ...] --current B [B2 ...]`` (each flag may repeat, or take =FILE)."""
    sides: dict[str, list[Path]] = {"--baseline": [], "--current": []}
    side: str | None = None
    for token in tokens:
        name, equals, value = token.partition("=")
        if name in sides:
            side = name
            if equals:
                sides[side].append(Path(value))
        elif token.startswith("-"):
            raise fail(f"compare: no such option {token}", EXIT_USAGE)
        elif side is None:
            raise fail(f"compare: {token}: put it after --baseline or --current", EXIT_USAGE)
        else:
            sides[side].append(Path(token))
    for name, files in sides.items():
        if not files:
            raise fail(f"compare: {name} needs at least one result file", EXIT_USAGE)
    return sides["--baseline"], sides["--current"]


def compare(
    ctx: typer.Context,
    tolerance: Annotated[
        str, typer.Option("--tolerance", help="Largest change that still passes, e.g. 10%.")
    ] = "10%",
    junit_path: Annotated[
        Path | None, typer.Option("--junit", help="Write JUnit XML: one testcase per metric.")
    ] = None,
    markdown_path: Annotated[
        Path | None, typer.Option("--markdown", help="Write the table as markdown.")
    ] = None,
    allow_saturated: AllowSaturatedOption = False,
) -> None:
    """Compare runs: --baseline A.json [A2.json ...] --current B.json [B2.json ...].

    Exit 99 when a metric regressed (beyond --tolerance; with 3+ runs a side, also significant)
    or a current run failed one of its own thresholds; exit 3 (before 99) when a run on either
    side is invalid (its generator was the bottleneck), unless --allow-saturated.

    Capacity results (loadgen capacity) compare with capacity results: the gate is then the
    capacity found (exit 99 when it dropped beyond --tolerance).

    The markdown table is also appended to $GITHUB_STEP_SUMMARY when that is set.
    """
    from loadgen.report.compare import compare_runs, parse_tolerance
    from loadgen.report.compare_console import render_comparison
    from loadgen.report.junit import comparison_junit
    from loadgen.report.loading import ResultFileError, is_capacity, load_runs, read_json
    from loadgen.report.markdown import comparison_markdown

    baseline_files, current_files = _split_sides(list(ctx.args))
    try:
        limit = parse_tolerance(tolerance)
    except ValueError as exc:
        raise fail(f"--tolerance: {exc}", EXIT_USAGE) from None
    files = [*baseline_files, *current_files]
    try:
        capacity = [path for path in files if is_capacity(read_json(path))]
        if capacity:
            comparison = _compare_capacity(baseline_files, current_files, files, capacity, limit)
        else:
            runs = load_runs(files)
            comparison = compare_runs(
                runs[: len(baseline_files)], runs[len(baseline_files) :], limit
            )
    except ResultFileError as exc:
        raise fail(str(exc), EXIT_USAGE) from None
    for warning in comparison.warnings:
        errors.print(f"[yellow]warning:[/] {warning.message}", highlight=False, markup=True)
        for detail in warning.details:
            errors.print(f"  {detail}", highlight=False, markup=False)
    render_comparison(comparison, console)
    markdown = comparison_markdown(comparison)
    outputs = [(junit_path, comparison_junit(comparison)), (markdown_path, markdown)]
    summary_file = os.environ.get("GITHUB_STEP_SUMMARY")
    try:
        for target, text in outputs:
            if target is not None:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text, encoding="utf-8")
        if summary_file:
            with open(summary_file, "a", encoding="utf-8") as summary:
                summary.write(markdown + "\n")
    except OSError as exc:
        raise fail(f"cannot write {exc.filename}: {exc.strerror}", EXIT_RUNTIME_FAILURE) from None
    if comparison.invalid_runs and not allow_saturated:
        raise typer.Exit(EXIT_INVALID_RUN)
    if comparison.failed:
        raise typer.Exit(EXIT_THRESHOLDS_FAILED)


def _compare_capacity(
    baseline: list[Path],
    current: list[Path],
    files: list[Path],
    capacity: list[Path],
    tolerance: float,
) -> Comparison:
    """Capacity results against capacity results; a run result among them is refused."""
    from loadgen.capacity.compare import compare_capacity_files
    from loadgen.report.loading import ResultFileError

    if len(capacity) != len(files):
        runs = ", ".join(str(path) for path in files if path not in capacity)
        raise fail(
            f"compare: capacity results compare with capacity results only; {runs} is a run result",
            EXIT_USAGE,
        )
    try:
        return compare_capacity_files(baseline, current, tolerance)
    except ValueError as exc:
        if isinstance(exc, ResultFileError):
            raise
        raise fail(f"compare: {exc}", EXIT_USAGE) from None
