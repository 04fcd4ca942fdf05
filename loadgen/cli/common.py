"""What every command shares: the consoles, the exit codes, options used by several
commands, and the one way to fail with a message."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.console import Console

from loadgen.engine import CHOICES

# Logs and CI output are read in wide viewers: do not squeeze tables into 80 columns there.
console = Console() if sys.stdout.isatty() else Console(width=120)
errors = Console(stderr=True, soft_wrap=True)  # messages stay one line: greppable, copyable

#: Exit codes, the same for every command (README: "Exit codes"). 99 is k6's convention for
#: failed thresholds, so CI scripts carry over. When several apply, the first of 130, 1, 3, 99
#: wins: an invalid run's threshold verdicts judge the generator, not the target.
EXIT_RUNTIME_FAILURE = 1
EXIT_USAGE = 2
EXIT_INVALID_RUN = 3  # the generator itself was the bottleneck (loadgen.run.selfcheck)
EXIT_THRESHOLDS_FAILED = 99  # a threshold failed (run) or a metric regressed (compare)
EXIT_INTERRUPTED = 130

BackendOption = Annotated[
    str, typer.Option("--backend", "-b", help=f"Engine backend: {', '.join(CHOICES)}.")
]
AllowSaturatedOption = Annotated[
    bool,
    typer.Option(
        "--allow-saturated",
        help="Do not exit 3 for a run whose generator was the bottleneck (it is still marked "
        "invalid): for measuring the generator itself.",
    ),
]


def fail(message: str, code: int) -> typer.Exit:
    """Print ``error: message`` on stderr; return the Exit to raise with ``code``."""
    errors.print(f"[red]error:[/] {message}", highlight=False)
    return typer.Exit(code)
