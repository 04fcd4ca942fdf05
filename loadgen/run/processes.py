"""A run's shards as worker processes on this host, started together, merged at the end.

Python runs one thread of Python code per process, so one process is one core's worth of
load. ``run_processes`` starts one process per shard with multiprocessing's **spawn** (a
fresh interpreter: no copy of the parent's engine, rings, sockets or threads, which a fork
would duplicate; and the only start method Windows has), then:

1. **Start barrier.** Every shard sets itself up (imports, engine, codecs, descriptor
   limit) and reports ready; when all have, the coordinator publishes one start instant on
   CLOCK_MONOTONIC (shared by every process of the host), a little in the future so each
   shard can build its client first, and every shard sleeps to it. Connections are opened
   from that instant, in every shard alike (and as in a one-process run).
2. **Ticks.** About twice a second each shard sends its running totals and the intervals it
   closed (keyed by interval number since the shared start) to the coordinator, which adds
   them up for the live view (``loadgen.run.progress.TickBoard``).
3. **Merge.** Each shard's RunResult comes back over the same queue and ``merge`` adds them
   exactly (histograms add; intervals align by number).

The start instant is decided by a ``StartGate``: on one host, "now plus a margin" as soon
as every shard is ready (``LocalGate``); in a distributed run, the cluster's coordinator
decides it for every host at once (``loadgen.distributed.host``).

Failures: a shard that raises or dies (killed, crashed) is named in the result's ``stop``
(``failed: shard 1 (pid 4242) died: killed by SIGKILL``; a shard that raised sends its
traceback, which the stop keeps) and the others are asked to stop; the result merges what
every shard gave, the dead one's intervals included (it sent them in its ticks). Ctrl-C (or
SIGTERM, SIGHUP) stops every shard (each gets a Ctrl-C itself, and the coordinator also
raises the stop flag, for a signal sent to it alone); the merged partial result is returned
with ``interrupted (SIGINT)`` (or the signal that came). Shards stop on their own when the
coordinator dies.
"""

from __future__ import annotations

import multiprocessing
import queue
import signal
import time
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from typing import Any, Protocol

from loadgen.config.plan import LoadPlan
from loadgen.config.scenario import Scenario
from loadgen.result.model import RunResult
from loadgen.result.stop import StopKind, StopReason
from loadgen.run.interrupts import interrupts_recorded, stop_signals_ignored
from loadgen.run.measure import shard_process_main
from loadgen.run.merge import merge_results, result_from_intervals
from loadgen.run.progress import TickBoard
from loadgen.run.shard import ProcessChannel, ShardError, ShardSpec
from loadgen.run.split import arrival_phase, split_scenario

#: A spawned interpreter imports numpy, pydantic and the engine in ~1 s here (several s on a
#: loaded machine, more under Wine): how long shards may take to become ready.
READY_TIMEOUT_S = 60.0
#: How far ahead of "everyone is ready" the start instant lies: each shard still builds its
#: client (a buffer per connection: 85 µs each measured with 64 KiB buffers on a loaded
#: 2-core VM, 10,000 connections in 0.85 s) and wakes from the barrier. A shard that is
#: later still starts late against the shared instant (its connects and sends are late).
START_MARGIN_S = 0.1
START_MARGIN_PER_CONNECTION_S = 100e-6
#: After the run's end, how long shards may take to hand their results back: a floor, plus
#: time per connection of the largest shard for closing its sockets. Measured: 100,000
#: connections on 6 shards of a 2-core VM (each shard getting ~1/6 of a core) took 42-46 s
#: to close ~16,700 sockets a shard; 4 ms a connection covers that with room.
RESULT_GRACE_S = 30.0
RESULT_GRACE_PER_CONNECTION_S = 4e-3
#: How often the coordinator looks at its shards' health between messages.
POLL_S = 0.2


class StartGate(Protocol):
    """Decides when this host's shards start, once all of them are ready."""

    def everyone_ready(self, margin_ns: int) -> None:
        """Every shard is ready; each needs ``margin_ns`` from the start being known to
        the start itself (building clients). Called once."""

    def start_ns(self) -> int | None:
        """The start instant (CLOCK_MONOTONIC ns), or None while it is not decided yet."""

    def stop_requested(self) -> bool:
        """True when whoever decides the start wants the run stopped (now or later)."""


