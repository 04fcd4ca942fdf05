"""What every command shares: the consoles, the exit codes, options used by several
commands, and the one way to fail with a message."""

from __future__ import annotations

import sys
from pathlib import Path
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
#: Interrupted: 128 + the signal's number, as a shell reports a process a signal ended:
#: 130 Ctrl-C (SIGINT), 143 SIGTERM, 129 SIGHUP (``run.interrupts.interrupted_exit_code``).
EXIT_INTERRUPTED = 130

#: ``--json -``: the JSON result goes to standard output (and everything else to stderr).
STDOUT_PATH = "-"

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


def describe_write_error(path: str | Path, exc: OSError) -> str:
    """``cannot write PATH: why``, naming the path asked for (an error raised while writing
    or closing a file carries no file name of its own)."""
    from loadgen.result.files import OutputError

    if isinstance(exc, OutputError):
        return str(exc)
    return f"cannot write {path}: {exc.strerror or exc}"


def screen_for(json_path: Path | None) -> Console:
    """Where a command shows its progress and summary: the console, or with ``--json -``
    (the JSON result on standard output, alone) standard error."""
    return errors if json_path is not None and str(json_path) == STDOUT_PATH else console


def keep_result(failure: OSError, name: str, text: str) -> str:
    """A result that could not be written where asked (``failure``): kept in a file of its
    own elsewhere (``result.files.keep_elsewhere``), or as a last resort printed on stderr;
    says so and returns where it is."""
    from loadgen.result.files import OutputError, keep_elsewhere

    try:
        kept = keep_elsewhere(name, text)
    except OutputError as again:
        errors.print(
            f"[red]error:[/] {failure}; nor can it be kept elsewhere ({again.reason}): "
            "the result follows on standard error",
            highlight=False,
        )
        sys.stderr.write(text)
        return "standard error"
    errors.print(f"[red]error:[/] {failure}; the result is kept in {kept}", highlight=False)
    return str(kept)
