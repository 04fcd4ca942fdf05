"""``loadgen report``: a self-contained HTML report of one or more results, and CSV exports;
or of a capacity search (its own page, or any of its steps as runs with ``--step``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from loadgen.cli.common import (
    EXIT_RUNTIME_FAILURE,
    EXIT_USAGE,
    CsvOption,
    LabelsOption,
    console,
    describe_write_error,
    examples,
    fail,
)

EXAMPLES = examples(
    "loadgen report reports/run.json",
    "loadgen report main.json pr.json --label main --label pr -o compare.html",
    "loadgen report reports/*.json --csv exports/runs",
    "loadgen report reports/api-capacity.json --step 3 --step 7",
)


def report(
    results: Annotated[
        list[Path],
        typer.Argument(metavar="RESULT.json", help="Result JSON files, one or more."),
    ],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            metavar="FILE",
            help="Where to write the HTML.",
            show_default="the first result, as .html",
        ),
    ] = None,
    labels: LabelsOption = None,
    csv_prefix: CsvOption = None,
    steps: Annotated[
        list[int] | None,
        typer.Option(
            "--step",
            metavar="N",
            min=1,
            help="From a capacity result: draw its step N as a run (repeatable: overlaid).",
        ),
    ] = None,
) -> None:
    """Write a self-contained HTML report of one or more results (overlaid).

    A capacity result alone draws the search (the hockey stick, every step); with --step N,
    its step N is drawn as a run, like any result.
    """
    from loadgen.report.csv_export import write_csv
    from loadgen.report.html import write_html
    from loadgen.report.loading import ResultFileError, is_capacity, load_runs, read_json

    target = output or results[0].with_suffix(".html")
    try:
        if len(results) == 1 and not steps and is_capacity(read_json(results[0])):
            _write_capacity_page(results[0], target)
            return
        runs = load_runs(results, labels or None, list(steps or []))
    except ResultFileError as exc:
        raise fail(str(exc), EXIT_USAGE) from None
    except ValueError as exc:
        raise fail(f"--label: {exc}", EXIT_USAGE) from None
    try:
        write_html(runs, target)
    except OSError as exc:
        raise fail(describe_write_error(target, exc), EXIT_RUNTIME_FAILURE) from None
    console.print(f"report: {target}", highlight=False, soft_wrap=True)
    if csv_prefix is not None:
        try:
            for written in write_csv(runs, csv_prefix):
                console.print(f"csv: {written}", highlight=False, soft_wrap=True)
        except OSError as exc:
            raise fail(describe_write_error(csv_prefix, exc), EXIT_RUNTIME_FAILURE) from None


def _write_capacity_page(path: Path, target: Path) -> None:
    from loadgen.capacity.model import CapacityResult
    from loadgen.capacity.page import write_capacity_html
    from loadgen.report.loading import ResultFileError, read_json

    try:
        result = CapacityResult.from_dict(read_json(path))
    except (KeyError, TypeError, ValueError) as exc:
        detail = f"missing {exc}" if isinstance(exc, KeyError) else str(exc)
        raise ResultFileError(path, f"malformed capacity result: {detail}") from None
    try:
        write_capacity_html(result, target)
    except OSError as exc:
        raise fail(describe_write_error(target, exc), EXIT_RUNTIME_FAILURE) from None
    console.print(f"report: {target}", highlight=False, soft_wrap=True)
