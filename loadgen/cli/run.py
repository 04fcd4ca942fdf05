"""``loadgen run``: load a scenario, fit it to this machine, run it (here or on a cluster),
write and show its result, exit with the run's code."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from loadgen.cli.common import (
    EXIT_INVALID_RUN,
    EXIT_RUNTIME_FAILURE,
    EXIT_THRESHOLDS_FAILED,
    EXIT_USAGE,
    STDOUT_PATH,
    AllowSaturatedOption,
    BackendOption,
    describe_write_error,
    errors,
    fail,
    keep_result,
    screen_for,
)
from loadgen.config.plan import LoadPlan
from loadgen.config.scenario import ScenarioError, load_scenario
from loadgen.config.units import parse_duration_s
from loadgen.engine import BackendUnavailable
from loadgen.result.stop import StopKind, StopReason

if TYPE_CHECKING:
    from rich.console import Console

    from loadgen.config.scenario import Scenario
    from loadgen.report.live import LiveView
    from loadgen.result.model import RunResult
    from loadgen.run.progress import Snapshot


def _default_result_path(name: str) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return Path("reports") / f"{name}-{stamp}.json"


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
            "--json",
            help="Where to write the JSON result (default: reports/NAME-TIME.json); "
            "- for standard output (everything else then goes to stderr).",
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
    """Run a scenario and write its JSON result.

    Exit 3 when the generator itself was the bottleneck (CPU, or an open-model schedule it
    could not keep); the result says why. 99 when a threshold failed.
    """
    from loadgen.run.api import run as run_scenario
    from loadgen.run.limits import ConnectionLimitError
    from loadgen.run.shard import ShardError
    from loadgen.targets.process import TargetError

    screen = screen_for(json_path)
    settings = list(overrides or [])
    if recv_mode is not None:
        settings.append(f"receive={recv_mode}")
    try:
        scenario = load_scenario(scenario_file, settings)
    except ScenarioError as exc:
        raise fail(str(exc), EXIT_USAGE) from None
    if duration is not None:
        try:
            scenario = scenario.with_duration(parse_duration_s(duration))
        except ValueError as exc:
            raise fail(f"--duration: {exc}", EXIT_USAGE) from None
    if hosts is not None and cluster is None:
        raise fail("--hosts needs --cluster", EXIT_USAGE)
    if cluster is not None:
        result = _run_on_cluster(
            scenario, cluster, hosts, processes, backend, quiet, screen, verbose
        )
        _finish_run(
            result, json_path, html_path, hdr_log_path, quiet, allow_saturated, screen, verbose
        )
        return
    from loadgen.run.sources import unusable_source

    problem = unusable_source(scenario.source_addresses())  # on the hosts for --cluster
    if problem is not None:
        raise fail(f"{scenario_file}: source: {problem}", EXIT_USAGE)
    try:  # fit=True: descriptors, ports, memory: spread over processes and sources, or refuse
        result = run_scenario(
            scenario,
            backend=backend,
            notice=lambda m: errors.print(m, highlight=False),
            live=None if quiet else _live_view(scenario, screen),
            processes=processes,
            target_processes=target_processes,
            fit=True,
        )
    except (BackendUnavailable, ConnectionLimitError) as exc:
        raise fail(str(exc), EXIT_USAGE) from None
    except (TargetError, ShardError) as exc:
        _print_traceback(getattr(exc, "stop", None), verbose)
        raise fail(str(exc), EXIT_RUNTIME_FAILURE) from None
    _finish_run(result, json_path, html_path, hdr_log_path, quiet, allow_saturated, screen, verbose)


def _live_view(scenario: Scenario, screen: Console) -> Callable[[Callable[[], Snapshot]], LiveView]:
    from loadgen.report.live import LiveView

    def live_view(read: Callable[[], Snapshot]) -> LiveView:
        # Plain log lines: every 5 s, or about ten per run for short runs (at least 1 s apart).
        every_s = min(5.0, max(1.0, LoadPlan.from_scenario(scenario).duration_s / 10))
        return LiveView(scenario.name, read, screen, line_interval_s=every_s)

    return live_view


def _run_on_cluster(
    scenario: Scenario,
    address: str,
    hosts: int | None,
    processes: int | None,
    backend: str,
    quiet: bool,
    screen: Console,
    verbose: bool,
) -> RunResult:
    """``run --cluster``: the distributed path (``loadgen.distributed.coordinator``)."""
    from loadgen.distributed.coordinator import ClusterError, run_cluster
    from loadgen.engine.base import FeatureUnavailable
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
            live=None if quiet else _live_view(scenario, screen),
        )
    except (ClusterError, FeatureUnavailable) as exc:
        raise fail(str(exc), EXIT_USAGE) from None
    except (TargetError, ShardError) as exc:
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


def _finish_run(
    result: RunResult,
    json_path: Path | None,
    html_path: Path | None,
    hdr_log_path: Path | None,
    quiet: bool,
    allow_saturated: bool,
    screen: Console,
    verbose: bool = False,
) -> None:
    """Write a run's result and outputs, show it on ``screen``, and exit with the run's
    code."""
    from loadgen.report.console import (
        render_cluster_problems,
        render_summary,
        render_validity,
    )
    from loadgen.run.interrupts import interrupted_exit_code

    scenario_name = str(result.scenario.get("name", "run"))
    default_path = _default_result_path(scenario_name)
    path, written = _write_result(result, json_path or default_path, default_path.name)
    if not quiet:
        render_summary(result, screen)
    else:  # even a quiet CI log must say why the exit code is 3, and which hosts were lost
        if result.invalid:
            render_validity(result, errors)
        if result.cluster is not None:
            render_cluster_problems(result.cluster, errors)
    screen.print(f"result: {path}", highlight=False, soft_wrap=True)
    outputs_written = _write_run_outputs(result, path, html_path, hdr_log_path, screen)
    interrupted = interrupted_exit_code(result.stop)
    if interrupted is not None:
        raise typer.Exit(interrupted)
    if result.stop.kind is StopKind.FAILED:
        _print_traceback(result.stop, verbose)
        raise typer.Exit(EXIT_RUNTIME_FAILURE)
    if not (written and outputs_written):
        raise typer.Exit(EXIT_RUNTIME_FAILURE)
    if result.invalid and not allow_saturated:
        raise typer.Exit(EXIT_INVALID_RUN)
    if not result.thresholds_passed:
        raise typer.Exit(EXIT_THRESHOLDS_FAILED)


def _write_result(result: RunResult, json_path: Path, fallback_name: str) -> tuple[str, bool]:
    """Write the JSON result to ``json_path`` (``-``: standard output); (where it is, True).
    A path that cannot be written is said so, and the result kept in a file of its own
    elsewhere (``result.files.keep_elsewhere``): (that file, False). Nothing is lost."""
    from loadgen.result.files import OutputError

    text = result.to_json() + "\n"
    if str(json_path) == STDOUT_PATH:
        sys.stdout.write(text)
        sys.stdout.flush()
        return "standard output", True
    try:
        return str(result.write(json_path)), True
    except OutputError as exc:
        return keep_result(exc, fallback_name, text), False


def _write_run_outputs(
    result: RunResult,
    json_path: str,
    html_path: Path | None,
    hdr_log_path: Path | None,
    screen: Console,
) -> bool:
    """The optional outputs of ``run``, written after its JSON; False when one could not be
    written (said so, naming its path; the others are still tried)."""
    from loadgen.report.hdrlog import write_hdr_log
    from loadgen.report.html import write_html
    from loadgen.report.loading import from_result

    written = True
    if html_path is not None:
        try:
            write_html([from_result(result, source=json_path)], html_path)
            screen.print(f"report: {html_path}", highlight=False, soft_wrap=True)
        except OSError as exc:
            errors.print(f"[red]error:[/] {describe_write_error(html_path, exc)}", highlight=False)
            written = False
    if hdr_log_path is not None:
        try:
            write_hdr_log(result, hdr_log_path)
            screen.print(f"hdr log: {hdr_log_path}", highlight=False, soft_wrap=True)
        except OSError as exc:
            errors.print(
                f"[red]error:[/] {describe_write_error(hdr_log_path, exc)}", highlight=False
            )
            written = False
    return written
