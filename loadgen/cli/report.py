"""``loadgen report``: a self-contained HTML report of one or more results, and CSV exports."""

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
) -> None:
    """Write a self-contained HTML report of one or more results (overlaid)."""
    from loadgen.report.csv_export import write_csv
    from loadgen.report.html import write_html
    from loadgen.report.loading import ResultFileError, load_runs

    try:
        runs = load_runs(results, labels or None)
    except ResultFileError as exc:
        raise fail(str(exc), EXIT_USAGE) from None
    except ValueError as exc:
        raise fail(f"--label: {exc}", EXIT_USAGE) from None
    target = output or results[0].with_suffix(".html")
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
