"""A run over a Dask cluster: one host shard per worker with the ``loadgen`` resource, one
shared start, live ticks, one exact merge (``loadgen run SCENARIO --cluster ADDRESS``).

Before any traffic (each refusal a ``ClusterError`` that says what to do):

* the scheduler must answer; the workers that offer the ``loadgen`` resource are the hosts
  (``dask worker ... --resources loadgen=1``), and there must be as many as ``--hosts`` asks;
* every chosen worker must run this loadgen version (the versions are listed otherwise),
  and have the backend and receive features the scenario asks for, and room for its
  shards' connections (descriptors per process, local ports per host);
* a ``builtin:`` target is started here on loopback, so every chosen worker must be on this
  host (otherwise: serve it with ``loadgen serve`` on an address the hosts reach).

Then the load is split: each host runs ``processes`` client processes (``--processes``, or
one per core of that host), every process is one shard of the whole run, and the shards get
equal shares, so a host's share (its ``weight``) is its processes over all. Each host's task
(``bridge.run_host``) starts its process tree, whose shards open their connections and
report ready; when every host is ready the coordinator names the start instant on the
scheduler's clock (now plus the largest margin a host asked for plus ``START_SLACK_S``) and
each host converts it with its own measured clock offset. Ticks arrive keyed by interval
number since that start and feed the live view; at the end the hosts' results merge exactly
(``merge.merge_results``) and thresholds are judged on the merged result.

Faults: a worker that leaves the cluster (died, killed) or a host task that fails makes the
run partial and is named (host, worker address, hostname, why); the others are stopped, and
what the lost host had reported in its ticks is merged with the rest, even when no host is
left. Ctrl-C (or SIGTERM, SIGHUP) stops every host and the partial result is still returned.

Security: the scheduler runs whatever pickled code its clients send; run it on a private
network or with TLS (README, "Distributed runs").
"""

from __future__ import annotations

import pickle
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, ExitStack, nullcontext
from dataclasses import dataclass, replace
from typing import Any

from loadgen import __version__
from loadgen.config.plan import LoadPlan
from loadgen.config.scenario import Scenario
from loadgen.distributed.bridge import (
    DistributedMissing,
    HostOutcome,
    RunNames,
    check_host,
    identity,
    import_distributed,
    run_host,
)
from loadgen.distributed.clock import WARN_OFFSET_S, ClockOffset, measure_offset
from loadgen.distributed.host import HostJob
from loadgen.distributed.unmeasured import unmeasured_result
from loadgen.result.model import Cluster, ClusterHost, Environment, RunResult
from loadgen.result.stop import StopKind, StopReason
from loadgen.run.interrupts import interrupts_recorded
from loadgen.run.merge import add_counts, merge_results, result_from_intervals
from loadgen.run.progress import Snapshot, TickBoard
from loadgen.run.shard import ShardError
from loadgen.run.split import arrival_phase, split_scenario

Notice = Callable[[str], None]
LiveFactory = Callable[[Callable[[], Snapshot]], AbstractContextManager[object]]
BoardWatch = Callable[[TickBoard], AbstractContextManager[object]]

#: The resource a worker offers to be a load host (``dask worker --resources loadgen=1``).
RESOURCE = "loadgen"
#: How long to wait for the scheduler to answer.
CONNECT_TIMEOUT_S = 10.0
#: How long hosts may take from the submission to ready (a fresh host process, its shard
#: processes and their connections).
READY_TIMEOUT_S = 120.0
#: Added to the largest margin a host asked for: time for the start instant to reach every
#: host (the bridges look for it every 0.2 s) and go down its pipes.
START_SLACK_S = 0.5
#: After the run's end, how long hosts may take to hand back their results (closing
#: sockets: see ``workers.RESULT_GRACE_PER_CONNECTION_S``), plus a floor.
RESULT_GRACE_S = 60.0
RESULT_GRACE_PER_CONNECTION_S = 4e-3
#: How often the coordinator reads the queue and looks at the workers.
POLL_S = 0.1
HEALTH_EVERY_S = 1.0


