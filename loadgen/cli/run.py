"""``loadgen run``: load a scenario, fit it to this machine, run it (here or on a cluster),
write and show its result, exit with the run's code."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from loadgen.cli.common import (
    EXIT_INVALID_RUN,
    EXIT_RUNTIME_FAILURE,
    EXIT_THRESHOLDS_FAILED,
    EXIT_USAGE,
    AllowSaturatedOption,
    BackendOption,
    BodyOption,
    CsvOption,
    HeaderOption,
    InsecureOption,
    MethodOption,
    RequestsPerConnectionOption,
    SetOption,
    console,
    describe_write_error,
    errors,
    errors_console,
    examples,
    fail,
    keep_result,
)
from loadgen.config.messages import choice_problem
from loadgen.config.plan import LoadPlan
from loadgen.config.receive import ReceiveMode
from loadgen.config.scenario import ScenarioError, load_scenario, parse_scenario
from loadgen.config.targets import is_url
from loadgen.config.units import parse_duration_s
from loadgen.config.url_run import UrlRun, url_scenario
from loadgen.engine import BackendUnavailable
from loadgen.result.stop import StopKind, StopReason

if TYPE_CHECKING:
    from loadgen.config.scenario import Scenario
    from loadgen.report.live import LiveView
    from loadgen.result.model import RunResult
    from loadgen.run.progress import Snapshot, TickBoard

#: The metrics endpoint listens on loopback unless told otherwise (its numbers name targets).
DEFAULT_METRICS_BIND = "127.0.0.1"


EXAMPLES = examples(
    "loadgen run http://127.0.0.1:8080/ -c 100 -d 30s",
    "loadgen run http://127.0.0.1:8080/ --rate 2k/s -H 'Accept: */*'",
    "loadgen run scenarios/quickstart.yaml",
    "loadgen run - < my.yaml",
    "loadgen run my.yaml -d 30s --set load.connections=1000 --set load.think_time=10ms",
    "loadgen run my.yaml --json - --quiet | jq .summary",
    "loadgen run my.yaml --label main --html main.html --csv reports/main",
    "loadgen run my.yaml --metrics-port 9464    (Prometheus/Grafana: scrape /metrics)",
)
#: ``--json -``: the result goes to standard output, everything else to standard error.
STDOUT = Path("-")


def _default_result_path(name: str) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return Path("reports") / f"{name}-{stamp}.json"


def _receive_setting(recv_mode: str) -> str:
    """``--recv-mode`` as a ``--set``, checked here so an error names the flag."""
    modes = [mode.value for mode in ReceiveMode]
    if recv_mode not in modes:
        raise fail(f"--recv-mode: {choice_problem(recv_mode, modes)}", EXIT_USAGE)
    return f"receive={recv_mode}"


def run(
    scenario_file: Annotated[
        str,
        typer.Argument(
            metavar="SCENARIO",
            help="Scenario YAML file, - to read it from stdin, or a URL "
            "(loadgen run http://127.0.0.1:8080/ -c 100 -d 30s).",
        ),
    ],
    connections: Annotated[
        int | None,
        typer.Option(
            "--connections",
            "-c",
            min=1,
            metavar="N",
            help="URL runs: connections, e.g. -c 100 (a URL run lasts 10 s unless -d says).",
            show_default="10; with --rate, 100",
        ),
    ] = None,
    rate: Annotated[
        str | None,
        typer.Option(
            "--rate", metavar="RATE", help="URL runs: open model at this rate, e.g. --rate 2k/s."
        ),
    ] = None,
    method: MethodOption = None,
    headers: HeaderOption = None,
    body: BodyOption = None,
    requests_per_connection: RequestsPerConnectionOption = None,
    insecure: InsecureOption = False,
    backend: BackendOption = "auto",
    recv_mode: Annotated[
        str | None,
        typer.Option(
            "--recv-mode",
            metavar="MODE",
            help="Receive mode: buffered, zero-byte or buffer-ring (io_uring).",
            show_default="the scenario's receive, buffered if it has none",
        ),
    ] = None,
    duration: Annotated[
        str | None,
        typer.Option(
            "--duration",
            "-d",
            metavar="DURATION",
            help="Run this long, e.g. 30s or 1m30s (phases scale to fit).",
            show_default="the scenario's",
        ),
    ] = None,
    overrides: SetOption = None,
    json_path: Annotated[
        Path | None,
        typer.Option(
            "--json",
            metavar="FILE",
            help="Where to write the JSON result; - for standard output (the summary then "
            "goes to standard error).",
            show_default="reports/NAME-TIME.json",
        ),
    ] = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No live view and no summary table.")
    ] = False,
    html_path: Annotated[
        Path | None,
        typer.Option("--html", metavar="FILE", help="Also write a self-contained HTML report."),
    ] = None,
    csv_prefix: CsvOption = None,
    hdr_log_path: Annotated[
        Path | None,
        typer.Option(
            "--hdr-log",
            metavar="FILE",
            help="Also write the interval histograms as an HdrHistogram log.",
        ),
    ] = None,
    label: Annotated[
        str | None,
        typer.Option(
            "--label",
            metavar="NAME",
            help="A name for this run in reports and comparisons (kept in the result).",
            show_default="the scenario's name",
        ),
    ] = None,
    allow_saturated: AllowSaturatedOption = False,
    processes: Annotated[
        int | None,
        typer.Option(
            "--processes",
            "-p",
            min=1,
            metavar="N",
            help="Client processes (at least 1), the load split among them; 1 runs in this "
            "process.",
            show_default="one per core; with a builtin: target, half of them",
        ),
    ] = None,
    target_processes: Annotated[
        int | None,
        typer.Option(
            "--target-processes",
            min=1,
            metavar="N",
            help="Processes of a builtin: target (SO_REUSEPORT; Linux).",
            show_default="the cores left",
        ),
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            "--metrics-port",
            min=0,
            max=65535,
            metavar="PORT",
            help="Serve live OpenMetrics (Prometheus) at http://BIND:PORT/metrics while the "
            "run runs: requests, errors by kind, bytes, connections, CPU, a latency "
            "histogram (0 picks a free port).",
        ),
    ] = None,
    metrics_bind: Annotated[
        str,
        typer.Option(
            "--metrics-bind",
            metavar="ADDRESS",
            help="Address of the metrics endpoint; 0.0.0.0 to let other hosts scrape it.",
        ),
    ] = DEFAULT_METRICS_BIND,
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
            metavar="N",
            help="With --cluster: how many hosts (workers) to use; fewer there is an error.",
            show_default="all",
        ),
    ] = None,
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose",
            "-v",
            help="When loadgen itself fails, print the Python traceback(s) kept in the "
            "result's stop (on stderr).",
        ),
    ] = False,
) -> None:
    """Run a scenario (a file, stdin, or a URL with wrk-style options) and write its JSON
    result.

    Exit 1 when no request succeeded (unless the scenario sets expect_failures: true). Exit 3
    when the generator itself was the bottleneck (CPU, or an open-model schedule it could not
    keep); the result says why and what to do. 99 when a threshold failed.
    """
    from loadgen.run.api import run as run_scenario
    from loadgen.run.limits import ConnectionLimitError
    from loadgen.run.resolve import ResolveError
    from loadgen.run.shard import ShardError
    from loadgen.targets.process import TargetError

    settings = list(overrides or [])
    if recv_mode is not None:
        settings.append(_receive_setting(recv_mode))
    if insecure:
        settings.append("tls.verify=false")
    to_stdout = json_path == STDOUT
    display = errors_console() if to_stdout else console
    url_run = UrlRun(
        scenario_file,
        connections=connections,
        duration=duration,
        rate=rate,
        method=method,
        headers=tuple(headers or ()),
        body=body,
        requests_per_connection=requests_per_connection,
    )
    try:
        scenario = load_source(url_run, settings)
    except ScenarioError as exc:
        raise fail(str(exc), EXIT_USAGE) from None
    if duration is not None:  # a scenario's own ValueErrors are ScenarioErrors, said above
        try:
            scenario = scenario.with_duration(parse_duration_s(duration, unit_required=True))
        except ValueError as exc:
            raise fail(f"--duration: {exc}", EXIT_USAGE) from None
    if hosts is not None and cluster is None:
        raise fail("--hosts needs --cluster", EXIT_USAGE)
    outputs = Outputs(json_path, html_path, hdr_log_path, csv_prefix, label)
    watch = _metrics(scenario, backend, metrics_port, metrics_bind)
    if cluster is not None:
        result = _run_on_cluster(
            scenario, cluster, hosts, processes, backend, None if quiet else display, watch, verbose
        )
        _finish_run(result, outputs, display, quiet, allow_saturated, verbose)
        return
    from loadgen.run.sources import mismatched_source, unusable_source

    sources = scenario.source_addresses()
    problem = unusable_source(sources)  # on the hosts for --cluster
    if problem is None and scenario.builtin_target is None:
        problem = mismatched_source(sources, scenario.target_addresses())
    if problem is not None:
        raise fail(f"{scenario_file}: source: {problem}", EXIT_USAGE)
    try:  # fit=True: descriptors, ports, memory: spread over processes and sources, or refuse
        result = run_scenario(
            scenario,
            backend=backend,
            notice=lambda m: errors.print(m, highlight=False),
            live=None if quiet else _live_view(scenario, display),
            processes=processes,
            target_processes=target_processes,
            fit=True,
            watch=watch,
        )
    except (BackendUnavailable, ConnectionLimitError) as exc:
        raise fail(str(exc), EXIT_USAGE) from None
    except (TargetError, ShardError, ResolveError) as exc:
        _print_traceback(getattr(exc, "stop", None), verbose)
        raise fail(str(exc), EXIT_RUNTIME_FAILURE) from None
    _finish_run(result, outputs, display, quiet, allow_saturated, verbose)


def load_source(options: UrlRun, settings: list[str], command: str = "run") -> Scenario:
    """The scenario of ``run``'s (or ``capacity``'s) argument: a URL (with its options),
    stdin or a file. The URL options with a scenario are refused, naming ``command``."""
    source = options.url
    if is_url(source):
        return url_scenario(options, settings)
    given = [
        flag
        for flag, value in (
            ("-c", options.connections),
            ("--rate", options.rate),
            ("-m", options.method),
            ("-H", options.headers or None),
            ("--body", options.body),
            ("--requests-per-connection", options.requests_per_connection),
        )
        if value is not None
    ]
    if given:
        raise ScenarioError(
            [
                f"{', '.join(given)}: only with a URL (loadgen {command} http://HOST:PORT/ ...); "
                "with a scenario, use --set (e.g. --set load.connections=100)"
            ]
        )
    if source == "-":
        scenario = parse_scenario(sys.stdin.read(), "<stdin>", settings, base_dir=Path.cwd())
    else:
        scenario = load_scenario(source, settings)
    return scenario  # --duration is applied by the caller, which blames it alone


def _live_view(
    scenario: Scenario, display: Console
) -> Callable[[Callable[[], Snapshot]], LiveView]:
    from loadgen.report.live import LiveView

    def live_view(read: Callable[[], Snapshot]) -> LiveView:
        # Plain log lines: every 5 s, or about ten per run for short runs (at least 1 s apart).
        every_s = min(5.0, max(1.0, LoadPlan.from_scenario(scenario).duration_s / 10))
        return LiveView(scenario.name, read, display, line_interval_s=every_s)

    return live_view


def _metrics(
    scenario: Scenario, backend: str, port: int | None, bind: str
) -> Callable[[TickBoard], AbstractContextManager[object]] | None:
    """``--metrics-port``: the endpoint, started when the run's board exists."""
    if port is None:
        return None
    from loadgen.report.openmetrics import MetricsServer, RunInfo

    info = RunInfo(scenario.name, ",".join(scenario.targets), backend)

    @contextmanager
    def serve(board: TickBoard) -> Iterator[None]:
        try:
            server = MetricsServer(board, info, port, bind)
        except OSError as exc:
            raise fail(
                f"--metrics-port {port}: cannot listen on {bind}: {exc.strerror}", EXIT_USAGE
            ) from None
        errors.print(f"metrics: {server.url}", highlight=False, soft_wrap=True)
        with server:
            yield

    return serve


