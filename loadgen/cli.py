"""The ``loadgen`` command: argument parsing and rendering only; the work is elsewhere."""

from __future__ import annotations

import json
import signal
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Protocol

import typer
from rich.console import Console
from rich.table import Table

from loadgen import __version__
from loadgen.engine import CHOICES, Backend, BackendUnavailable, select_backend
from loadgen.scenario import ScenarioError, load_scenario
from loadgen.units import parse_duration_s

app = typer.Typer(
    help="loadgen: network load generator on a completion-port engine.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
serve_app = typer.Typer(help="Run a built-in target server.", no_args_is_help=True)
app.add_typer(serve_app, name="serve")

# Logs and CI output are read in wide viewers: do not squeeze tables into 80 columns there.
console = Console() if sys.stdout.isatty() else Console(width=120)
errors = Console(stderr=True, soft_wrap=True)  # messages stay one line: greppable, copyable

#: Exit codes: k6's convention for thresholds (99) so CI scripts carry over.
EXIT_RUNTIME_FAILURE = 1
EXIT_USAGE = 2
EXIT_THRESHOLDS_FAILED = 99
EXIT_INTERRUPTED = 130

BackendOption = Annotated[
    str, typer.Option("--backend", "-b", help=f"Engine backend: {', '.join(CHOICES)}.")
]


def _fail(message: str, code: int) -> typer.Exit:
    errors.print(f"[red]error:[/] {message}", highlight=False)
    return typer.Exit(code)


def _default_result_path(name: str) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return Path("reports") / f"{name}-{stamp}.json"


@app.command()
def run(
    scenario_file: Annotated[Path, typer.Argument(help="Scenario YAML file.")],
    backend: BackendOption = "auto",
    recv_mode: Annotated[
        str | None,
        typer.Option("--recv-mode", help="Receive mode: buffered or zero-byte."),
    ] = None,
    duration: Annotated[
        str | None,
        typer.Option("--duration", "-d", help="Run this long, e.g. 30s (phases scale to fit)."),
    ] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a scenario field: path.to.key=value (repeatable)."),
    ] = None,
    json_path: Annotated[
        Path | None,
        typer.Option("--json", help="Where to write the JSON result [reports/NAME-TIME.json]."),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No summary table.")] = False,
) -> None:
    """Run a scenario and write its JSON result."""
    from loadgen.report.console import render_summary
    from loadgen.runner import run as run_scenario
    from loadgen.targets.process import TargetError

    settings = list(overrides or [])
    if recv_mode is not None:
        settings.append(f"receive={recv_mode}")
    try:
        scenario = load_scenario(scenario_file, settings)
        if duration is not None:
            scenario = scenario.with_duration(parse_duration_s(duration))
    except ScenarioError as exc:
        raise _fail(str(exc), EXIT_USAGE) from None
    except ValueError as exc:
        raise _fail(f"--duration: {exc}", EXIT_USAGE) from None
    try:
        result = run_scenario(scenario, backend=backend, notice=lambda m: errors.print(m))
    except BackendUnavailable as exc:
        raise _fail(str(exc), EXIT_USAGE) from None
    except TargetError as exc:
        raise _fail(str(exc), EXIT_RUNTIME_FAILURE) from None
    path = result.write(json_path or _default_result_path(scenario.name))
    if not quiet:
        render_summary(result, console)
    console.print(f"result: {path}", highlight=False, soft_wrap=True)
    if result.stop_reason.startswith("interrupted"):
        raise typer.Exit(EXIT_INTERRUPTED)
    if result.stop_reason.startswith("failed"):
        raise typer.Exit(EXIT_RUNTIME_FAILURE)
    if not result.thresholds_passed:
        raise typer.Exit(EXIT_THRESHOLDS_FAILED)


@app.command()
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


StopOption = Annotated[
    bool, typer.Option(hidden=True, help="Stop when stdin closes (for a parent process).")
]
HostOption = Annotated[str, typer.Option(help="Address to listen on.")]
PortOption = Annotated[int, typer.Option(help="Port (0 picks a free one).")]


@serve_app.command("echo")
def serve_echo(
    host: HostOption = "127.0.0.1",
    port: PortOption = 0,
    backend: BackendOption = "auto",
    stop_on_stdin_eof: StopOption = False,
) -> None:
    """Serve echo on the engine; prints `listening on HOST:PORT`."""
    from loadgen.targets.echo import EchoServer

    _serve_builtin(EchoServer, host, port, backend, stop_on_stdin_eof)


@serve_app.command("http")
def serve_http(
    host: HostOption = "127.0.0.1",
    port: PortOption = 0,
    backend: BackendOption = "auto",
    stop_on_stdin_eof: StopOption = False,
) -> None:
    """Serve HTTP/1.1 on the engine (/status/N, /bytes/N, /chunked/N, /delay/MS, /close);
    prints `listening on HOST:PORT`."""
    from loadgen.targets.http import HttpServer

    _serve_builtin(HttpServer, host, port, backend, stop_on_stdin_eof)


class _BuiltinServer(Protocol):
    address: tuple[str, int]

    def serve(self) -> None: ...

    def stop(self) -> None: ...


def _serve_builtin(
    make: Callable[[Backend, str, int], _BuiltinServer],
    host: str,
    port: int,
    backend: str,
    stop_on_stdin_eof: bool,
) -> None:
    """Run a built-in target until Ctrl-C (or stdin's end, for a parent process)."""
    from loadgen.runner import raise_fd_limit

    try:
        engine = select_backend(backend, notice=lambda m: errors.print(m))
    except BackendUnavailable as exc:
        raise _fail(str(exc), EXIT_USAGE) from None
    raise_fd_limit(1 << 20)
    try:
        server = make(engine, host, port)
    except OSError as exc:
        engine.shutdown()
        raise _fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}", 1) from None
    if stop_on_stdin_eof:
        # The parent owns our life: Ctrl-C in its terminal is its to handle, not ours.
        signal.signal(signal.SIGINT, signal.SIG_IGN)

        def watch_stdin() -> None:
            sys.stdin.read()
            server.stop()

        threading.Thread(target=watch_stdin, daemon=True).start()
    host_text = f"[{server.address[0]}]" if ":" in server.address[0] else server.address[0]
    print(f"listening on {host_text}:{server.address[1]}", flush=True)
    try:
        server.serve()
    except KeyboardInterrupt:
        pass
    finally:
        engine.shutdown()


@app.command()
def doctor(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """What this machine allows: backends, descriptor limit, ports."""
    from loadgen.doctor import diagnose

    report = diagnose()
    if as_json:
        print(json.dumps(report, indent=2))
        return
    table = Table(show_header=False, box=None)
    for name, status in report["backends"].items():
        table.add_row(
            f"backend {name}",
            "[green]available[/]" if status["available"] else f"[red]no[/]: {status['reason']}",
        )
    table.add_row("os", report["os"])
    nofile = report["rlimit_nofile"]
    table.add_row(
        "RLIMIT_NOFILE", f"soft {nofile['soft']:,}, hard {nofile['hard']:,}" if nofile else "n/a"
    )
    ports = report["ephemeral_ports"]
    table.add_row(
        "ephemeral ports",
        f"{ports['low']}-{ports['high']} ({ports['count']:,})" if ports else "not measurable here",
    )
    limit = report["max_connections_per_process"]
    table.add_row("connections / process", f"{limit:,}" if limit else "not measurable here")
    console.print(table)
    for note in report["notes"]:
        console.print(f"- {note}", highlight=False)


@app.command()
def version() -> None:
    """Print the loadgen version."""
    print(__version__)


def main() -> None:
    app()
