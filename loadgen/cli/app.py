"""The Typer app: every command module put together, and ``main`` (the console script)."""

from __future__ import annotations

from typing import Annotated

import typer

from loadgen import __version__
from loadgen.cli import capacity, compare, doctor, report, run, study, validate
from loadgen.cli.common import Command, Group, examples
from loadgen.cli.serve import serve_app

#: -h as well as --help, on every command.
CONTEXT = {"help_option_names": ["-h", "--help"]}

app = typer.Typer(
    help="loadgen: network load generator on a completion-port engine.",
    epilog=examples(
        "loadgen run scenarios/quickstart.yaml",
        "loadgen run my.yaml --set load.connections=1000 --html report.html",
        "loadgen compare --baseline main.json --current pr.json",
        "loadgen --install-completion    (tab completion for bash, zsh, fish, PowerShell)",
    ),
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion
    pretty_exceptions_enable=False,
    cls=Group,
    context_settings=CONTEXT,
    rich_markup_mode="rich",
)


def _print_version(value: bool) -> None:
    if value:
        print(__version__)
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            "-V",
            callback=_print_version,
            is_eager=True,
            help="Print the loadgen version and exit.",
        ),
    ] = False,
) -> None:
    """loadgen: network load generator on a completion-port engine."""


app.command("run", cls=Command, epilog=run.EXAMPLES, context_settings=CONTEXT)(run.run)
app.command("capacity", cls=Command, epilog=capacity.EXAMPLES, context_settings=CONTEXT)(
    capacity.capacity
)
app.command("report", cls=Command, epilog=report.EXAMPLES, context_settings=CONTEXT)(report.report)
app.command(
    "compare",
    cls=compare.CompareCommand,
    epilog=compare.EXAMPLES,
    context_settings=CONTEXT,
)(compare.compare)
app.command("validate", cls=Command, epilog=validate.EXAMPLES, context_settings=CONTEXT)(
    validate.validate
)
app.add_typer(serve_app, name="serve")
app.command(
    "doctor",
    cls=Command,
    epilog=examples("loadgen doctor", "loadgen doctor --json"),
    context_settings=CONTEXT,
)(doctor.doctor)
app.command("recv-modes", cls=Command, epilog=study.EXAMPLES, context_settings=CONTEXT)(
    study.recv_modes
)


@app.command(
    cls=Command, epilog=examples("loadgen version", "loadgen --version"), context_settings=CONTEXT
)
def version() -> None:
    """Print the loadgen version (the same as --version)."""
    print(__version__)


def main() -> None:
    app()
