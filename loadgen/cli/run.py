"""``loadgen run``: load a scenario, fit it to this machine, run it (here or on a cluster),
write and show its result, exit with the run's code."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from loadgen.cli.common import (
    EXIT_INTERRUPTED,
    EXIT_INVALID_RUN,
    EXIT_RUNTIME_FAILURE,
    EXIT_THRESHOLDS_FAILED,
    EXIT_USAGE,
    AllowSaturatedOption,
    BackendOption,
    console,
    errors,
    fail,
)
from loadgen.config.scenario import ScenarioError, load_scenario
from loadgen.config.units import parse_duration_s
from loadgen.engine import BackendUnavailable

if TYPE_CHECKING:
    from loadgen.config.scenario import Scenario
    from loadgen.report.live import LiveView
    from loadgen.result.model import RunResult
    from loadgen.run.progress import Snapshot


def _default_result_path(name: str) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return Path("reports") / f"{name}-{stamp}.json"


def run(
    scenario_file: Annotated[Path, typer.Argument(help="Scenario YAML file.")],
    insecure: Annotated[
        bool,
        typer.Option("--insecure", "-k", help="TLS: do not verify the server's certificate."),
    ] = False,
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
    from loadgen.run.api import default_processes
    from loadgen.run.api import run as run_scenario
    from loadgen.run.shard import ShardError
    from loadgen.targets.process import TargetError

    settings = list(overrides or [])
    if recv_mode is not None:
        settings.append(f"receive={recv_mode}")
    if insecure:
        settings.append("tls.verify=false")
    try:
        scenario = load_scenario(scenario_file, settings)
        if duration is not None:
            scenario = scenario.with_duration(parse_duration_s(duration))
    except ScenarioError as exc:
        raise fail(str(exc), EXIT_USAGE) from None
    except ValueError as exc:
        raise fail(f"--duration: {exc}", EXIT_USAGE) from None
    if hosts is not None and cluster is None:
        raise fail("--hosts needs --cluster", EXIT_USAGE)
    from loadgen.run.limits import ConnectionLimitError, fit_run

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
        raise fail(str(exc), EXIT_USAGE) from None
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
        raise fail(str(exc), EXIT_USAGE) from None
    except (TargetError, ShardError) as exc:
        raise fail(str(exc), EXIT_RUNTIME_FAILURE) from None
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
            live=None if quiet else _live_view(scenario),
        )
    except (ClusterError, FeatureUnavailable) as exc:
        raise fail(str(exc), EXIT_USAGE) from None
    except (TargetError, ShardError) as exc:
        raise fail(str(exc), EXIT_RUNTIME_FAILURE) from None


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
        raise fail(f"cannot write {exc.filename}: {exc.strerror}", EXIT_RUNTIME_FAILURE) from None
