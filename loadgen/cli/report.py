"""``loadgen report``: a self-contained HTML report of one or more results."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from loadgen.cli.common import (
    EXIT_RUNTIME_FAILURE,
    EXIT_USAGE,
    console,
    describe_write_error,
    fail,
)


def report(
    results: Annotated[list[Path], typer.Argument(help="Result JSON files, one or more.")],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Where to write the HTML (default: the first RUN.json as .html)."
        ),
    ] = None,
) -> None:
    """Write a self-contained HTML report of one or more results (overlaid)."""
    from loadgen.report.html import write_html
    from loadgen.report.loading import ResultFileError, load_runs

    try:
        runs = load_runs(results)
    except ResultFileError as exc:
        raise fail(str(exc), EXIT_USAGE) from None
    target = output or results[0].with_suffix(".html")
    try:
        write_html(runs, target)
    except OSError as exc:
        raise fail(describe_write_error(target, exc), EXIT_RUNTIME_FAILURE) from None
    console.print(f"report: {target}", highlight=False, soft_wrap=True)
