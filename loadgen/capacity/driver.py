"""One capacity search from start to result: the runner (here or on a cluster), the
built-in target kept up for the whole search, the steps, the search, the result.

A failure that stops a step from running (a target that cannot start, a shard that dies,
a cluster that refuses) ends the search with status ``failed`` and keeps every step run so
far: the caller still writes the result.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from loadgen import __version__
from loadgen.capacity.model import CapacityResult, Drain, Outcome, Settings, Status, Step
from loadgen.capacity.search import search
from loadgen.capacity.steps import RunScenario, Stepper, hoisted_target
from loadgen.config.scenario import Scenario
from loadgen.config.thresholds import Threshold
from loadgen.result.model import RunResult

Notice = Callable[[str], None]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def local_runner(backend: str, processes: int, fixed: bool, notice: Notice) -> RunScenario:
    """Each step through ``loadgen.run.api.run``, fitted to this machine as ``loadgen run``
    fits a run (descriptors, ports, memory); a notice is said once, not at every step."""
    from loadgen.run.api import run
    from loadgen.run.limits import fit_run

    said: set[str] = set()

    def say(message: str) -> None:
        if message not in said:
            said.add(message)
            notice(message)

    def run_one(scenario: Scenario, processes_now: int | None) -> RunResult:
        wanted = processes_now or processes
        fit = fit_run(scenario, wanted, processes_fixed=fixed or processes_now is not None)
        for message in fit.notices:
            say(message)
        return run(
            fit.scenario,
            backend=backend,
            notice=say,
            processes=fit.processes,
            connect_before_start=True,  # the pool is open before the schedule starts
        )

    return run_one


def cluster_runner(
    address: str, hosts: int | None, processes: int | None, backend: str, notice: Notice
) -> RunScenario:
    """Each step through ``run_cluster`` (as ``loadgen run --cluster``); a probe (which asks
    for one process) runs on one host."""
    from loadgen.distributed.coordinator import run_cluster

    def run_one(scenario: Scenario, processes_now: int | None) -> RunResult:
        return run_cluster(
            scenario,
            address,
            hosts=1 if processes_now is not None else hosts,
            processes=processes_now or processes,
            backend=backend,
            notice=notice,
        )

    return run_one


@dataclass
class Callbacks:
    on_step: Callable[[Step], None] | None = None
    on_drain: Callable[[Step, Drain], None] | None = None
    notice: Notice = field(default=lambda message: None)


#: What stops a step from running at all (not a misbehaving target: that is a result).
def _run_errors() -> tuple[type[BaseException], ...]:
    from loadgen.engine import BackendUnavailable
    from loadgen.engine.base import FeatureUnavailable
    from loadgen.run.limits import ConnectionLimitError
    from loadgen.run.shard import ShardError
    from loadgen.targets.process import TargetError

    errors: list[type[BaseException]] = [
        BackendUnavailable,
        FeatureUnavailable,
        ConnectionLimitError,
        ShardError,
        TargetError,
    ]
    try:
        from loadgen.distributed.coordinator import ClusterError

        errors.append(ClusterError)
    except ImportError:  # pragma: no cover - the coordinator imports without dask
        pass
    return tuple(errors)


def run_capacity(
    scenario: Scenario,
    settings: Settings,
    slos: list[Threshold],
    *,
    client_processes: int,
    target_processes: int,
    processes_fixed: bool,
    callbacks: Callbacks | None = None,
) -> CapacityResult:
    """Search ``scenario``'s capacity under ``slos``; every step's result is kept."""
    callbacks = callbacks or Callbacks()
    started_at = _now()
    steps: list[Step] = []
    try:
        if settings.cluster is not None:
            runner = cluster_runner(
                settings.cluster,
                settings.hosts,
                settings.processes,
                settings.backend,
                callbacks.notice,
            )
            target_context = hoisted_target(scenario, settings.backend, 1, hoist=False)
        else:
            runner = local_runner(
                settings.backend, client_processes, processes_fixed, callbacks.notice
            )
            target_context = hoisted_target(scenario, settings.backend, target_processes)
        with target_context as target:
            stepper = Stepper(
                scenario,
                settings,
                slos,
                runner,
                target=target,
                on_step=callbacks.on_step,
                on_drain=callbacks.on_drain,
                notice=callbacks.notice,
            )
            steps = stepper.steps
            outcome = search(stepper.measure, settings, slos)
    except _run_errors() as exc:
        outcome = Outcome(
            Status.FAILED, f"step {len(steps) + 1} could not run: {exc}", capacity=None
        )
    except KeyboardInterrupt:  # Ctrl-C while the built-in target started or stopped
        outcome = Outcome(Status.INTERRUPTED, "interrupted", capacity=None)
    return CapacityResult(
        scenario=scenario.to_dict(),
        settings=settings,
        started_at=started_at,
        finished_at=_now(),
        loadgen_version=__version__,
        steps=list(steps),
        outcome=outcome,
    )
