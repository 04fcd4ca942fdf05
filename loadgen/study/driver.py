"""Runs a whole study: every trial of the plan, then the groups, into one ``StudyResult``.

What the numbers include is stated in the result's ``notes``: on loopback the system-wide
kernel counters hold both ends of every connection (the client's sockets and the
target's), and a built-in target keeps its own receive mode fixed (one buffered receive
of 16 KiB posted per connection, on the same backend) whatever mode the client studies,
so differences between modes are the client's.
"""

from __future__ import annotations

import ipaddress
import os
import platform
import socket
from collections.abc import Callable
from datetime import UTC, datetime

from loadgen import __version__
from loadgen.config.receive import ReceiveMode
from loadgen.result.stop import StopKind
from loadgen.run.limits import Fit
from loadgen.study import metrics
from loadgen.study.measure import RunFunction, run_trial, take_sample
from loadgen.study.plan import StudyPlan
from loadgen.study.result import MetricInfo, StudyResult, Trial
from loadgen.study.summary import group_trials
from loadgen.targets.echo import SERVER_BUFFER_BYTES

Progress = Callable[[int, int, Trial], None]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _loopback(plan: StudyPlan) -> bool:
    if plan.base.builtin_target is not None:
        return True
    try:
        return all(ipaddress.ip_address(h).is_loopback for h, _ in plan.base.target_addresses())
    except ValueError:
        return False  # a host name: cannot tell


def study_notes(plan: StudyPlan) -> list[str]:
    notes = []
    builtin = plan.base.builtin_target
    if builtin is not None:
        notes.append(
            f"target: built-in {builtin} in its own process on the same backend; its receive "
            f"mode is fixed whatever the client studies: one buffered receive of "
            f"{SERVER_BUFFER_BYTES // 1024} KiB posted per connection"
        )
    else:
        notes.append(
            f"target: {', '.join(plan.base.targets)} (its own receive mode is its own; its "
            "sockets count only if it runs on this machine)"
        )
    if _loopback(plan):
        notes.append(
            "loopback: the system-wide kernel counters (SUnreclaim, TCP buffer pages; "
            "Windows' KernelNonpaged) hold both ends of every connection, the client's and "
            "the target's; per-process ones (VmPin, RSS, posted bytes, Windows' nonpaged "
            "quota) are the client's only"
        )
    if plan.overrides:
        notes.append(f"scenario settings: {', '.join(plan.overrides)}")
    notes.append(
        "per connection: (median over the window - quiet baseline median) / connections; "
        "spread: min-max over the repeats"
    )
    return notes


def fit_trials(plan: StudyPlan, count: int) -> Fit:
    """How ``count`` connections run: the client and target processes (``--processes``,
    ``--target-processes``, or as ``loadgen run`` chooses, raised to fit the descriptor
    limit) and source addresses (spread over 127.0.0.x past one address's ports). The
    largest mode's memory is checked. Raises ``limits.ConnectionLimitError``."""
    from loadgen.run.api import fit_to_machine

    mode = ReceiveMode.BUFFERED if ReceiveMode.BUFFERED in plan.modes else plan.modes[0]
    scenario = plan.trial_scenario(count, mode)
    return fit_to_machine(scenario, plan.processes, plan.target_processes)


def fit_note(count: int, fit: Fit) -> str:
    """One line of the study's notes: how a connection count ran."""
    target = f", {fit.target_processes} target process(es)" if fit.scenario.builtin_target else ""
    sources = fit.scenario.source_addresses()
    spread = f", from {len(sources)} source address(es)" if sources else ""
    return f"{count:,} connections: {fit.processes} client process(es){target}{spread}"


def _metrics(reasons: dict[str, str]) -> list[MetricInfo]:
    return [
        metric.model_copy(update={"reason": reasons.get(metric.name)})
        for metric in metrics.metrics_for(take_sample())
    ]


def run_study(
    plan: StudyPlan,
    *,
    run: RunFunction | None = None,
    notice: Callable[[str], None] | None = None,
    progress: Progress | None = None,
) -> StudyResult:
    """Every trial of ``plan`` in order; refuses a count this machine cannot hold first
    (``limits.ConnectionLimitError``)."""
    if run is None:
        from loadgen.run.api import run as run_scenario

        run = run_scenario
    fits: dict[int, Fit] = {}
    for count in plan.connections:  # bad input fails before the first trial, not after
        for mode in plan.modes:
            plan.trial_scenario(count, mode)
        fits[count] = fit_trials(plan, count)
        if notice is not None:
            for line in fits[count].notices:
                notice(f"{count:,} connections: {line}")
    started = _now()
    trials: list[Trial] = []
    reasons: dict[str, str] = {}
    backend = plan.backend
    schedule = plan.trials()
    for number, (count, mode, repeat) in enumerate(schedule, 1):
        trial, result, why = run_trial(plan, count, mode, repeat, run, notice, fits[count])
        backend = result.environment.backend  # what "auto" chose
        reasons.update(why)
        trials.append(trial)
        if progress is not None:
            progress(number, len(schedule), trial)
        if result.stop.kind is StopKind.INTERRUPTED:
            break  # Ctrl-C: keep what was measured, run no further trial
    warnings = [
        f"{t.connections:,} connections, {t.mode}, repeat {t.repeat + 1}: {note}"
        for t in trials
        for note in t.notes
    ]
    if len(trials) < len(schedule):
        warnings.append(f"interrupted: {len(trials)} of {len(schedule)} trials ran")
    return StudyResult(
        started_at=started,
        finished_at=_now(),
        environment={
            "backend": backend,
            "os": _os(),
            "python": platform.python_version(),
            "loadgen_version": __version__,
            "hostname": socket.gethostname(),
            "cpu_count": os.cpu_count(),
        },
        plan=plan.describe(),
        notes=study_notes(plan) + [fit_note(count, fits[count]) for count in plan.connections],
        metrics=_metrics(reasons),
        trials=trials,
        groups=group_trials(trials),
        warnings=warnings,
    )


def _os() -> str:
    from loadgen.run.environment import os_description

    return os_description()
