"""What every command shares: the consoles, the exit codes, options used by several
commands, and the one way to fail with a message."""

from __future__ import annotations

import sys
from typing import IO, Annotated, cast

import typer
from rich.console import Console

from loadgen.engine import CHOICES

#: What loadgen prints outside ASCII, spelled in ASCII for a stream whose encoding is not
#: UTF-8. A piped Windows console is cp1252: the micro sign of "us" goes out as byte 0xB5,
#: which anything reading the pipe as UTF-8 (a CI log, a Linux terminal under Wine) shows
#: garbled, and the infinity sign cannot be encoded at all. Rich draws its boxes in ASCII on
#: such a stream for the same reason.
_ASCII = str.maketrans(
    {
        "\u00b5": "u",  # micro sign: 51.3us
        "\u2013": "-",  # en dash: no value, ranges
        "\u2014": "-",  # em dash
        "\u2212": "-",  # minus sign
        "\u221e": "inf",
        "\u00b1": "+/-",
        "\u00b7": ".",
        "\u2026": "...",
        "\u2192": "->",
        "\u00d7": "x",
    }
)


def _utf(encoding: str | None) -> bool:
    return (encoding or "utf-8").lower().replace("-", "").replace("_", "").startswith("utf")


class ConsoleStream:
    """``sys.stdout`` or ``sys.stderr`` as the consoles write to them: looked up at each
    write (tests swap them), and spelled in ASCII where their encoding is not UTF-8."""

    def __init__(self, name: str) -> None:
        self._name = name

    @property
    def _target(self) -> IO[str]:
        return cast(IO[str], getattr(sys, self._name))

    @property
    def encoding(self) -> str:
        return getattr(self._target, "encoding", None) or "utf-8"

    def write(self, text: str) -> int:
        if not _utf(self.encoding):
            text = text.translate(_ASCII)
        return self._target.write(text)

    def flush(self) -> None:
        self._target.flush()

    def isatty(self) -> bool:
        return self._target.isatty()

    def fileno(self) -> int:
        return self._target.fileno()


def make_console(stream: str = "stdout", **options: object) -> Console:
    """A rich Console on ``sys.stdout``/``sys.stderr`` through ``ConsoleStream``."""
    return Console(file=cast(IO[str], ConsoleStream(stream)), **options)  # type: ignore[arg-type]


# Logs and CI output are read in wide viewers: do not squeeze tables into 80 columns there.
console = make_console() if sys.stdout.isatty() else make_console(width=120)
# Messages stay one line: greppable, copyable.
errors = make_console("stderr", soft_wrap=True)

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
