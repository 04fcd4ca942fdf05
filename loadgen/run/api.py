"""Wires a scenario, an engine, a load client (request/response or stream) and a recorder
into a RunResult.

``run()`` never lets a target's behaviour become a crash: refused, reset or silent targets
are counted by error kind. Ctrl-C (SIGINT) ends the run early and the result is still
returned, marked ``partial``. Only a failure of loadgen itself (no backend, a built-in
target that cannot start, no shard process that produced anything) raises, and so do a
target host name that does not resolve (``ResolveError``, ``loadgen.run.resolve``) and a
receive feature the chosen backend lacks (``receive: buffer-ring`` or ``register_buffers``
off io_uring), or TLS, which this build does not have yet: ``FeatureUnavailable``, before
the target starts, naming the backend or saying so.

A built-in target whose process dies before the run's end makes the result partial and
failed (``failed: the built-in target (pid 4242) killed by SIGKILL during the run``): the
errors after its death measure no target.

``run()`` starts the built-in target (if any), splits the scenario into shards, runs them
(in this process for one, as spawned processes for more: ``loadgen.run.processes``) and
merges their results. One shard's run is ``loadgen.run.measure.run_shard``.

``run(..., fit=True)`` first fits the run to this machine as ``loadgen run`` does
(``fit``: process counts by default, the descriptor, port and memory checks of
``loadgen.run.limits.fit_run``): a run that cannot fit raises ``ConnectionLimitError``
before anything starts, and what was changed to fit is told to ``notice``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack, nullcontext
from dataclasses import replace

from loadgen.config.plan import LoadPlan
from loadgen.config.scenario import Scenario
from loadgen.engine import select_backend
from loadgen.result.model import RunResult
from loadgen.result.stop import StopKind, StopReason
from loadgen.run.limits import Fit, fit_run
from loadgen.run.measure import run_shard
from loadgen.run.processes import run_processes, shard_specs
from loadgen.run.progress import Snapshot, TickBoard
from loadgen.run.resolve import resolve_targets
from loadgen.run.shard import LocalChannel
from loadgen.run.split import usable_processes
from loadgen.run.wiring import check_receive_features
from loadgen.targets.process import RunningTarget, running_builtin_target

Notice = Callable[[str], None]
LiveFactory = Callable[[Callable[[], Snapshot]], AbstractContextManager[object]]
#: Something that watches the run's board while it runs (the metrics endpoint).
BoardWatch = Callable[[TickBoard], AbstractContextManager[object]]


def run(
    scenario: Scenario,
    *,
    backend: str = "auto",
    notice: Notice | None = None,
    seed: int | None = None,
    live: LiveFactory | None = None,
    processes: int | None = None,
    target_processes: int | None = None,
    fit: bool = False,
    watch: BoardWatch | None = None,
    connect_before_start: bool = False,
) -> RunResult:
    """Run a scenario to its end (or to Ctrl-C) and return its result.

    ``live``, when given, is entered around the run with a function that reads the run's
    numbers at any moment (from another thread): the CLI's live view. ``watch`` is entered
    around it with the run's ``TickBoard`` itself (the metrics endpoint reads its latency).

    ``processes`` > 1 splits the load over that many shard processes (``loadgen.run.processes``)
    and merges their results; 1 runs the one shard in this process. ``target_processes``
    is how many processes a built-in target serves on (SO_REUSEPORT; 1 on Windows).
    Without ``fit`` both default to 1. With ``fit=True`` the run is first fitted to this
    machine (``fit_to_machine``): counts not given are chosen as ``loadgen run`` chooses
    them, and raised (with a notice) where the descriptor limit needs more processes; a run
    that cannot fit raises ``ConnectionLimitError``.

    ``connect_before_start`` opens the connections the run starts with before its start
    instant (``loadgen.run.shard``), so an open-model schedule does not begin with requests
    waiting for connections still being opened (a capacity search's steps do this).
    """
    if fit:
        fitted = fit_to_machine(scenario, processes, target_processes)
        if notice is not None:
            for line in fitted.notices:
                notice(line)
        scenario = fitted.scenario
        processes, target_processes = fitted.processes, fitted.target_processes
    processes = processes or 1
    target_processes = target_processes or 1
    plan = LoadPlan.from_scenario(scenario)
    engine = select_backend(backend, notice=notice)
    engine_name = engine.name
    try:
        check_receive_features(scenario, engine)
    finally:
        engine.shutdown()  # each shard makes its own; this one resolved "auto" (and told why)
    usable = usable_processes(plan, processes)
    if usable < processes and notice is not None:
        notice(f"{usable} processes, not {processes}: the scenario has {usable} connections")
    processes = usable
    with ExitStack() as stack:
        builtin = scenario.builtin_target
        target: RunningTarget | None = None
        if builtin is not None:
            target_processes = builtin_processes(target_processes, notice)
            target = stack.enter_context(
                running_builtin_target(builtin, backend=engine_name, processes=target_processes)
            )
        addresses = (
            [target.address]
            if target is not None
            else resolve_targets(scenario.target_addresses(), scenario.timeouts.connect, notice)
        )
        specs = shard_specs(
            scenario,
            processes,
            engine_name,
            addresses,
            seed,
            connect_before_start=connect_before_start,
        )
        board = TickBoard(processes, plan.duration_s, plan.phase_label)
        watching = live(board.snapshot) if live else nullcontext()
        watched = watch(board) if watch else nullcontext()
        with watched, watching:
            if processes == 1:
                channel = LocalChannel(board.add if live or watch else None)
                result = run_shard(specs[0], channel)
                board.retire(0)
            else:
                result = run_processes(specs, scenario, board)
        death = None
        if target is not None and (how := target.death()) is not None:
            death = f"the built-in target (pid {target.process.pid}) {how}"
    if death is not None:
        result = _target_died(result, death)
    if processes == 1:  # the one slice is the whole scenario: keep its own spelling
        result = replace(result, scenario=scenario.to_dict())
    if builtin is not None:
        result = replace(
            result, environment=replace(result.environment, target_processes=target_processes)
        )
    return result


def _target_died(result: RunResult, what: str) -> RunResult:
    """A run whose built-in target died before its end: partial, and failed unless it was
    interrupted (what it measured after the death is the death's errors, not the target)."""
    stop = result.stop
    if stop.kind is StopKind.INTERRUPTED:
        return replace(result, partial=True)
    if stop.kind is StopKind.FAILED:
        return replace(result, partial=True, stop=replace(stop, detail=f"{stop.detail}; {what}"))
    return replace(result, partial=True, stop=StopReason(StopKind.FAILED, f"{what} during the run"))


def fit_to_machine(
    scenario: Scenario, processes: int | None = None, target_processes: int | None = None
) -> Fit:
    """The run policy of ``loadgen run``: process counts (``default_processes`` for the
    ones not given), then ``limits.fit_run`` (descriptors, ports, memory) with the given
    counts fixed. Raises ``limits.ConnectionLimitError`` for a run this machine cannot hold."""
    client, builtin = default_processes(scenario, processes, target_processes)
    return fit_run(
        scenario,
        client,
        builtin,
        processes_fixed=processes is not None,
        target_processes_fixed=target_processes is not None,
    )


def default_processes(
    scenario: Scenario, processes: int | None, target_processes: int | None = None
) -> tuple[int, int]:
    """(client processes, built-in target processes) for ``loadgen run``.

    Against a network target every core runs a client process. A built-in target shares
    this machine's cores with the client: each side does about the same work per request
    (a receive and a send; measured here: ~13 µs of CPU each per 64 B echo on a busy VM),
    so the cores are split evenly between the two rather than oversubscribed (on 2 cores:
    one client process and one target process; README has the measurements).
    ``--processes N`` sets the client's count; the target then gets the cores left (at
    least one) unless ``--target-processes`` says otherwise.
    """
    cores = os.cpu_count() or 1
    if scenario.builtin_target is None:
        return (processes or cores), 1
    from loadgen.targets.scaled import reuse_port_supported

    client = processes or max(1, cores // 2)
    left = max(1, cores - client) if reuse_port_supported() else 1  # Windows: one, silently
    return client, target_processes or left


def builtin_processes(wanted: int, notice: Notice | None) -> int:
    """How many processes a built-in target can have here (1 where SO_REUSEPORT is not)."""
    from loadgen.targets.scaled import WINDOWS_NOTE, reuse_port_supported

    if wanted > 1 and not reuse_port_supported():
        if notice is not None:
            notice(WINDOWS_NOTE)
        return 1
    return max(1, wanted)
