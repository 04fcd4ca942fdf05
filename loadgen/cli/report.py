"""``loadgen report``: a self-contained HTML report of one or more results, or of a
capacity search (its own page, or any of its steps as runs with ``--step``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from loadgen.cli.common import EXIT_RUNTIME_FAILURE, EXIT_USAGE, console, fail


def report(
    results: Annotated[list[Path], typer.Argument(help="Result JSON files, one or more.")],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Where to write the HTML (default: the first RUN.json as .html)."
        ),
    ] = None,
    steps: Annotated[
        list[int] | None,
        typer.Option(
            "--step",
            min=1,
            help="From a capacity result: render step N as a run (repeatable: steps overlaid).",
        ),
    ] = None,
) -> None:
    """Write a self-contained HTML report of one or more results (overlaid).

    A capacity result alone renders the search (hockey stick, steps); with --step N its
    step N renders as a run, like any result.
    """
    from loadgen.report.html import write_html
    from loadgen.report.loading import ResultFileError, is_capacity, load_runs, read_json

    target = output or results[0].with_suffix(".html")
    try:
        if len(results) == 1 and not steps and is_capacity(read_json(results[0])):
            _write_capacity_page(results[0], target)
            return
        runs = load_runs(results, list(steps or []))
    except ResultFileError as exc:
        raise fail(str(exc), EXIT_USAGE) from None
    try:
        write_html(runs, target)
    except OSError as exc:
        raise fail(f"cannot write {exc.filename}: {exc.strerror}", EXIT_RUNTIME_FAILURE) from None
    console.print(f"report: {target}", highlight=False, soft_wrap=True)


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
        raise fail(f"cannot write {exc.filename}: {exc.strerror}", EXIT_RUNTIME_FAILURE) from None
    console.print(f"report: {target}", highlight=False, soft_wrap=True)
