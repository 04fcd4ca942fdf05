"""``loadgen validate``: check scenario files without running them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from loadgen.cli.common import EXIT_USAGE, SetOption, console, errors, examples
from loadgen.config.scenario import ScenarioError, load_scenario

EXAMPLES = examples(
    "loadgen validate scenarios/*.yaml",
    "loadgen validate my.yaml --set load.connections=5000",
)


def validate(
    files: Annotated[
        list[Path], typer.Argument(metavar="SCENARIO", help="Scenario files to check.")
    ],
    overrides: SetOption = None,
) -> None:
    """Check scenario files without running them (with --set applied to each, as run
    would)."""
    bad = 0
    for file in files:
        try:
            load_scenario(file, overrides or [])
        except ScenarioError as exc:
            bad += 1
            errors.print(str(exc), highlight=False, markup=False)
        else:
            console.print(f"{file}: ok", highlight=False)
    if bad:
        raise typer.Exit(EXIT_USAGE)
