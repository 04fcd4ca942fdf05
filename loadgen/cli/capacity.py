"""``loadgen capacity``: the highest load a scenario's target sustains within its SLOs,
found by a search of steps and proven (``loadgen.capacity``)."""

from __future__ import annotations

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
    BackendOption,
    BodyOption,
    HeaderOption,
    InsecureOption,
    MethodOption,
    RequestsPerConnectionOption,
    SetOption,
    console,
    describe_write_error,
    errors,
    examples,
    fail,
)
from loadgen.config.scenario import ScenarioError
from loadgen.result.files import write_atomically

if TYPE_CHECKING:
    from loadgen.capacity.model import CapacityResult, Settings, Vary
    from loadgen.config.scenario import Scenario
    from loadgen.config.thresholds import Threshold

EXAMPLES = examples(
    "loadgen capacity my.yaml --slo 'p99 < 10ms' --slo 'error_rate < 0.1%'",
    "loadgen capacity my.yaml --slo 'p99 < 20ms' --start 1k/s --max 50k/s --html cap.html",
    "loadgen capacity my.yaml --slo 'p99 < 20ms' --expect-at-least 5k/s --junit cap.xml",
    "loadgen capacity my.yaml --vary connections --slo 'p50 < 50ms' --start 10",
    "loadgen capacity https://api.example.com/items --slo 'p99 < 50ms' -H 'Accept: */*'",
    "loadgen report cap.json --step 3    (one step of the search, as a run report)",
)
#: Without an SLO on errors a target that fails fast would look fast: this one is added.
DEFAULT_ERROR_SLO = "error_rate < 1%"
DEFAULT_START = {"rate": "100/s", "connections": "1"}


def _load(text: str, vary: Vary, option: str) -> float:
    """A rate (``5k/s``, or a bare number per second) or a connection count (``500``)."""
    from loadgen.capacity.model import Vary
    from loadgen.config.units import parse_count, parse_rate_per_s

    try:
        if vary is Vary.CONNECTIONS:
            value = float(parse_count(text))
        else:
            try:
                value = float(text)
            except ValueError:
                value = parse_rate_per_s(text)
    except ValueError as exc:
        raise fail(f"{option}: {exc}", EXIT_USAGE) from None
    if value <= 0:
        raise fail(f"{option}: must be above 0, got {text}", EXIT_USAGE)
    return value


def _whole_seconds(text: str, option: str, least: float) -> float:
    from loadgen.config.units import parse_duration_s

    try:
        value = parse_duration_s(text)
    except ValueError as exc:
        raise fail(f"{option}: {exc}", EXIT_USAGE) from None
    if value != round(value) or value < least:
        raise fail(
            f"{option}: give whole seconds, at least {least:g} s (a run's result has one "
            f"histogram per second, and the window is made of them), got {text}",
            EXIT_USAGE,
        )
    return value


def _slos(scenario: Scenario, given: list[str]) -> tuple[list[Threshold], list[str]]:
    """The scenario's thresholds and ``--slo``s (each once), and notices about them."""
    from loadgen.config.thresholds import Threshold

    slos = list(scenario.thresholds)
    for text in given:
        try:
            slo = Threshold.parse(text)
        except ValueError as exc:
            raise fail(f"--slo {text!r}: {exc}", EXIT_USAGE) from None
        if slo.expression not in {s.expression for s in slos}:
            slos.append(slo)
    if not slos:
        raise fail(
            'give at least one SLO: --slo "p99 < 10ms" (or thresholds in the scenario)',
            EXIT_USAGE,
        )
    notices = []
    if not any(slo.metric in ("error_rate", "errors") for slo in slos):
        slos.append(Threshold.parse(DEFAULT_ERROR_SLO))
        notices.append(
            f"no SLO on errors: added {DEFAULT_ERROR_SLO!r} (a target that fails fast would "
            "otherwise look fast; give --slo 'error_rate < X' to choose)"
        )
    return slos, notices


def _default_path(name: str) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return Path("reports") / f"{name}-capacity-{stamp}.json"