class LocalGate:
    """One host alone: start ``margin_ns`` after everyone is ready."""

    def __init__(self) -> None:
        self._start_ns: int | None = None

    def everyone_ready(self, margin_ns: int) -> None:
        self._start_ns = time.perf_counter_ns() + margin_ns

    def start_ns(self) -> int | None:
        return self._start_ns

    def stop_requested(self) -> bool:
        return False


def shard_specs(
    scenario: Scenario,
    count: int,
    backend: str,
    addresses: Sequence[tuple[str, int]],
    seed: int | None,
    weights: Sequence[float] | None = None,
    connect_before_start: bool = False,
) -> list[ShardSpec]:
    """The specs of a run split into ``count`` shards (equal weights by default);
    ``connect_before_start``: each opens its first connections before it reports ready."""
    weights = list(weights) if weights is not None else [1.0] * count
    slices = split_scenario(scenario, weights) if count > 1 else [scenario]
    return [
        ShardSpec(
            scenario=piece,
            index=index,
            count=count,
            backend=backend,
            addresses=tuple(addresses),
            seed=None if seed is None else seed + index,
            arrival_phase=arrival_phase(weights, index),
            connect_before_start=connect_before_start,
        )
        for index, piece in enumerate(slices)
    ]


def describe_exit(code: int | None) -> str:
    if code is None:
        return "did not exit"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"


