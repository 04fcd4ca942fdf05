"""``loadgen validate``: check scenario files without running them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from loadgen.cli.common import EXIT_USAGE, console, errors
from loadgen.config.scenario import ScenarioError, load_scenario


def validate(
    files: Annotated[list[Path], typer.Argument(help="Scenario files to check.")],
    overrides: Annotated[
        list[str] | None, typer.Option("--set", help="Override a field: key=value.")
    ] = None,
) -> None:
    """Check scenario files without running them."""
    bad = 0
    for file in files:
        try:
            load_scenario(file, overrides or [])
        except ScenarioError as exc:
            bad += 1
            errors.print(str(exc), highlight=False)
        else:
            console.print(f"{file}: ok", highlight=False)
    if bad:
        raise typer.Exit(EXIT_USAGE)
