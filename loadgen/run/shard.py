"""One shard of a run: the one entry point every way of running a scenario goes through.

``run_shard(spec, channel)`` runs a slice of a scenario (``split.split_scenario``) on this
process's own engine and returns that slice's ``RunResult``. A run on one process calls it
in-process; ``loadgen.run.processes`` calls it in spawned processes; a distributed runner would
call it on other hosts. What differs is only the ``ShardChannel``, the way to the
coordinator:

* ``ready(shard)``: the shard is set up (engine made, codecs built, descriptor limit raised)
  and waits for the start instant, which every shard of the run shares. It is a
  ``time.perf_counter_ns`` reading (CLOCK_MONOTONIC on Linux, QueryPerformanceCounter on
  Windows; the one clock every measurement uses): one clock for every process of a host
  (Linux: CLOCK_MONOTONIC is system-wide; Windows: QueryPerformanceCounter is too), so
  shards on one host start together to within their wake-up latency. A channel across
  hosts has to translate from a shared wall clock.
* ``tick(tick)``: about twice a second, the running totals and newly closed intervals
  (``report.live.Tick``), for the live view and so that a shard that dies mid-run still
  leaves what it measured;
* ``wait_stop(timeout_s)``: True when the coordinator asks the shard to stop early (Ctrl-C
  in the parent, another shard failed, the parent died).

Connections are opened at the start instant by every shard, exactly as a one-process run
opens them at its start: the connects are part of the run (connect latency, ramps). With
``connect_before_start`` a shard first opens the connections the run starts with (the
desired count at elapsed 0: ``connections``, a ramp's first count, none for a ramp from 0)
and waits until each is open or has failed, at most the connect timeout
(``SlotPool.preconnect``); only then does it call ``ready``, so ready means connected. They
send nothing and have their receives posted until the start instant, where the run's
timeline (intervals, phases, arrivals, ramps, memory samples) begins as without it. Their
connect latencies and errors still count for the run (``summary.connects``, the
connect-latency histogram; their errors in interval 0).
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.context import SpawnContext
from multiprocessing.queues import Queue
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event
from typing import TYPE_CHECKING, Any, Protocol

from loadgen.config.scenario import Scenario
from loadgen.result.stop import StopReason
from loadgen.run.progress import Tick

if TYPE_CHECKING:
    from loadgen.load.recorder import Recorder
    from loadgen.load.requests import LoadClient
    from loadgen.load.streams import StreamClient

#: How often a shard sends its numbers (the live view refreshes twice a second).
TICK_INTERVAL_S = 0.5


class ShardError(RuntimeError):
    """No shard of a run produced a result; the message names each shard's failure and
    ``stop`` keeps their tracebacks (None: there were none)."""

    def __init__(self, message: str, stop: StopReason | None = None) -> None:
        super().__init__(message)
        self.stop = stop

    def __reduce__(self) -> tuple[type[ShardError], tuple[str, StopReason | None]]:
        return type(self), (str(self), self.stop)  # the traceback survives a pickle


@dataclass(frozen=True)
class ShardSpec:
    """Everything a shard needs, as plain picklable data."""

    scenario: Scenario  # this shard's slice of the run's scenario
    index: int  # 0-based
    count: int  # shards in the run
    backend: str  # a concrete backend name (the coordinator resolved "auto")
    addresses: tuple[tuple[str, int], ...]  # the targets, resolved (built-ins started)
    seed: int | None = None  # this shard's seed (Poisson arrivals, message sizes)
    #: Constant-rate schedules: how far into its first gap this shard starts (0..1), so the
    #: shards' sends interleave (``split.arrival_phase``).
    arrival_phase: float = 0.0
    #: A start instant fixed in advance (CLOCK_MONOTONIC ns); None: ask the channel.
    start_ns: int | None = None
    #: Open the connections the run starts with before reporting ready (a distributed
    #: run's two-phase start: ready means connected), rather than at the start instant.
    connect_before_start: bool = False


class ShardChannel(Protocol):
    def ready(self, shard: int) -> int:
        """Report ready; block until the run's start instant (monotonic ns) and return it."""
        ...

    def tick(self, tick: Tick) -> None: ...

    def wait_stop(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` (0: just look); True when the coordinator asks to stop."""
        ...

    @property
    def wants_ticks(self) -> bool: ...


class LocalChannel:
    """In-process: start now, ticks to a callback (the live view's board) if any."""

    def __init__(self, on_tick: Any = None) -> None:
        self._on_tick = on_tick
        self.stop = threading.Event()

    def ready(self, shard: int) -> int:
        return time.perf_counter_ns()

    def tick(self, tick: Tick) -> None:
        if self._on_tick is not None:
            self._on_tick(tick)

    def wait_stop(self, timeout_s: float) -> bool:
        return self.stop.wait(timeout_s)

    @property
    def wants_ticks(self) -> bool:
        return self._on_tick is not None


class ProcessChannel:
    """Between a coordinator and shard processes on one host (multiprocessing, spawn).

    Messages to the coordinator go through one queue as tuples: ``("ready", shard, pid)``,
    ``("tick", Tick)``, ``("result", shard, RunResult)``, ``("error", shard, text)``.
    The start instant is a shared 64-bit value published before ``started`` is set.
    """

    def __init__(self, context: SpawnContext) -> None:
        self.messages: Queue[tuple[Any, ...]] = context.Queue()
        self.started: Event = context.Event()
        self.stopping: Event = context.Event()
        self.start_value: Synchronized[int] = context.Value("q", 0)

    # --- the shard's side ------------------------------------------------------------
    def ready(self, shard: int) -> int:
        self.messages.put(("ready", shard, os.getpid()))
        parent = multiprocessing.parent_process()
        while not self.started.wait(0.2):
            if self.stopping.is_set() or (parent is not None and not parent.is_alive()):
                return time.perf_counter_ns()  # start at once; the tick thread stops it
        return int(self.start_value.value)

    def tick(self, tick: Tick) -> None:
        self.messages.put(("tick", tick))

    def wait_stop(self, timeout_s: float) -> bool:
        if self.stopping.wait(timeout_s):
            return True
        parent = multiprocessing.parent_process()
        return parent is not None and not parent.is_alive()

    @property
    def wants_ticks(self) -> bool:
        return True

    # --- the coordinator's side ------------------------------------------------------
    def start(self, start_ns: int) -> None:
        self.start_value.value = start_ns
        self.started.set()

    def stop(self) -> None:
        self.stopping.set()


def sleep_until(instant_ns: int) -> None:
    """Sleep to a CLOCK_MONOTONIC instant (returns at once if it has passed)."""
    while (left := instant_ns - time.perf_counter_ns()) > 0:
        time.sleep(left / 1e9)


def make_tick(
    shard: int, client: LoadClient | StreamClient, recorder: Recorder, sent: int
) -> tuple[Tick, int]:
    """A tick from the running recorder and client (read from another thread)."""
    for _ in range(3):  # the engine's thread may add an error kind while we copy
        try:
            errors = dict(recorder.errors)
            break
        except RuntimeError:
            errors = {}
    closed = recorder.intervals[sent:]  # appended by the engine's thread: a stable prefix
    tick = Tick(
        shard=shard,
        elapsed_s=(time.perf_counter_ns() - recorder.start_ns) / 1e9,
        requests=recorder.requests,
        errors=errors,
        open_connections=client.open_connections,
        cpu_s=time.process_time(),
        intervals=tuple(closed),
        bytes_sent=recorder.bytes_sent,
        bytes_received=recorder.bytes_received,
    )
    return tick, sent + len(closed)


@contextmanager
def ticking(
    spec: ShardSpec, channel: ShardChannel, client: LoadClient | StreamClient, recorder: Recorder
) -> Iterator[None]:
    """While the client runs: send ticks, and stop the client when the coordinator asks."""
    done = threading.Event()
    sent = [0]

    def send() -> None:
        tick, sent[0] = make_tick(spec.index, client, recorder, sent[0])
        channel.tick(tick)

    def watch() -> None:
        # Looks at the channel between waits on ``done``, so the run's end never waits
        # for a tick interval to pass.
        while not done.wait(TICK_INTERVAL_S):
            if channel.wait_stop(0):
                client.stop_requested = True
                return
            if channel.wants_ticks:
                send()

    thread = threading.Thread(target=watch, name=f"loadgen-shard-{spec.index}-ticks", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(2 * TICK_INTERVAL_S + 1)
        if channel.wants_ticks:
            send()