def _run_on_cluster(
    scenario: Scenario,
    address: str,
    hosts: int | None,
    processes: int | None,
    backend: str,
    display: Console | None,
    watch: Callable[[TickBoard], AbstractContextManager[object]] | None,
    verbose: bool,
) -> RunResult:
    """``run --cluster``: the distributed path (``loadgen.distributed.coordinator``);
    ``display`` None: no live view (``--quiet``)."""
    from loadgen.distributed.coordinator import ClusterError, run_cluster
    from loadgen.engine.base import FeatureUnavailable
    from loadgen.run.resolve import ResolveError
    from loadgen.run.shard import ShardError
    from loadgen.targets.process import TargetError

    try:
        return run_cluster(
            scenario,
            address,
            hosts=hosts,
            processes=processes,
            backend=backend,
            notice=lambda m: errors.print(m, highlight=False),
            live=None if display is None else _live_view(scenario, display),
            watch=watch,
        )
    except (ClusterError, FeatureUnavailable) as exc:
        raise fail(str(exc), EXIT_USAGE) from None
    except (TargetError, ShardError, ResolveError) as exc:
        _print_traceback(getattr(exc, "stop", None), verbose)
        raise fail(str(exc), EXIT_RUNTIME_FAILURE) from None


def _print_traceback(stop: StopReason | None, verbose: bool) -> None:
    """``--verbose``: the traceback(s) a failure kept, on stderr, as Python prints them."""
    if stop is None or not stop.traceback:
        return
    if verbose:
        errors.print(stop.traceback.rstrip("\n"), highlight=False, markup=False)
    else:
        errors.print("the result keeps the traceback (stop.traceback); --verbose prints it")


