"""``loadgen compare``: baseline runs against current runs, as a CI gate."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from loadgen.cli.common import (
    EXIT_INVALID_RUN,
    EXIT_RUNTIME_FAILURE,
    EXIT_THRESHOLDS_FAILED,
    EXIT_USAGE,
    AllowSaturatedOption,
    console,
    describe_write_error,
    errors,
    fail,
)


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
    allow_partial: Annotated[
        bool,
        typer.Option(
            "--allow-partial",
            help="Do not exit 1 for a current run that is partial (failed or interrupted): "
            "compare what it measured (it is still named in a warning).",
        ),
    ] = False,
) -> None:
    """Compare runs: --baseline A.json [A2.json ...] --current B.json [B2.json ...].

    Exit 99 when a metric regressed (beyond --tolerance; with 3+ runs a side, also significant)
    or a current run failed one of its own thresholds; exit 3 (before 99) when a run on either
    side is invalid (its generator was the bottleneck), unless --allow-saturated; exit 1
    (before 3) when a current run is partial (failed or interrupted), unless --allow-partial.

    The markdown table is also appended to $GITHUB_STEP_SUMMARY when that is set.
    """
    from loadgen.report.compare import compare_runs, parse_tolerance
    from loadgen.report.compare_console import render_comparison
    from loadgen.report.junit import comparison_junit
    from loadgen.report.loading import ResultFileError, load_runs
    from loadgen.report.markdown import comparison_markdown
    from loadgen.result.files import write_atomically

    baseline_files, current_files = _split_sides(list(ctx.args))
    try:
        limit = parse_tolerance(tolerance)
    except ValueError as exc:
        raise fail(f"--tolerance: {exc}", EXIT_USAGE) from None
    try:
        runs = load_runs([*baseline_files, *current_files])
    except ResultFileError as exc:
        raise fail(str(exc), EXIT_USAGE) from None
    comparison = compare_runs(
        runs[: len(baseline_files)],
        runs[len(baseline_files) :],
        limit,
        allow_partial=allow_partial,
    )
    for warning in comparison.warnings:
        errors.print(f"[yellow]warning:[/] {warning.message}", highlight=False, markup=True)
        for detail in warning.details:
            errors.print(f"  {detail}", highlight=False, markup=False)
    render_comparison(comparison, console)
    markdown = comparison_markdown(comparison)
    outputs = [(junit_path, comparison_junit(comparison)), (markdown_path, markdown)]
    summary_file = os.environ.get("GITHUB_STEP_SUMMARY")
    for target, text in outputs:
        if target is not None:
            try:
                write_atomically(target, text)
            except OSError as exc:
                raise fail(describe_write_error(target, exc), EXIT_RUNTIME_FAILURE) from None
    if summary_file:
        try:
            with open(summary_file, "a", encoding="utf-8") as summary:
                summary.write(markdown + "\n")
        except OSError as exc:
            raise fail(describe_write_error(summary_file, exc), EXIT_RUNTIME_FAILURE) from None
    for label, stop in comparison.incomplete:
        errors.print(
            f"[red]error:[/] current run {label} did not complete ({stop}): a gate "
            "needs complete runs (--allow-partial compares it anyway)",
            highlight=False,
        )
    if comparison.incomplete:
        raise typer.Exit(EXIT_RUNTIME_FAILURE)
    if comparison.invalid_runs and not allow_saturated:
        raise typer.Exit(EXIT_INVALID_RUN)
    if comparison.failed:
        raise typer.Exit(EXIT_THRESHOLDS_FAILED)
