"""``loadgen compare``: baseline runs against current runs, as a CI gate."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from typer._click.core import Context

from loadgen.cli.common import (
    EXIT_INVALID_RUN,
    EXIT_RUNTIME_FAILURE,
    EXIT_THRESHOLDS_FAILED,
    EXIT_USAGE,
    AllowSaturatedOption,
    Command,
    LabelsOption,
    console,
    describe_write_error,
    errors,
    examples,
    fail,
)

if TYPE_CHECKING:
    from loadgen.report.compare import Comparison

EXAMPLES = examples(
    "loadgen compare --baseline main.json --current pr.json",
    "loadgen compare --baseline main-1.json main-2.json main-3.json --current pr-*.json",
    "loadgen compare --baseline a.json --current b.json --tolerance p99=5% "
    "--tolerance throughput=3% --markdown summary.md",
    "loadgen compare --baseline main-capacity.json --current pr-capacity.json",
)
_SIDES = ("--baseline", "--current")


class CompareCommand(Command):
    """``--baseline A A2 A3 --current B B2``: each side takes every file after it (shell
    globs expand to several), which click's options cannot; the arguments are rewritten to
    the repeatable form (``--baseline A --baseline A2 ...``) before click reads them, so
    both forms work and both options show in ``--help``."""

    def parse_args(self, ctx: Context, args: list[str]) -> list[str]:
        takes_value = {
            name
            for param in self.get_params(ctx)
            if not getattr(param, "is_flag", True) and param.param_type_name == "option"
            for name in param.opts
        }
        rewritten: list[str] = []
        side: str | None = None
        tokens = iter(args)
        for token in tokens:
            name = token.partition("=")[0]
            if name in _SIDES:
                side = name
                rewritten.append(token)
                if "=" not in token:
                    rewritten.append(next(tokens, ""))
            elif token.startswith("-") and token != "-":
                rewritten.append(token)
                if name in takes_value and "=" not in token:
                    rewritten.append(next(tokens, ""))
            elif side is not None:
                rewritten += [side, token]
            else:
                raise fail(f"compare: {token}: put it after --baseline or --current", EXIT_USAGE)
        return super().parse_args(ctx, rewritten)


def compare(
    baseline: Annotated[
        list[Path] | None,
        typer.Option(
            "--baseline",
            metavar="RESULT.json...",
            help="The runs to compare against: one or more result files.",
        ),
    ] = None,
    current: Annotated[
        list[Path] | None,
        typer.Option(
            "--current",
            metavar="RESULT.json...",
            help="The runs being judged: one or more result files.",
        ),
    ] = None,
    tolerances: Annotated[
        list[str] | None,
        typer.Option(
            "--tolerance",
            metavar="[METRIC=]PERCENT",
            help="Largest change that still passes: 10% for every metric, or per metric: "
            "p99=5%, throughput=3% (metrics: throughput, p50, p90, p99, p99.9, max, "
            "error_rate; repeatable).",
            show_default="10%",
        ),
    ] = None,
    labels: LabelsOption = None,
    junit_path: Annotated[
        Path | None,
        typer.Option("--junit", metavar="FILE", help="Write JUnit XML: one testcase per metric."),
    ] = None,
    markdown_path: Annotated[
        Path | None, typer.Option("--markdown", metavar="FILE", help="Write the table as markdown.")
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

    Exit 99 when a metric regressed (beyond its tolerance; with 3+ runs a side, also
    significant) or a current run failed one of its own thresholds; exit 3 (before 99) when a
    run on either side is invalid (its generator was the bottleneck), unless
    --allow-saturated; exit 1 (before 3) when a current run is partial (failed or
    interrupted), unless --allow-partial. --label names the runs, baseline files first.

    Capacity results (loadgen capacity) compare with capacity results: the gate is then the
    capacity found (exit 99 when it dropped beyond the tolerance).

    The markdown table is also appended to $GITHUB_STEP_SUMMARY when that is set.
    """
    from loadgen.report.compare import compare_runs, parse_tolerances
    from loadgen.report.compare_console import render_comparison
    from loadgen.report.junit import comparison_junit
    from loadgen.report.loading import ResultFileError, is_capacity, load_runs, read_json
    from loadgen.report.markdown import comparison_markdown
    from loadgen.result.files import write_atomically

    for name, files in (("--baseline", baseline), ("--current", current)):
        if not files:
            raise fail(f"compare: {name} needs at least one result file", EXIT_USAGE)
    assert baseline is not None and current is not None
    try:
        limits = parse_tolerances(tolerances or [])
    except ValueError as exc:
        raise fail(f"--tolerance: {exc}", EXIT_USAGE) from None
    try:
        files = [*baseline, *current]
        capacity = [path for path in files if is_capacity(read_json(path))]
        if capacity:
            comparison = _compare_capacity(baseline, current, capacity, limits.default)
        else:
            runs = load_runs(files, labels or None)
            comparison = compare_runs(
                runs[: len(baseline)], runs[len(baseline) :], limits, allow_partial=allow_partial
            )
    except ResultFileError as exc:
        raise fail(str(exc), EXIT_USAGE) from None
    except ValueError as exc:
        raise fail(f"--label: {exc}", EXIT_USAGE) from None
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


def _compare_capacity(
    baseline: list[Path], current: list[Path], capacity: list[Path], tolerance: float
) -> Comparison:
    """Capacity results against capacity results; a run result among them is refused."""
    from loadgen.capacity.compare import compare_capacity_files
    from loadgen.report.loading import ResultFileError

    files = [*baseline, *current]
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