class ClusterError(RuntimeError):
    """A distributed run that cannot start (no scheduler, too few hosts, versions)."""


@dataclass(frozen=True)
class HostInfo:
    """A worker that will be a host of the run."""

    worker: str
    hostname: str
    loadgen_version: str
    cpu_count: int
    os: str = ""
    python: str = ""


def _import_distributed() -> Any:
    try:
        return import_distributed()
    except DistributedMissing as exc:
        raise ClusterError(str(exc)) from None


def connect(address: str) -> Any:
    """A Dask client of the scheduler at ``address``."""
    distributed = _import_distributed()
    tls_help = (
        "for tls:// give this client its certificate in Dask's configuration, e.g. "
        "DASK_DISTRIBUTED__COMM__TLS__CA_FILE, ..._CLIENT__CERT and ..._CLIENT__KEY "
        "(README: Distributed runs)"
    )
    if address.startswith("tls://"):
        # Asked before connecting: a Client that fails on a missing TLS set-up leaves its
        # event-loop thread behind, which can keep the next Client from starting.
        client_tls = distributed.Security().get_connection_args("client")
        if client_tls.get("ssl_context") is None:
            raise ClusterError(
                f"cannot connect to the Dask scheduler at {address}: no TLS set-up; {tls_help}"
            )
    try:
        return distributed.Client(address, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise ClusterError(f"cannot reach the Dask scheduler at {address}: {exc}") from None
    except (TypeError, ValueError) as exc:  # distributed's words for a TLS set-up missing
        raise ClusterError(
            f"cannot connect to the Dask scheduler at {address}: {exc}; {tls_help}"
        ) from None


def worker_addresses(client: Any) -> set[str]:
    """The addresses of the workers the scheduler has now."""
    return set(client.scheduler_info(n_workers=-1)["workers"])


def choose_hosts(client: Any, address: str, hosts: int | None) -> list[HostInfo]:
    """The workers with the ``loadgen`` resource to run on, checked (see module docstring):
    enough of them, and one loadgen version."""
    workers = client.scheduler_info(n_workers=-1)["workers"]
    offering = sorted(
        worker
        for worker, info in workers.items()
        if (info.get("resources") or {}).get(RESOURCE, 0) >= 1
    )
    wanted = len(offering) if hosts is None else hosts
    if not offering or len(offering) < wanted:
        raise ClusterError(
            f"the cluster at {address} has {len(offering)} worker(s) with the '{RESOURCE}' "
            f"resource ({len(workers)} in all), {wanted or 1} needed: start "
            f"`dask worker {address} --nworkers 1 --nthreads 1 --resources {RESOURCE}=1` "
            "on each load host"
        )
    chosen = offering[:wanted]
    identities = client.run(identity, workers=chosen)
    versions = {worker: identities[worker]["loadgen_version"] for worker in chosen}
    if any(version != __version__ for version in versions.values()):
        listed = "; ".join(
            f"{worker} ({identities[worker]['hostname']}): loadgen {version}"
            for worker, version in versions.items()
        )
        raise ClusterError(
            f"loadgen versions differ: this coordinator has {__version__}, the workers have "
            f"{listed}; install one version everywhere"
        )
    return [
        HostInfo(
            worker=worker,
            hostname=str(identities[worker]["hostname"]),
            loadgen_version=str(versions[worker]),
            cpu_count=int(identities[worker]["cpu_count"]),
            os=str(identities[worker].get("os", "")),
            python=str(identities[worker].get("python", "")),
        )
        for worker in chosen
    ]


def plan_jobs(
    scenario: Scenario,
    hosts: Sequence[HostInfo],
    processes: int | None,
    backend: str,
    addresses: Sequence[tuple[str, int]],
    seed: int | None,
) -> list[HostJob]:
    """Every host's job: its processes' shards of the whole run, equal shares each."""
    from loadgen.run.shard import ShardSpec

    counts = [processes or host.cpu_count for host in hosts]
    total = sum(counts)
    peak = LoadPlan.from_scenario(scenario).peak_connections
    if total > peak:
        raise ClusterError(
            f"{total} client processes over {len(hosts)} hosts but the scenario has "
            f"{peak} connections: give --processes fewer (or --hosts)"
        )
    weights = [1.0] * total
    slices = split_scenario(scenario, weights) if total > 1 else [scenario]
    jobs: list[HostJob] = []
    first = 0
    for index, count in enumerate(counts):
        specs = tuple(
            ShardSpec(
                scenario=slices[number],
                index=number,
                count=total,
                backend=backend,
                addresses=tuple(addresses),
                seed=None if seed is None else seed + number,
                arrival_phase=arrival_phase(weights, number),
                connect_before_start=True,
            )
            for number in range(first, first + count)
        )
        jobs.append(HostJob(index=index, scenario=scenario, specs=specs, backend=backend))
        first += count
    return jobs


def check_hosts(client: Any, hosts: Sequence[HostInfo], jobs: Sequence[HostJob]) -> None:
    """Refuse, before any traffic, what a host cannot run: its backend or a receive feature
    missing there, or its shards' connections past its descriptor limit or ports
    (``bridge.check_host`` on each worker)."""
    by_worker = {host.worker: job for host, job in zip(hosts, jobs, strict=True)}
    problems = client.run(check_host, by_worker, workers=list(by_worker))
    refused = [f"{worker}: {problem}" for worker, problem in problems.items() if problem]
    if refused:
        raise ClusterError("hosts cannot run this scenario: " + "; ".join(sorted(refused)))


class _ClusterRun:
    """The state of one distributed run, driven by ``drive``."""

    def __init__(
        self,
        client: Any,
        hosts: Sequence[HostInfo],
        jobs: Sequence[HostJob],
        board: TickBoard,
        notice: Notice | None,
    ) -> None:
        distributed = _import_distributed()
        self.client = client
        self.hosts = hosts
        self.jobs = jobs
        self.board = board
        self.notice = notice
        self.names = RunNames(uuid.uuid4().hex[:12])
        self.up = distributed.Queue(self.names.up, client=client)
        self.start_variable = distributed.Variable(self.names.start, client=client)
        self.stop_event = distributed.Event(self.names.stop, client=client)
        self.ready: dict[int, tuple[ClockOffset, float]] = {}  # host -> (offset, margin_s)
        self.outcomes: dict[int, HostOutcome] = {}
        self.lost: dict[int, str] = {}
        self.tracebacks: dict[int, str] = {}  # lost host -> the traceback its failure sent
        self.interrupted: list[StopReason] = []
        self.started = False
        self.started_at_s: float | None = None
        self.stopping = False
        self.futures: list[Any] = []
        self.own_offset = measure_offset(lambda: float(client.run_on_scheduler(time.time)))

    def describe(self, host: int) -> str:
        info = self.hosts[host]
        return f"host {host} ({info.hostname}, worker {info.worker})"

    def stop(self) -> None:
        if not self.stopping:
            self.stop_event.set()
            self.stopping = True

    def _lose(self, host: int, why: str, traceback: str | None = None) -> None:
        if host in self.lost or host in self.outcomes:
            return
        self.lost[host] = why
        if traceback:
            self.tracebacks[host] = traceback
        for spec in self.jobs[host].specs:
            self.board.retire(spec.index)
        if self.notice is not None:
            self.notice(f"{self.describe(host)} lost: {why}; stopping the other hosts")
        self.stop()

    def _handle(self, message: tuple[Any, ...]) -> None:
        kind, host = message[0], message[1]
        if kind == "tick":
            self.board.add(message[2])
        elif kind == "ready":
            self.ready[host] = (ClockOffset(message[2], message[3]), message[4])

    def _drain(self) -> None:
        for data in self.up.get(batch=True):
            self._handle(pickle.loads(data))

    def _collect(self) -> None:
        for host, future in enumerate(self.futures):
            if host in self.outcomes or host in self.lost or not future.done():
                continue
            if future.status == "finished":
                outcome = self.outcomes[host] = future.result()
                for spec in self.jobs[host].specs:
                    self.board.retire(spec.index)
                if outcome.result.stop.kind is StopKind.FAILED:
                    self.stop()  # as one host's failed shard stops that host's others
            else:
                error = future.exception()
                self._lose(
                    host,
                    f"failed: {type(error).__name__}: {error}",
                    getattr(error, "traceback", None),
                )

    def _check_workers(self) -> None:
        present = worker_addresses(self.client)
        for host, info in enumerate(self.hosts):
            if info.worker not in present:
                self._lose(host, "its worker left the cluster (died or was killed)")

    def _start(self) -> None:
        margin_s = max(margin for _offset, margin in self.ready.values())
        scheduler_now = time.time() - self.own_offset.offset_s
        self.start_variable.set(scheduler_now + margin_s + START_SLACK_S)
        self.started_at_s = time.time() + margin_s + START_SLACK_S  # on this host's clock
        self.started = True

    def drive(self, duration_s: float) -> None:
        for job, info in zip(self.jobs, self.hosts, strict=True):
            self.futures.append(
                self.client.submit(
                    run_host,
                    job,
                    self.names.run_id,
                    key=f"loadgen-host-{job.index}-{self.names.run_id}",
                    workers=[info.worker],
                    allow_other_workers=False,
                    resources={RESOURCE: 1},
                    pure=False,
                    retries=0,
                )
            )
        began = time.monotonic()
        deadline: float | None = None
        next_health = began
        connections = max(
            LoadPlan.from_scenario(spec.scenario).peak_connections
            for job in self.jobs
            for spec in job.specs
        )
        grace_s = RESULT_GRACE_S + RESULT_GRACE_PER_CONNECTION_S * connections
        # A stop signal only records (no Dask call in a signal handler); the loop stops hosts.
        with interrupts_recorded() as self.interrupted:
            while len(self.outcomes) + len(self.lost) < len(self.jobs):
                if self.interrupted and not self.stopping:
                    self.stop()
                self._drain()
                self._collect()
                now = time.monotonic()
                if now >= next_health:
                    self._check_workers()
                    next_health = now + HEALTH_EVERY_S
                if not self.started and deadline is None:
                    if len(self.ready) == len(self.jobs) and not self.stopping:
                        self._start()
                        deadline = now + duration_s + grace_s
                    elif now - began > READY_TIMEOUT_S:
                        for host in range(len(self.jobs)):
                            if host not in self.ready:
                                self._lose(host, f"not ready within {READY_TIMEOUT_S:.0f} s")
                        deadline = now + RESULT_GRACE_S  # the ready ones stop and report
                if deadline is not None and now > deadline:
                    for host in range(len(self.jobs)):
                        self._lose(host, f"gave no result within {grace_s:.0f} s of the end")
                    break
                time.sleep(POLL_S)
            self._drain()

    def close(self) -> None:
        self.stop()
        pending = [f for f in self.futures if not f.done()]
        if pending:
            self.client.cancel(pending, force=True)
        self.start_variable.delete()


@dataclass(frozen=True)
class ClusterOutcome:
    """A distributed run's merged result and each host's own (hosts that gave one)."""

    result: RunResult
    host_results: dict[int, RunResult]


def run_cluster(
    scenario: Scenario,
    address: str,
    *,
    hosts: int | None = None,
    processes: int | None = None,
    backend: str = "auto",
    notice: Notice | None = None,
    live: LiveFactory | None = None,
    seed: int | None = None,
    watch: BoardWatch | None = None,
) -> RunResult:
    """Run ``scenario`` on the Dask cluster at ``address`` and return the merged result."""
    return run_cluster_hosts(
        scenario,
        address,
        hosts=hosts,
        processes=processes,
        backend=backend,
        notice=notice,
        live=live,
        seed=seed,
        watch=watch,
    ).result


def run_cluster_hosts(
    scenario: Scenario,
    address: str,
    *,
    hosts: int | None = None,
    processes: int | None = None,
    backend: str = "auto",
    notice: Notice | None = None,
    live: LiveFactory | None = None,
    seed: int | None = None,
    watch: BoardWatch | None = None,
) -> ClusterOutcome:
    """``run_cluster``, with every host's own result beside the merged one."""
    from loadgen.run.resolve import resolve_targets
    from loadgen.targets.process import builtin_target

    with ExitStack() as stack:
        client = connect(address)
        stack.callback(client.close)
        chosen = choose_hosts(client, address, hosts)
        builtin = scenario.builtin_target
        if builtin is not None:
            here = socket.gethostname()
            elsewhere = [host for host in chosen if host.hostname != here]
            if elsewhere:
                raise ClusterError(
                    f"builtin:{builtin} listens on this host's loopback, which "
                    f"{', '.join(h.hostname for h in elsewhere)} cannot reach: serve it with "
                    f"`loadgen serve {builtin} --host 0.0.0.0 --port PORT` and target it by "
                    "address"
                )
            addresses = [stack.enter_context(builtin_target(builtin, backend=backend))]
        else:  # resolved here, once: every host connects to the same addresses
            addresses = resolve_targets(
                scenario.target_addresses(), scenario.timeouts.connect, notice
            )
        jobs = plan_jobs(scenario, chosen, processes, backend, addresses, seed)
        check_hosts(client, chosen, jobs)
        shards = sum(len(job.specs) for job in jobs)
        plan = LoadPlan.from_scenario(scenario)
        board = TickBoard(shards, plan.duration_s, plan.phase_label)
        run = _ClusterRun(client, chosen, jobs, board, notice)
        stack.callback(run.close)
        watched = watch(board) if watch else nullcontext()
        with watched, live(board.snapshot) if live else nullcontext():
            run.drive(plan.duration_s)
        hosts_results = {host: outcome.result for host, outcome in run.outcomes.items()}
        return ClusterOutcome(_merge(run, scenario, address), hosts_results)
    raise AssertionError("unreachable")  # pragma: no cover (ExitStack does not swallow)


def _merge(run: _ClusterRun, scenario: Scenario, address: str) -> RunResult:
    """The hosts' results (and what lost hosts had ticked) as one result, with ``cluster``."""
    parts: list[RunResult] = []
    labels: list[str] = []
    machines: list[str] = []
    like = next(iter(run.outcomes.values())).result if run.outcomes else _nothing(run, scenario)
    for host, job in enumerate(run.jobs):
        info = run.hosts[host]
        if host in run.outcomes:
            parts.append(run.outcomes[host].result)
            labels.append(run.describe(host))
            machines.append(info.hostname)
            continue
        if like is None:
            continue
        for spec in job.specs:
            intervals = run.board.intervals[spec.index]
            if intervals:
                parts.append(
                    result_from_intervals(
                        intervals,
                        like,
                        StopReason(StopKind.FAILED, run.lost[host], run.tracebacks.get(host)),
                    )
                )
                labels.append(f"{run.describe(host)}, lost")
                machines.append(info.hostname)
    lost = [
        StopReason(StopKind.FAILED, f"{run.describe(h)} lost: {why}", run.tracebacks.get(h))
        for h, why in sorted(run.lost.items())
    ]
    lost += [  # hosts that gave a result but lost a shard of their own
        outcome.result.stop.labelled(run.describe(h))
        for h, outcome in sorted(run.outcomes.items())
        if outcome.result.stop.kind is StopKind.FAILED
    ]
    if not parts:
        raise ShardError(
            "no host produced a result: "
            + "; ".join(
                [f.detail for f in lost] or [str(r) for r in run.interrupted] or ["no hosts"]
            ),
            StopReason.failed_parts(lost) if lost else None,
        )
    if run.interrupted:
        stop: StopReason | None = run.interrupted[0]
    elif lost:
        stop = StopReason.failed_parts(lost)
    else:
        stop = None
    processes = sum(len(job.specs) for job in run.jobs)
    result = merge_results(
        parts,
        scenario,
        stop=stop,
        processes=processes,
        labels=labels,
        machines=machines,
    )
    cluster = _cluster(run, address, processes)  # its warnings: shown with the result
    return replace(result, scenario=scenario.to_dict(), cluster=cluster)


def _nothing(run: _ClusterRun, scenario: Scenario) -> RunResult | None:
    """When no host gave a result: a result with nothing measured, in a host's shape, for
    what the lost hosts had ticked; None when the run never started (nothing was ticked)."""
    if run.started_at_s is None:
        return None
    first = run.hosts[0]
    environment = Environment(
        backend=run.jobs[0].backend,  # as asked ("auto": the lost host resolved it)
        recv_mode=scenario.receive,
        recv_options=scenario.receive_options(),
        os=first.os,
        python=first.python,
        loadgen_version=first.loadgen_version,
        processes=1,
        cpu_count=first.cpu_count,
        hostname=first.hostname,
    )
    return unmeasured_result(scenario, environment, run.started_at_s)


def _cluster(run: _ClusterRun, address: str, processes: int) -> Cluster:
    hosts: list[ClusterHost] = []
    warnings: list[str] = []
    for host, job in enumerate(run.jobs):
        info = run.hosts[host]
        outcome = run.outcomes.get(host)
        offset = outcome.offset if outcome is not None else run.ready.get(host, (None, 0))[0]
        late = outcome.result.generator.start_late_ms if outcome is not None else None
        if outcome is not None:
            requests, errors = outcome.result.summary.requests, outcome.result.summary.errors
        else:  # what it reported before it was lost
            ticked = [i for spec in job.specs for i in run.board.intervals[spec.index]]
            requests = sum(i.requests for i in ticked)
            errors = add_counts([i.errors for i in ticked])
        if offset is not None and abs(offset.offset_s) > WARN_OFFSET_S:
            warnings.append(
                f"{run.describe(host)}: its clock is {offset.offset_s * 1e3:+.1f} ms off the "
                "scheduler's (corrected for the start; its timestamps differ by as much)"
            )
        if offset is not None and offset.uncertainty_s > WARN_OFFSET_S:
            warnings.append(
                f"{run.describe(host)}: its clock offset is only known to "
                f"±{offset.uncertainty_s * 1e3:.1f} ms (slow round trips to the scheduler): "
                "its start may be off by as much"
            )
        hosts.append(
            ClusterHost(
                index=host,
                worker=info.worker,
                hostname=info.hostname,
                processes=len(job.specs),
                weight=round(len(job.specs) / processes, 6),
                loadgen_version=info.loadgen_version,
                clock_offset_ms=None if offset is None else round(offset.offset_s * 1e3, 3),
                offset_uncertainty_ms=(
                    None if offset is None else round(offset.uncertainty_s * 1e3, 3)
                ),
                start_late_ms=late,
                lost=run.lost.get(host),
                requests=requests,
                errors=errors,
            )
        )
    lateness = [host.start_late_ms for host in hosts if host.start_late_ms is not None]
    skew = round(max(lateness) - min(lateness), 3) if lateness else None
    return Cluster(scheduler=address, hosts=hosts, start_skew_ms=skew, warnings=warnings)