@dataclass(frozen=True)
class Outputs:
    """Where ``run`` writes: the JSON result (``-``: standard output) and the extras."""

    json_path: Path | None
    html_path: Path | None
    hdr_log_path: Path | None
    csv_prefix: Path | None
    label: str | None


def _finish_run(
    result: RunResult,
    outputs: Outputs,
    display: Console,
    quiet: bool,
    allow_saturated: bool,
    verbose: bool = False,
) -> None:
    """Write a run's result and outputs, show it, and exit with the run's code."""
    from loadgen.report.console import (
        render_cluster_problems,
        render_no_success,
        render_summary,
        render_validity,
    )
    from loadgen.run.interrupts import interrupted_exit_code

    if outputs.label is not None:
        result = replace(result, label=outputs.label)
    scenario_name = str(result.scenario.get("name", "run"))
    path, written = _write_result(result, outputs.json_path, scenario_name)
    if not quiet:
        render_summary(result, display)
    else:  # even a quiet CI log must say why the exit code is 3, and which hosts were lost
        if result.invalid:
            render_validity(result, errors)
        if result.cluster is not None:
            render_cluster_problems(result.cluster, errors)
        render_no_success(result, errors)
    if path is not None:
        display.print(f"result: {path}", highlight=False, soft_wrap=True)
    outputs_written = _write_run_outputs(result, path, outputs, display)
    interrupted = interrupted_exit_code(result.stop)
    if interrupted is not None:
        raise typer.Exit(interrupted)
    if result.stop.kind is StopKind.FAILED:
        _print_traceback(result.stop, verbose)
        raise typer.Exit(EXIT_RUNTIME_FAILURE)
    if not (written and outputs_written) or result.no_success:
        raise typer.Exit(EXIT_RUNTIME_FAILURE)
    if result.invalid and not allow_saturated:
        raise typer.Exit(EXIT_INVALID_RUN)
    if not result.thresholds_passed:
        raise typer.Exit(EXIT_THRESHOLDS_FAILED)


