"""The Typer app: every command module put together, and ``main`` (the console script)."""

from __future__ import annotations

import typer

from loadgen import __version__
from loadgen.cli import capacity, compare, doctor, report, run, study, validate
from loadgen.cli.serve import serve_app

app = typer.Typer(
    help="loadgen: network load generator on a completion-port engine.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("run")(run.run)
app.command("capacity")(capacity.capacity)
app.command("report")(report.report)
app.command("compare", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(
    compare.compare
)
app.command("validate")(validate.validate)
app.add_typer(serve_app, name="serve")
app.command("doctor")(doctor.doctor)
app.command("recv-modes")(study.recv_modes)


@app.command()
def version() -> None:
    """Print the loadgen version."""
    print(__version__)


def main() -> None:
    app()
