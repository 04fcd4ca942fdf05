"""The ``loadgen`` command: argument parsing and rendering only; the work is elsewhere."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Protocol

import typer
from rich.console import Console
from rich.table import Table

from loadgen import __version__
from loadgen.engine import CHOICES, Backend, BackendUnavailable, select_backend
from loadgen.scenario import ScenarioError, load_scenario
from loadgen.units import parse_duration_s

if TYPE_CHECKING:
    from loadgen.report.live import LiveView, Snapshot
    from loadgen.result import RunResult
    from loadgen.scenario import Scenario

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

#: Exit codes, the same for every command (README: "Exit codes"). 99 is k6's convention for
#: failed thresholds, so CI scripts carry over. When several apply, the first of 130, 1, 3, 99
#: wins: an invalid run's threshold verdicts judge the generator, not the target.
EXIT_RUNTIME_FAILURE = 1
EXIT_USAGE = 2
EXIT_INVALID_RUN = 3  # the generator itself was the bottleneck (loadgen.selfcheck)
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
        typer.Option(
            "--recv-mode", help="Receive mode: buffered, zero-byte or buffer-ring (io_uring)."
        ),
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
        typer.Option(
            "--json", help="Where to write the JSON result (default: reports/NAME-TIME.json)."
        ),
    ] = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No live view and no summary table.")
    ] = False,
    html_path: Annotated[
        Path | None, typer.Option("--html", help="Also write a self-contained HTML report.")
    ] = None,
    hdr_log_path: Annotated[
        Path | None,
        typer.Option(
            "--hdr-log", help="Also write the interval histograms as an HdrHistogram log."
        ),
    ] = None,
    allow_saturated: AllowSaturatedOption = False,
    processes: Annotated[
        int | None,
        typer.Option(
            "--processes",
            "-p",
            min=1,
            help="Client processes, the load split among them; 1 runs in this process "
            "(default: one per core; with a builtin: target, the cores are shared with it).",
        ),
    ] = None,
    target_processes: Annotated[
        int | None,
        typer.Option(
            "--target-processes",
            min=1,
            help="Processes of a builtin: target (SO_REUSEPORT; Linux) (default: the cores left).",
        ),
    ] = None,
    cluster: Annotated[
        str | None,
        typer.Option(
            "--cluster",
            metavar="ADDRESS",
            help="Run on a Dask cluster (tcp://SCHEDULER:8786): one host shard per worker "
            "with the 'loadgen' resource; --processes is then per host (default: its cores). "
            "Needs pip install 'loadgen\\[distributed]'.",
        ),
    ] = None,
    hosts: Annotated[
        int | None,
        typer.Option(
            "--hosts",
            min=1,
            help="With --cluster: how many hosts (workers) to use, by default all; "
            "fewer there is an error.",
        ),
    ] = None,
) -> None:
    """Run a scenario and write its JSON result.

    Exit 3 when the generator itself was the bottleneck (CPU, or an open-model schedule it
    could not keep); the result says why. 99 when a threshold failed.
    """
    from loadgen.runner import default_processes
    from loadgen.runner import run as run_scenario
    from loadgen.shard import ShardError
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
    if hosts is not None and cluster is None:
        raise _fail("--hosts needs --cluster", EXIT_USAGE)
    from loadgen.limits import ConnectionLimitError, fit_run

    if cluster is not None:
        result = _run_on_cluster(scenario, cluster, hosts, processes, backend, quiet)
        _finish_run(result, json_path, html_path, hdr_log_path, quiet, allow_saturated)
        return
    client_processes, builtin_processes = default_processes(scenario, processes, target_processes)
    try:  # descriptors, ports, memory: spread over processes and sources, or refuse
        fit = fit_run(
            scenario,
            client_processes,
            builtin_processes,
            processes_fixed=processes is not None,
            target_processes_fixed=target_processes is not None,
        )
    except ConnectionLimitError as exc:
        raise _fail(str(exc), EXIT_USAGE) from None
    for notice in fit.notices:
        errors.print(notice, highlight=False)
    scenario = fit.scenario
    try:
        result = run_scenario(
            scenario,
            backend=backend,
            notice=lambda m: errors.print(m),
            live=None if quiet else _live_view(scenario),
            processes=fit.processes,
            target_processes=fit.target_processes,
        )
    except BackendUnavailable as exc:
        raise _fail(str(exc), EXIT_USAGE) from None
    except (TargetError, ShardError) as exc:
        raise _fail(str(exc), EXIT_RUNTIME_FAILURE) from None
    _finish_run(result, json_path, html_path, hdr_log_path, quiet, allow_saturated)


def _live_view(scenario: Scenario) -> Callable[[Callable[[], Snapshot]], LiveView]:
    from loadgen.report.live import LiveView

    def live_view(read: Callable[[], Snapshot]) -> LiveView:
        # Plain log lines: every 5 s, or about ten per run for short runs (at least 1 s apart).
        every_s = min(5.0, max(1.0, scenario.plan.duration / 10))
        return LiveView(scenario.name, read, console, line_interval_s=every_s)

    return live_view


def _run_on_cluster(
    scenario: Scenario,
    address: str,
    hosts: int | None,
    processes: int | None,
    backend: str,
    quiet: bool,
) -> RunResult:
    """``run --cluster``: the distributed path (``loadgen.distributed.coordinator``)."""
    from loadgen.distributed.coordinator import ClusterError, run_cluster
    from loadgen.engine.base import FeatureUnavailable
    from loadgen.shard import ShardError
    from loadgen.targets.process import TargetError

    try:
        return run_cluster(
            scenario,
            address,
            hosts=hosts,
            processes=processes,
            backend=backend,
            notice=lambda m: errors.print(m, highlight=False),
            live=None if quiet else _live_view(scenario),
        )
    except (ClusterError, FeatureUnavailable) as exc:
        raise _fail(str(exc), EXIT_USAGE) from None
    except (TargetError, ShardError) as exc:
        raise _fail(str(exc), EXIT_RUNTIME_FAILURE) from None


def _finish_run(
    result: RunResult,
    json_path: Path | None,
    html_path: Path | None,
    hdr_log_path: Path | None,
    quiet: bool,
    allow_saturated: bool,
) -> None:
    """Write a run's result and outputs, show it, and exit with the run's code."""
    from loadgen.report.console import (
        render_cluster_problems,
        render_summary,
        render_validity,
    )

    scenario_name = str(result.scenario.get("name", "run"))
    path = result.write(json_path or _default_result_path(scenario_name))
    if not quiet:
        render_summary(result, console)
    else:  # even a quiet CI log must say why the exit code is 3, and which hosts were lost
        if result.invalid:
            render_validity(result, errors)
        if result.cluster is not None:
            render_cluster_problems(result.cluster, errors)
    console.print(f"result: {path}", highlight=False, soft_wrap=True)
    _write_run_outputs(result, path, html_path, hdr_log_path)
    if result.stop_reason.startswith("interrupted"):
        raise typer.Exit(EXIT_INTERRUPTED)
    if result.stop_reason.startswith("failed"):
        raise typer.Exit(EXIT_RUNTIME_FAILURE)
    if result.invalid and not allow_saturated:
        raise typer.Exit(EXIT_INVALID_RUN)
    if not result.thresholds_passed:
        raise typer.Exit(EXIT_THRESHOLDS_FAILED)


def _write_run_outputs(
    result: RunResult, json_path: Path, html_path: Path | None, hdr_log_path: Path | None
) -> None:
    """The optional outputs of ``run``, written after its JSON."""
    from loadgen.report.hdrlog import write_hdr_log
    from loadgen.report.html import write_html
    from loadgen.report.loading import from_result

    try:
        if html_path is not None:
            write_html([from_result(result, source=str(json_path))], html_path)
            console.print(f"report: {html_path}", highlight=False, soft_wrap=True)
        if hdr_log_path is not None:
            write_hdr_log(result, hdr_log_path)
            console.print(f"hdr log: {hdr_log_path}", highlight=False, soft_wrap=True)
    except OSError as exc:
        raise _fail(f"cannot write {exc.filename}: {exc.strerror}", EXIT_RUNTIME_FAILURE) from None


@app.command()
def report(
    results: Annotated[list[Path], typer.Argument(help="Result JSON files, one or more.")],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Where to write the HTML (default: the first RUN.json as .html)."
        ),
    ] = None,
) -> None:
    """Write a self-contained HTML report of one or more results (overlaid)."""
    from loadgen.report.html import write_html
    from loadgen.report.loading import ResultFileError, load_runs

    try:
        runs = load_runs(results)
    except ResultFileError as exc:
        raise _fail(str(exc), EXIT_USAGE) from None
    target = output or results[0].with_suffix(".html")
    try:
        write_html(runs, target)
    except OSError as exc:
        raise _fail(f"cannot write {exc.filename}: {exc.strerror}", EXIT_RUNTIME_FAILURE) from None
    console.print(f"report: {target}", highlight=False, soft_wrap=True)


def _split_sides(tokens: list[str]) -> tuple[list[Path], list[Path]]:
    """``--baseline A [A2 ...] --current B [B2 ...]`` (each flag may repeat, or take =FILE)."""
    sides: dict[str, list[Path]] = {"--baseline": [], "--current": []}
    side: str | None = None
    for token in tokens:
        name, equals, value = token.partition("=")
        if name in sides:
            side = name
            if equals:
                sides[side].append(Path(value))
        elif token.startswith("-"):
            raise _fail(f"compare: no such option {token}", EXIT_USAGE)
        elif side is None:
            raise _fail(f"compare: {token}: put it after --baseline or --current", EXIT_USAGE)
        else:
            sides[side].append(Path(token))
    for name, files in sides.items():
        if not files:
            raise _fail(f"compare: {name} needs at least one result file", EXIT_USAGE)
    return sides["--baseline"], sides["--current"]


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def compare(
    ctx: typer.Context,
    tolerance: Annotated[
        str, typer.Option("--tolerance", help="Largest change that still passes, e.g. 10%.")
    ] = "10%",
    junit_path: Annotated[
        Path | None, typer.Option("--junit", help="Write JUnit XML: one testcase per metric.")
    ] = None,
    markdown_path: Annotated[
        Path | None, typer.Option("--markdown", help="Write the table as markdown.")
    ] = None,
    allow_saturated: AllowSaturatedOption = False,
) -> None:
    """Compare runs: --baseline A.json [A2.json ...] --current B.json [B2.json ...].

    Exit 99 when a metric regressed (beyond --tolerance; with 3+ runs a side, also significant)
    or a current run failed one of its own thresholds; exit 3 (before 99) when a run on either
    side is invalid (its generator was the bottleneck), unless --allow-saturated.

    The markdown table is also appended to $GITHUB_STEP_SUMMARY when that is set.
    """
    from loadgen.report.compare import compare_runs, parse_tolerance
    from loadgen.report.compare_console import render_comparison
    from loadgen.report.junit import comparison_junit
    from loadgen.report.loading import ResultFileError, load_runs
    from loadgen.report.markdown import comparison_markdown

    baseline_files, current_files = _split_sides(list(ctx.args))
    try:
        limit = parse_tolerance(tolerance)
    except ValueError as exc:
        raise _fail(f"--tolerance: {exc}", EXIT_USAGE) from None
    try:
        runs = load_runs([*baseline_files, *current_files])
    except ResultFileError as exc:
        raise _fail(str(exc), EXIT_USAGE) from None
    comparison = compare_runs(runs[: len(baseline_files)], runs[len(baseline_files) :], limit)
    for warning in comparison.warnings:
        errors.print(f"[yellow]warning:[/] {warning.message}", highlight=False, markup=True)
        for detail in warning.details:
            errors.print(f"  {detail}", highlight=False, markup=False)
    render_comparison(comparison, console)
    markdown = comparison_markdown(comparison)
    outputs = [(junit_path, comparison_junit(comparison)), (markdown_path, markdown)]
    summary_file = os.environ.get("GITHUB_STEP_SUMMARY")
    try:
        for target, text in outputs:
            if target is not None:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text, encoding="utf-8")
        if summary_file:
            with open(summary_file, "a", encoding="utf-8") as summary:
                summary.write(markdown + "\n")
    except OSError as exc:
        raise _fail(f"cannot write {exc.filename}: {exc.strerror}", EXIT_RUNTIME_FAILURE) from None
    if comparison.invalid_runs and not allow_saturated:
        raise typer.Exit(EXIT_INVALID_RUN)
    if comparison.failed:
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
ServeProcessesOption = Annotated[
    int,
    typer.Option(
        "--processes",
        min=1,
        help="Processes accepting on the one port (SO_REUSEPORT; Linux only, else 1).",
    ),
]


@serve_app.command("echo")
def serve_echo(
    host: HostOption = "127.0.0.1",
    port: PortOption = 0,
    backend: BackendOption = "auto",
    stop_on_stdin_eof: StopOption = False,
    processes: ServeProcessesOption = 1,
) -> None:
    """Serve echo on the engine; prints `listening on HOST:PORT`."""
    from loadgen.targets.echo import EchoServer

    _serve_builtin(EchoServer, host, port, backend, stop_on_stdin_eof, processes, "echo")


@serve_app.command("http")
def serve_http(
    host: HostOption = "127.0.0.1",
    port: PortOption = 0,
    backend: BackendOption = "auto",
    stop_on_stdin_eof: StopOption = False,
    processes: ServeProcessesOption = 1,
) -> None:
    """Serve HTTP/1.1 on the engine (/status/N, /bytes/N, /chunked/N, /delay/MS, /close);
    prints `listening on HOST:PORT`."""
    from loadgen.targets.http import HttpServer

    _serve_builtin(HttpServer, host, port, backend, stop_on_stdin_eof, processes, "http")


@serve_app.command("stream")
def serve_stream(
    host: HostOption = "127.0.0.1",
    port: PortOption = 0,
    backend: BackendOption = "auto",
    stop_on_stdin_eof: StopOption = False,
    processes: ServeProcessesOption = 1,
) -> None:
    """Serve the stream patterns (push, pull, pushpull, duplex) on the engine; prints
    `listening on HOST:PORT`."""
    from loadgen.targets.stream import StreamServer

    _serve_builtin(StreamServer, host, port, backend, stop_on_stdin_eof, processes, "stream")


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
    processes: int = 1,
    name: str = "",
) -> None:
    """Run a built-in target until Ctrl-C (or stdin's end, for a parent process)."""
    from loadgen.runner import raise_fd_limit
    from loadgen.targets.scaled import WINDOWS_NOTE, ScaledServer, reuse_port_supported

    if processes > 1 and not reuse_port_supported():
        errors.print(WINDOWS_NOTE, highlight=False)
    elif processes > 1:
        make = lambda engine, host, port: ScaledServer(name, engine, host, port, processes)  # noqa: E731

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
    else:
        # Ctrl-C asks the loop to stop (it looks every tick) instead of raising inside it.
        signal.signal(signal.SIGINT, lambda signum, frame: server.stop())
    host_text = f"[{server.address[0]}]" if ":" in server.address[0] else server.address[0]
    print(f"listening on {host_text}:{server.address[1]}", flush=True)
    try:
        server.serve()
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


# The receive-mode memory study lives in its own package (loadgen.study).
from loadgen.study.command import recv_modes  # noqa: E402

app.command("recv-modes")(recv_modes)