class _Coordinator:
    """The state of one multi-process run, driven by ``run``."""

    def __init__(
        self, specs: Sequence[ShardSpec], board: TickBoard, gate: StartGate | None = None
    ) -> None:
        self.specs = specs
        self.board = board
        self.gate = gate or LocalGate()
        self.reported_ready = False
        context = multiprocessing.get_context("spawn")
        self.channel = ProcessChannel(context)
        self.processes: list[BaseProcess] = [
            context.Process(
                target=shard_process_main,
                args=(spec, self.channel),
                name=f"loadgen-shard-{spec.index}",
                daemon=True,
            )
            for spec in specs
        ]
        self.ready: set[int] = set()
        self.results: dict[int, RunResult] = {}
        self.failures: dict[int, StopReason] = {}
        self.started = False

    def _handle(self, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "tick":
            self.board.add(message[1])
        elif kind == "ready":
            self.ready.add(message[1])
        elif kind == "result":
            self.results[message[1]] = message[2]
            self.board.retire(message[1])
        elif kind == "error":
            shard, failure = message[1], message[2]
            self.failures[shard] = failure.labelled(self._name(shard) + " failed")
            self.board.retire(shard)
            self.channel.stop()

    def _name(self, shard: int) -> str:
        return f"shard {shard} (pid {self.processes[shard].pid})"

    def _drain(self) -> None:
        while True:
            try:
                self._handle(self.channel.messages.get_nowait())
            except queue.Empty:
                return

    def _check_health(self) -> None:
        for shard, process in enumerate(self.processes):
            if shard in self.results or shard in self.failures or process.exitcode is None:
                continue
            self._drain()  # what it sent before it exited is in the pipe already
            if shard not in self.results and shard not in self.failures:
                self.failures[shard] = StopReason(
                    StopKind.FAILED,
                    f"{self._name(shard)} died: {describe_exit(process.exitcode)}",
                )
                self.board.retire(shard)
                self.channel.stop()

    def _start_when_ready(self, began: float, connections: int) -> bool:
        """Publish the start instant once every shard is ready; True when published."""
        if self.failures or self.channel.stopping.is_set() or self.gate.stop_requested():
            self.channel.stop()
            self.channel.start(time.perf_counter_ns())  # release the ready ones: they stop at once
            self.started = True
        elif len(self.ready) == len(self.specs):
            if not self.reported_ready:
                margin = START_MARGIN_S + START_MARGIN_PER_CONNECTION_S * connections
                self.gate.everyone_ready(int(margin * 1e9))
                self.reported_ready = True
            start_ns = self.gate.start_ns()
            if start_ns is not None:
                self.channel.start(start_ns)
                self.started = True
        elif time.monotonic() - began > READY_TIMEOUT_S:
            for shard in range(len(self.specs)):
                if shard not in self.ready:
                    self.failures[shard] = StopReason(
                        StopKind.FAILED,
                        f"{self._name(shard)} was not ready within {READY_TIMEOUT_S:.0f} s",
                    )
                    self.board.retire(shard)
            self.channel.stop()
        return self.started

    def run(self, duration_s: float) -> list[StopReason]:
        """Drive the shards to their end; return the coordinator's stop reasons."""
        with stop_signals_ignored():  # each shard installs its own handlers to run
            for process in self.processes:
                process.start()
        began = time.monotonic()
        connections = max(
            LoadPlan.from_scenario(spec.scenario).peak_connections for spec in self.specs
        )
        grace_s = RESULT_GRACE_S + RESULT_GRACE_PER_CONNECTION_S * connections
        deadline: float | None = None
        with interrupts_recorded(self.channel.stop) as interrupted:
            try:
                while len(self.results) + len(self.failures) < len(self.specs):
                    with suppress(queue.Empty):
                        self._handle(self.channel.messages.get(timeout=POLL_S))
                    if not self.started and self._start_when_ready(began, connections):
                        deadline = time.monotonic() + duration_s + grace_s
                    self._check_health()
                    if self.started and self.gate.stop_requested():
                        self.channel.stop()
                    if deadline is not None and time.monotonic() > deadline:
                        for shard in range(len(self.specs)):
                            if shard not in self.results and shard not in self.failures:
                                self.failures[shard] = StopReason(
                                    StopKind.FAILED,
                                    f"{self._name(shard)} gave no result within "
                                    f"{grace_s:.0f} s of the end",
                                )
                        break
            finally:
                self._end_processes()
        return interrupted

    def _end_processes(self) -> None:
        self.channel.stop()
        for process in self.processes:
            if process.pid is None:
                continue
            process.join(5)
            if process.is_alive():
                process.kill()
                process.join()


@dataclass(frozen=True)
class ShardOutcome:
    """What the shards of a run gave: results and failures by shard, and a Ctrl-C."""

    results: dict[int, RunResult]
    failures: dict[int, StopReason]  # shard -> "shard 1 (pid 4242) died: killed by SIGKILL"
    interrupted: list[StopReason]  # the coordinator's own stop reason (Ctrl-C)


def run_shards(
    specs: Sequence[ShardSpec],
    board: TickBoard,
    duration_s: float,
    gate: StartGate | None = None,
) -> ShardOutcome:
    """Run ``specs`` in one spawned process each, from one start instant (decided by
    ``gate``: by default as soon as all are ready); no merging."""
    coordinator = _Coordinator(specs, board, gate)
    interrupted = coordinator.run(duration_s)
    return ShardOutcome(dict(coordinator.results), dict(coordinator.failures), interrupted)


def run_processes(
    specs: Sequence[ShardSpec],
    scenario: Scenario,
    board: TickBoard,
    gate: StartGate | None = None,
) -> RunResult:
    """Run ``specs`` in one spawned process each and merge their results (see above)."""
    outcome = run_shards(specs, board, LoadPlan.from_scenario(scenario).duration_s, gate)
    failures = [outcome.failures[s] for s in sorted(outcome.failures)]
    parts = [outcome.results[s] for s in sorted(outcome.results)]
    if not parts:
        raise ShardError(
            "no shard produced a result: "
            + "; ".join(str(reason) for reason in failures or outcome.interrupted),
            StopReason.failed_parts(failures) if failures else None,
        )
    for shard in sorted(outcome.failures):
        if board.intervals[shard]:
            parts.append(
                result_from_intervals(board.intervals[shard], parts[0], outcome.failures[shard])
            )
    if outcome.interrupted:
        stop: StopReason | None = outcome.interrupted[0]
    elif failures:
        stop = StopReason.failed_parts(failures)
    else:
        stop = None
    return merge_results(parts, scenario, stop=stop, processes=len(specs))