def capacity(
    scenario_file: Annotated[
        str,
        typer.Argument(
            metavar="SCENARIO",
            help="Scenario YAML file (its load is the steps'), - to read it from stdin, or a "
            "URL as for run (loadgen capacity https://HOST/path --slo 'p99 < 10ms').",
        ),
    ],
    slo: Annotated[
        list[str] | None,
        typer.Option(
            "--slo",
            metavar="'METRIC OP VALUE'",
            help="An SLO in the threshold syntax, e.g. 'p99 < 10ms' or 'error_rate < 0.1%' "
            "(repeatable; the scenario's thresholds count too).",
        ),
    ] = None,
    vary: Annotated[
        str,
        typer.Option(
            "--vary",
            metavar="rate|connections",
            help="rate: requests per second, open model, Poisson arrivals; connections: "
            "connections of a closed loop, each with the scenario's think time.",
        ),
    ] = "rate",
    start: Annotated[
        str | None,
        typer.Option(
            "--start",
            metavar="LOAD",
            help="The first step's load: a rate (500/s) or connections.",
            show_default="100/s, or 1 connection",
        ),
    ] = None,
    maximum: Annotated[
        str | None,
        typer.Option(
            "--max", metavar="LOAD", help="Grow no further than this load.", show_default="none"
        ),
    ] = None,
    step_duration: Annotated[
        str,
        typer.Option(
            "--step-duration",
            metavar="DURATION",
            help="Each step's measured window (whole seconds).",
        ),
    ] = "10s",
    warmup: Annotated[
        str,
        typer.Option(
            "--warmup", metavar="DURATION", help="Each step's warm-up before the window, discarded."
        ),
    ] = "3s",
    precision: Annotated[
        str,
        typer.Option(
            "--precision", metavar="PERCENT", help="Bisect until the bracket is this narrow."
        ),
    ] = "5%",
    confirm: Annotated[
        int,
        typer.Option(
            "--confirm",
            metavar="N",
            min=0,
            help="Steps at the answer that must all pass, and at the load above that must "
            "break it significantly (0: no proof).",
        ),
    ] = 3,
    expect_at_least: Annotated[
        str | None,
        typer.Option(
            "--expect-at-least",
            metavar="LOAD",
            help="CI gate: exit 99 when the capacity found is lower, e.g. 5k/s.",
        ),
    ] = None,
    overrides: SetOption = None,
    method: MethodOption = None,
    headers: HeaderOption = None,
    body: BodyOption = None,
    requests_per_connection: RequestsPerConnectionOption = None,
    insecure: InsecureOption = False,
    backend: BackendOption = "auto",
    processes: Annotated[
        int | None,
        typer.Option(
            "--processes",
            "-p",
            metavar="N",
            min=1,
            help="Client processes of each step (as for run).",
            show_default="one per core; with a builtin: target, half of them",
        ),
    ] = None,
    target_processes: Annotated[
        int | None,
        typer.Option(
            "--target-processes",
            metavar="N",
            min=1,
            help="Processes of a builtin: target.",
            show_default="the cores left",
        ),
    ] = None,
    cluster: Annotated[
        str | None,
        typer.Option(
            "--cluster",
            metavar="ADDRESS",
            help="Run every step on a Dask cluster, as run --cluster does.",
        ),
    ] = None,
    hosts: Annotated[
        int | None,
        typer.Option(
            "--hosts", metavar="N", min=1, help="With --cluster: hosts to use.", show_default="all"
        ),
    ] = None,
    json_path: Annotated[
        Path | None,
        typer.Option(
            "--json",
            metavar="FILE",
            help="Where to write the JSON result.",
            show_default="reports/NAME-capacity-TIME.json",
        ),
    ] = None,
    html_path: Annotated[
        Path | None,
        typer.Option("--html", metavar="FILE", help="Also write the search as an HTML page."),
    ] = None,
    markdown_path: Annotated[
        Path | None,
        typer.Option(
            "--markdown", metavar="FILE", help="Also write the steps and the answer as markdown."
        ),
    ] = None,
    junit_path: Annotated[
        Path | None,
        typer.Option(
            "--junit", metavar="FILE", help="Also write JUnit XML (the answer, the gate)."
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No table of steps.")] = False,
) -> None:
    """Find the highest load the target sustains within its SLOs, and prove it.

    Steps of fresh runs at one load each (warm-up, then the measured window): grow x2 until
    an SLO breaks, bisect to --precision, then --confirm steps at the answer must all pass
    and as many at the load above must break it significantly. Exit 99 when
    --expect-at-least is not met, 3 when the generator could not offer the load needed.
    """
    from loadgen.capacity.model import Settings, Vary
    from loadgen.report.compare import parse_tolerance
    from loadgen.run.api import default_processes

    try:
        chosen = Vary(vary)
    except ValueError:
        raise fail(f"--vary: rate or connections, got {vary!r}", EXIT_USAGE) from None
    from loadgen.cli.run import load_source
    from loadgen.config.url_run import UrlRun

    settings_given = list(overrides or [])
    if insecure:
        settings_given.append("tls.verify=false")
    request = UrlRun(
        scenario_file,
        method=method,
        headers=tuple(headers or ()),
        body=body,
        requests_per_connection=requests_per_connection,
    )
    try:  # a URL: its steps are of the scenario ``loadgen run URL`` would run
        scenario = load_source(request, settings_given, "capacity")
    except ScenarioError as exc:
        raise fail(str(exc), EXIT_USAGE) from None
    if hosts is not None and cluster is None:
        raise fail("--hosts needs --cluster", EXIT_USAGE)
    slos, notices = _slos(scenario, list(slo or []))
    try:
        fraction = parse_tolerance(precision)
    except ValueError as exc:
        raise fail(f"--precision: {exc}", EXIT_USAGE) from None
    if not 0 < fraction < 1:
        raise fail(f"--precision: between 0% and 100%, got {precision}", EXIT_USAGE)
    first = _load(start or DEFAULT_START[chosen.value], chosen, "--start")
    top = _load(maximum, chosen, "--max") if maximum is not None else None
    if top is not None and top < first:
        raise fail(f"--max {maximum} is below --start {start}", EXIT_USAGE)
    settings = Settings(
        vary=chosen,
        slos=[s.expression for s in slos],
        start=first,
        maximum=top,
        step_duration_s=_whole_seconds(step_duration, "--step-duration", 1),
        warmup_s=_whole_seconds(warmup, "--warmup", 0),
        precision=fraction,
        confirm=confirm,
        processes=processes,
        cluster=cluster,
        hosts=hosts,
        backend=backend,
        expect_at_least=(
            _load(expect_at_least, chosen, "--expect-at-least") if expect_at_least else None
        ),
    )
    _check_first_step(scenario, settings, slos)
    for notice in notices:
        errors.print(notice, highlight=False)
    client, target = default_processes(scenario, processes, target_processes)
    result = _search(scenario, settings, slos, client, target, processes is not None, quiet)
    _finish(result, json_path, html_path, markdown_path, junit_path)


def _check_first_step(scenario: Scenario, settings: Settings, slos: list[Threshold]) -> None:
    """A scenario that cannot be a step (a stream in the open model...) is refused now."""
    from pydantic import ValidationError

    from loadgen.capacity.steps import step_scenario

    try:
        step_scenario(scenario, settings.vary, settings.start, 16, 1.0, slos)
    except ValidationError as exc:
        problems = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
        raise fail(
            f"{scenario.name}: cannot vary the {settings.vary.value} of this scenario: {problems}",
            EXIT_USAGE,
        ) from None


def _search(
    scenario: Scenario,
    settings: Settings,
    slos: list[Threshold],
    client: int,
    target: int,
    processes_fixed: bool,
    quiet: bool,
) -> CapacityResult:
    from loadgen.capacity.console import StepTable
    from loadgen.capacity.driver import Callbacks, run_capacity
    from loadgen.capacity.text import format_load

    table = StepTable(console, settings)
    if not quiet:
        bound = f" up to {format_load(settings.maximum, settings.vary)}" if settings.maximum else ""
        latency = "corrected latency" if settings.vary.value == "rate" else "latency"
        console.print(
            f"capacity of {scenario.name}: SLOs {', '.join(settings.slos)}; from "
            f"{format_load(settings.start, settings.vary)}{bound}, steps of "
            f"{settings.warmup_s:g} s warm-up + {settings.step_duration_s:g} s measured "
            f"({latency} of the measured window)",
            highlight=False,
            soft_wrap=True,
        )
    callbacks = Callbacks(
        on_step=None if quiet else table.step,
        on_drain=None if quiet else table.drain,
        notice=lambda message: errors.print(message, highlight=False),
    )
    return run_capacity(
        scenario,
        settings,
        slos,
        client_processes=client,
        target_processes=target,
        processes_fixed=processes_fixed,
        callbacks=callbacks,
    )


def _finish(
    result: CapacityResult,
    json_path: Path | None,
    html_path: Path | None,
    markdown_path: Path | None,
    junit_path: Path | None,
) -> None:
    """Write the result and its outputs, print the answer, exit with the search's code."""
    from loadgen.capacity.console import expectation_met, render_outcome
    from loadgen.capacity.model import Status
    from loadgen.capacity.outputs import capacity_junit, capacity_markdown
    from loadgen.capacity.page import write_capacity_html

    render_outcome(result, console)
    try:
        path = result.write(json_path or _default_path(str(result.scenario.get("name", "run"))))
        console.print(f"result: {path}", highlight=False, soft_wrap=True)
        if html_path is not None:
            write_capacity_html(result, html_path)
            console.print(f"report: {html_path}", highlight=False, soft_wrap=True)
        for target, text in (
            (markdown_path, capacity_markdown(result) if markdown_path else ""),
            (junit_path, capacity_junit(result) if junit_path else ""),
        ):
            if target is not None:
                write_atomically(target, text)
    except OSError as exc:
        raise fail(
            describe_write_error(exc.filename or "a file", exc), EXIT_RUNTIME_FAILURE
        ) from None
    status = result.outcome.status
    if status is Status.INTERRUPTED:
        raise typer.Exit(EXIT_INTERRUPTED)
    if status is Status.FAILED:
        raise typer.Exit(EXIT_RUNTIME_FAILURE)
    met = expectation_met(result)
    if status is Status.GENERATOR_LIMITED and not (
        result.settings.expect_at_least is not None and met
    ):
        raise typer.Exit(EXIT_INVALID_RUN)
    if not met:
        raise typer.Exit(EXIT_THRESHOLDS_FAILED)
