"""The host process of a distributed run: this host's share of the load, as a process tree.

A Dask worker's task (``loadgen.distributed.bridge``) starts ``python -m
loadgen.distributed.host`` as a child process, so the generator never runs in the worker's
own threads (it would hold the GIL from Dask's heartbeats and share its CPU with them). This
process runs the multi-process path of one host (``loadgen.run.processes.run_processes``: one
spawned shard process per core, their own start barrier, ticks, merge) with two
differences:

* **The start is decided elsewhere.** When this host's shards are ready (each with its
  connections open: ``ShardSpec.connect_before_start``), it says so and waits for the
  start instant, which the bridge converts from the scheduler's clock to this host's
  CLOCK_MONOTONIC (``RemoteGate``).
* **Ticks go upstream**, renumbered to the run's global shard numbers (``ForwardingBoard``).

Protocol (``frames``; stdin from the bridge, stdout to it):

* in: a ``HostJob``; then ``("start", monotonic_ns)`` or ``("stop",)``; the end of stdin
  (the worker died) stops the run as well;
* out: ``("ready", margin_ns)``, ``("tick", Tick)``, then ``("result", RunResult)`` or
  ``("error", StopReason)`` (the failure with its traceback, or its shards' tracebacks).

Everything else this process or its children print goes to stderr (fd 1 is pointed at fd
2 as soon as the frame stream is taken), so nothing can corrupt the frames.
"""

from __future__ import annotations

import os
import sys
import threading
from contextlib import suppress
from dataclasses import dataclass, replace
from typing import IO

from loadgen.config.plan import LoadPlan
from loadgen.config.scenario import Scenario
from loadgen.distributed.frames import read_frame, write_frame
from loadgen.result.stop import StopReason
from loadgen.run.progress import Tick, TickBoard
from loadgen.run.shard import ShardError, ShardSpec


@dataclass(frozen=True)
class HostJob:
    """One host's share of a distributed run (picklable)."""

    index: int  # the host's number in the run
    scenario: Scenario  # the whole run's scenario (thresholds and the final merge use it)
    specs: tuple[ShardSpec, ...]  # this host's shards, numbered as in the whole run
    backend: str  # "auto" is resolved on the host (each host has its own kernel)


class RemoteGate:
    """``workers.StartGate`` whose start instant and stop come through stdin."""

    def __init__(self, out: IO[bytes], lock: threading.Lock) -> None:
        self._out = out
        self._lock = lock
        self._start_ns: int | None = None
        self._stop = threading.Event()

    def everyone_ready(self, margin_ns: int) -> None:
        send(self._out, self._lock, ("ready", margin_ns))

    def start_ns(self) -> int | None:
        return self._start_ns

    def stop_requested(self) -> bool:
        return self._stop.is_set()

    def listen(self, frames_in: IO[bytes]) -> None:
        """Read the bridge's commands until the end of stdin (run on a thread)."""
        while True:
            message = read_frame(frames_in)
            if message is None or message[0] == "stop":
                self._stop.set()
                if message is None:
                    return
            elif message[0] == "start":
                self._start_ns = int(message[1])


class ForwardingBoard(TickBoard):
    """This host's board, which also sends every tick upstream under its global number."""

    def __init__(
        self, numbers: list[int], duration_s: float, out: IO[bytes], lock: threading.Lock
    ) -> None:
        super().__init__(len(numbers), duration_s)
        self._numbers = numbers
        self._out = out
        self._lock = lock

    def add(self, tick: Tick) -> None:
        super().add(tick)
        send(self._out, self._lock, ("tick", replace(tick, shard=self._numbers[tick.shard])))


def send(out: IO[bytes], lock: threading.Lock, message: object) -> None:
    """Send upstream; a bridge that is gone (the worker died) is not this run's failure."""
    with suppress(OSError):  # BrokenPipeError included
        write_frame(out, message, lock)


def run_job(job: HostJob, frames_in: IO[bytes], out: IO[bytes]) -> None:
    from loadgen.engine import select_backend
    from loadgen.run.processes import run_processes

    lock = threading.Lock()
    gate = RemoteGate(out, lock)
    threading.Thread(target=gate.listen, args=(frames_in,), daemon=True).start()
    try:
        backend = job.backend
        if backend == "auto":
            engine = select_backend("auto")
            backend = engine.name
            engine.shutdown()
        local = [
            replace(spec, index=number, count=len(job.specs), backend=backend)
            for number, spec in enumerate(job.specs)
        ]
        board = ForwardingBoard(
            [spec.index for spec in job.specs],
            LoadPlan.from_scenario(job.scenario).duration_s,
            out,
            lock,
        )
        result = run_processes(local, job.scenario, board, gate)
    except Exception as exc:
        failure = StopReason.from_exception(exc)
        shards = exc.stop if isinstance(exc, ShardError) else None
        if shards is not None and shards.traceback:  # where it went wrong: in the shards
            failure = replace(failure, traceback=shards.traceback)
        send(out, lock, ("error", failure))
        return
    send(out, lock, ("result", result))


def main() -> None:
    frames_in = sys.stdin.buffer
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # stray prints go to stderr
    job = read_frame(frames_in)
    if not isinstance(job, HostJob):
        raise SystemExit("loadgen host: expected a HostJob on stdin")
    run_job(job, frames_in, out)
    out.close()


if __name__ == "__main__":
    # Run as ``-m``, this file is ``__main__``; the job was pickled as a
    # ``loadgen.distributed.host.HostJob``, so run the module's own copy of ``main``.
    from loadgen.distributed.host import main as module_main

    module_main()
