"""What every command shares: the consoles, the exit codes, options used by several
commands, and the one way to fail with a message."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import IO, Annotated, cast

import typer
from rich.console import Console
from typer._click.core import Context, Parameter
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

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
#: Interrupted: 128 + the signal's number, as a shell reports a process a signal ended:
#: 130 Ctrl-C (SIGINT; Ctrl-Break on Windows), 143 SIGTERM, 129 SIGHUP
#: (``run.interrupts.interrupted_exit_code``).
EXIT_INTERRUPTED = 130

BackendOption = Annotated[
    str,
    typer.Option(
        "--backend", "-b", metavar="BACKEND", help=f"Engine backend: {', '.join(CHOICES)}."
    ),
]
# The request options of a URL target (``loadgen run URL``, ``loadgen capacity URL``).
MethodOption = Annotated[
    str | None,
    typer.Option("--method", "-m", metavar="METHOD", help="URL targets: e.g. -m POST."),
]
HeaderOption = Annotated[
    list[str] | None,
    typer.Option(
        "--header",
        "-H",
        metavar="'NAME: VALUE'",
        help="URL targets: a header (repeatable), e.g. -H 'Accept: */*'.",
    ),
]
BodyOption = Annotated[
    str | None,
    typer.Option(
        "--body",
        metavar="TEXT|@FILE",
        help="URL targets: the request body, e.g. --body '{}' or --body @item.json.",
    ),
]
RequestsPerConnectionOption = Annotated[
    int | None,
    typer.Option(
        "--requests-per-connection",
        min=1,
        metavar="N",
        help="URL targets: a new connection after N responses, e.g. 1.",
    ),
]
InsecureOption = Annotated[
    bool,
    typer.Option("--insecure", "-k", help="TLS: do not verify the server's certificate."),
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


# --- help screens -----------------------------------------------------------------------

_REQUIRED_IN_USAGE = re.compile(r"^\{(.*)\}(\.\.\.)?$")


def _plain_params(params: list[Parameter]) -> list[Parameter]:
    """Options as people read them in help: a flag shows no type, an option its metavar (or
    its name in capitals) rather than ``<str>`` or ``<int range>``, and a bound is the
    option's help's business, not a ``[x>=1]`` beside it."""
    for param in params:
        if isinstance(param, TyperArgument):  # its name is its metavar: no type beside it
            param.display_type_rich = lambda ctx: None  # type: ignore[method-assign]
        if not isinstance(param, TyperOption):
            continue
        if param.metavar is None:
            param.metavar = "" if param.is_flag else (param.name or "value").upper()
        # The bound is still enforced; only its "[x>=1]" beside the metavar goes.
        param._get_number_range_help_str = lambda: None  # type: ignore[method-assign]
    return params


class Command(TyperCommand):
    """A command whose help reads plainly: ``loadgen run [OPTIONS] SCENARIO``, no type names."""

    def collect_usage_pieces(self, ctx: Context) -> list[str]:
        pieces = super().collect_usage_pieces(ctx)
        return [_REQUIRED_IN_USAGE.sub(r"\1\2", piece) for piece in pieces]

    def get_params(self, ctx: Context) -> list[Parameter]:
        return _plain_params(super().get_params(ctx))


class Group(TyperGroup):
    """The app's group, with the same plain help as its commands."""

    def get_params(self, ctx: Context) -> list[Parameter]:
        return _plain_params(super().get_params(ctx))


#: The one description of ``--set``, for every command that takes it.
SET_HELP = (
    "Override a scenario field, KEY=VALUE: a dotted path and a YAML value, e.g. "
    "load.connections=1000 or timeouts.request=2s (repeatable)."
)
SetOption = Annotated[list[str] | None, typer.Option("--set", metavar="KEY=VALUE", help=SET_HELP)]


def examples(*lines: str) -> str:
    """A help screen's epilog: ``Examples:`` and one command per line."""
    return "Examples:\n" + "\n".join(f"  {line}" for line in lines)


LabelsOption = Annotated[
    list[str] | None,
    typer.Option(
        "--label",
        metavar="NAME",
        help="Name a run in tables and chart legends, one --label per result file in order "
        "(default: the result's own label, else its file name).",
    ),
]
CsvOption = Annotated[
    Path | None,
    typer.Option(
        "--csv",
        metavar="PREFIX",
        help="Also write PREFIX_summary.csv (a row per run) and PREFIX_intervals.csv (a row "
        "per run and second).",
    ),
]


def errors_console() -> Console:
    """A console on standard error that wraps like ``console`` (for tables when standard
    output carries data, ``--json -``)."""
    if sys.stderr.isatty():
        return make_console("stderr")
    return make_console("stderr", width=120)