def _write_result(
    result: RunResult, json_path: Path | None, scenario_name: str
) -> tuple[Path | None, bool]:
    """Write the JSON result (``-``: standard output, then None); (the file, True). A path
    that cannot be written is said so, naming it, and the result kept in a file of its own
    elsewhere (``result.files.keep_elsewhere``): (that file, False). Nothing is lost."""
    from loadgen.result.files import OutputError

    if json_path == STDOUT:
        sys.stdout.write(result.to_json() + "\n")
        sys.stdout.flush()
        return None, True
    default = _default_result_path(scenario_name)
    try:
        return result.write(json_path or default), True
    except OutputError as exc:
        kept = keep_result(exc, default.name, result.to_json() + "\n")
        return (None if kept == "standard error" else Path(kept)), False


def _write_run_outputs(
    result: RunResult, json_path: Path | None, outputs: Outputs, display: Console
) -> bool:
    """The optional outputs of ``run``, written after its JSON; False when one could not be
    written (said so, naming its path; the others are still written)."""
    from loadgen.report.csv_export import write_csv
    from loadgen.report.hdrlog import write_hdr_log
    from loadgen.report.html import write_html
    from loadgen.report.loading import from_result

    run = from_result(result, source=str(json_path or "standard output"))
    failed = False

    def written(path: Path, write: Callable[[], object]) -> bool:
        nonlocal failed
        try:
            write()
        except OSError as exc:
            errors.print(f"[red]error:[/] {describe_write_error(path, exc)}", highlight=False)
            failed = True
            return False
        return True

    html_path, csv_prefix, hdr_path = outputs.html_path, outputs.csv_prefix, outputs.hdr_log_path
    if html_path is not None and written(html_path, lambda: write_html([run], html_path)):
        display.print(f"report: {html_path}", highlight=False, soft_wrap=True)
    if csv_prefix is not None:
        files: list[Path] = []
        if written(csv_prefix, lambda: files.extend(write_csv([run], csv_prefix))):
            for file in files:
                display.print(f"csv: {file}", highlight=False, soft_wrap=True)
    if hdr_path is not None and written(hdr_path, lambda: write_hdr_log(result, hdr_path)):
        display.print(f"hdr log: {hdr_path}", highlight=False, soft_wrap=True)
    return not failed
