"""``loadgen recv-modes``: argument parsing and output only; the study is in ``driver``."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from loadgen.cli.common import SetOption, examples

EXAMPLES = examples(
    "loadgen recv-modes",
    "loadgen recv-modes -c 1000,10000 --modes buffered,zero-byte --repeat 5",
    "loadgen recv-modes scenarios/http-builtin.yaml --out reports/study",
)


def recv_modes(
    scenario_file: Annotated[
        Path | None,
        typer.Argument(
            metavar="SCENARIO",
            help="Scenario whose target and protocol to use (default: builtin:echo).",
        ),
    ] = None,
    connections: Annotated[
        str,
        typer.Option(
            "--connections", "-c", metavar="COUNTS", help="Connection counts, comma-separated."
        ),
    ] = "1000,5000,10000",
    modes: Annotated[
        str | None,
        typer.Option(
            "--modes",
            "-m",
            metavar="MODES",
            help="Receive modes, comma-separated (default: every one known).",
        ),
    ] = None,
    repeat: Annotated[
        int, typer.Option("--repeat", "-r", metavar="N", help="Trials per cell.")
    ] = 3,
    buffer: Annotated[
        str,
        typer.Option(
            "--buffer", metavar="SIZE", help="Receive buffer per connection (buffered mode)."
        ),
    ] = "64KiB",
    settle: Annotated[
        str,
        typer.Option(
            "--settle", metavar="DURATION", help="Wait this long into each phase before sampling."
        ),
    ] = "2s",
    window: Annotated[
        str,
        typer.Option(
            "--window", metavar="DURATION", help="Sample this long per phase (once a second)."
        ),
    ] = "3s",
    out: Annotated[
        Path,
        typer.Option(
            "--out", "-o", metavar="FOLDER", help="Folder for the JSON result and HTML report."
        ),
    ] = Path("reports"),
    backend: Annotated[
        str, typer.Option("--backend", "-b", metavar="BACKEND", help="Engine backend.")
    ] = "auto",
    overrides: SetOption = None,
    processes: Annotated[
        int | None,
        typer.Option(
            "--processes",
            "-p",
            min=1,
            metavar="N",
            help="Client processes per trial (default: as loadgen run, raised to fit the "
            "descriptor limit).",
        ),
    ] = None,
    target_processes: Annotated[
        int | None,
        typer.Option(
            "--target-processes",
            min=1,
            metavar="N",
            help="Processes of a builtin: target (default: the cores left, raised to fit).",
        ),
    ] = None,
) -> None:
    """Measure what receive modes cost in kernel and user memory per connection.

    For each connection count and mode, REPEAT times: a quiet baseline, the connections
    opened and held idle, then under traffic (closed loop), then closed (the counters must
    come back). Writes recv-modes-TIME.json and .html into --out.
    """
    from loadgen.cli.common import (
        EXIT_RUNTIME_FAILURE,
        EXIT_USAGE,
        console,
        keep_result,
        make_console,
    )
    from loadgen.config.scenario import ScenarioError, load_scenario
    from loadgen.config.units import parse_duration_s, parse_size_bytes
    from loadgen.engine import BackendUnavailable
    from loadgen.result.files import OutputError
    from loadgen.result.stop import StopKind, StopReason
    from loadgen.run.interrupts import interrupted_exit_code
    from loadgen.run.limits import ConnectionLimitError
    from loadgen.study.console import render_study
    from loadgen.study.driver import run_study
    from loadgen.study.page import write_study_html
    from loadgen.study.plan import (
        StudyError,
        StudyPlan,
        default_scenario,
        parse_connection_counts,
        parse_modes,
    )
    from loadgen.study.result import Trial
    from loadgen.study.text import signed_bytes
    from loadgen.targets.process import TargetError

    errors = make_console("stderr", soft_wrap=True)

    def fail(message: str, code: int) -> typer.Exit:
        errors.print(f"[red]error:[/] {message}", highlight=False)
        return typer.Exit(code)

    try:
        settings = list(overrides or [])
        base = (
            default_scenario(settings)
            if scenario_file is None
            else load_scenario(scenario_file, settings)
        )
        plan = StudyPlan(
            base=base,
            source=str(scenario_file) if scenario_file else "builtin:echo (default)",
            connections=parse_connection_counts(connections),
            modes=parse_modes(modes),
            repeat=repeat,
            buffer_bytes=int(_parse(parse_size_bytes, buffer, "--buffer")),
            settle_s=_parse(parse_duration_s, settle, "--settle"),
            window_s=_parse(parse_duration_s, window, "--window"),
            backend=backend,
            overrides=tuple(settings),
            processes=processes,
            target_processes=target_processes,
        )
    except (ScenarioError, StudyError) as exc:
        raise fail(str(exc), EXIT_USAGE) from None

    def progress(number: int, total: int, trial: Trial) -> None:
        idle = trial.per_connection["idle"].get("kernel")
        console.print(
            f"[{number}/{total}] {trial.connections:,} connections, {trial.mode}, repeat "
            f"{trial.repeat + 1}: kernel {signed_bytes(idle)}/connection idle"
            + (f" ({'; '.join(trial.notes)})" if trial.notes else ""),
            highlight=False,
        )

    try:
        study = run_study(plan, notice=lambda m: errors.print(m), progress=progress)
    except (ConnectionLimitError, ScenarioError, BackendUnavailable) as exc:
        raise fail(str(exc), EXIT_USAGE) from None
    except TargetError as exc:
        raise fail(str(exc), EXIT_RUNTIME_FAILURE) from None
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    json_target = out / f"recv-modes-{stamp}.json"
    try:
        json_path: Path = study.write(json_target)
    except OutputError as exc:  # keep what hours of measuring gave, and say where
        json_path = Path(keep_result(exc, json_target.name, study.to_json() + "\n"))
        written = False
    else:
        written = True
    html_target = out / f"recv-modes-{stamp}.html"
    try:
        write_study_html(study, html_target)
    except OutputError as exc:
        errors.print(f"[red]error:[/] {exc}", highlight=False)
        written = False
    render_study(study, console)
    console.print(f"result: {json_path}", highlight=False, soft_wrap=True)
    if written:
        console.print(f"report: {html_target}", highlight=False, soft_wrap=True)
    for trial in study.trials:
        interrupted = interrupted_exit_code(StopReason.parse(trial.stop_reason))
        if interrupted is not None:
            raise typer.Exit(interrupted)
    if not written or StopKind.FAILED in {trial.stop_kind for trial in study.trials}:
        raise typer.Exit(EXIT_RUNTIME_FAILURE)


def _parse(parse: object, text: str, option: str) -> float:
    from loadgen.study.plan import StudyError

    assert callable(parse)
    try:
        return float(parse(text))
    except ValueError as exc:
        raise StudyError(f"{option}: {exc}") from None
