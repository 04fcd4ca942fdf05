"""The Dask task of a distributed run: runs in a worker, starts this host's process tree and
relays between it and the coordinator.

The task itself only waits and relays (the worker's thread stays free of the generator):

1. start the host process (``python -m loadgen.distributed.host``) and hand it its
   ``HostJob``; meanwhile measure this host's clock offset to the scheduler
   (``clock.measure_offset``, round trips of ``Client.run_on_scheduler(time.time)``);
2. when the host process is ready (its shards connected), tell the coordinator, with the
   offset and the margin the shards need;
3. wait for the start instant, named on the scheduler's clock (a Dask ``Variable``), turn it
   into this host's CLOCK_MONOTONIC and hand it down;
4. relay ticks up and a stop (a Dask ``Event``) down, until the host process gives its
   result, which becomes the task's result.

Messages up go through one Dask ``Queue`` per run, pickled here (``Tick`` and plain tuples):
``("ready", host, offset_s, uncertainty_s, margin_s)`` and ``("tick", host, Tick)``.

If the worker dies, the host process sees its stdin close and stops its shards; the
coordinator notices the worker is gone from the scheduler and names the host as lost.
"""

from __future__ import annotations

import pickle
import queue
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import suppress
from dataclasses import dataclass
from typing import IO, Any

from loadgen.distributed.clock import ClockOffset, measure_offset, remote_to_monotonic_ns
from loadgen.distributed.frames import read_frame, write_frame
from loadgen.distributed.host import HostJob
from loadgen.result.model import RunResult

#: How often the relay looks at the stop event and the start variable.
POLL_S = 0.2
#: How long the host process may take to hand over its result once asked to stop, and to
#: exit after that.
EXIT_GRACE_S = 30.0


@dataclass(frozen=True)
class RunNames:
    """The Dask names one run's coordinator and tasks share."""

    run_id: str

    @property
    def up(self) -> str:
        return f"loadgen-{self.run_id}-up"

    @property
    def start(self) -> str:
        return f"loadgen-{self.run_id}-start"

    @property
    def stop(self) -> str:
        return f"loadgen-{self.run_id}-stop"


@dataclass(frozen=True)
class HostOutcome:
    """What a host's task returns."""

    result: RunResult
    offset: ClockOffset


class HostFailed(RuntimeError):
    """The host process ended without a result (the message says how, with its stderr);
    ``traceback`` is the failure's Python traceback when the host sent one."""

    def __init__(self, message: str, traceback: str | None = None) -> None:
        super().__init__(message)
        self.traceback = traceback

    def __reduce__(self) -> tuple[type[HostFailed], tuple[str, str | None]]:
        return type(self), (str(self), self.traceback)  # Dask pickles it to the client


class DistributedMissing(RuntimeError):
    """Dask distributed is not installed (it is the optional extra ``distributed``)."""


def import_distributed() -> Any:
    """The ``distributed`` module (untyped for mypy), or ``DistributedMissing``."""
    try:
        import distributed
    except ImportError:
        raise DistributedMissing(
            "--cluster needs Dask distributed: pip install 'loadgen[distributed]'"
        ) from None
    return distributed


def identity() -> dict[str, Any]:
    """What a worker's loadgen is (``Client.run`` on every worker before a run)."""
    import os
    import socket

    from loadgen import __version__
    from loadgen.run.environment import os_description

    return {
        "loadgen_version": __version__,
        "hostname": socket.gethostname(),
        "python": sys.version.split()[0],
        "cpu_count": os.cpu_count() or 1,
        "os": os_description(),
    }


def check_host(jobs: dict[str, HostJob], dask_worker: Any = None) -> str | None:
    """Why this worker's host cannot run its job (None: it can); ``Client.run`` on every
    worker before a run (it passes ``dask_worker``), so that a missing backend or receive
    feature, or too many connections for the host's limits, is refused before any traffic,
    as on one host. Automatic fitting (more processes, 127.0.0.x sources) is not done here."""
    from loadgen.config.plan import LoadPlan
    from loadgen.engine import BackendUnavailable, select_backend
    from loadgen.engine.base import FeatureUnavailable
    from loadgen.run.limits import ConnectionLimitError, check_descriptors, check_ports
    from loadgen.run.wiring import check_receive_features

    job = jobs[dask_worker.address]
    try:
        engine = select_backend(job.backend)
    except BackendUnavailable as exc:
        return str(exc)
    try:
        check_receive_features(job.scenario, engine)
    except FeatureUnavailable as exc:
        return str(exc)
    finally:
        engine.shutdown()
    try:
        peaks = [LoadPlan.from_scenario(spec.scenario).peak_connections for spec in job.specs]
        for peak in peaks:
            check_descriptors(peak, raise_soft=False)
        check_ports(
            sum(peaks),
            len(job.scenario.source_addresses()),
            len(job.scenario.targets),
        )
    except ConnectionLimitError as exc:
        return str(exc)
    return None


def run_host(job: HostJob, run_id: str) -> HostOutcome:
    """The task: run ``job`` on this worker's host through a child process tree."""
    dask = import_distributed()
    names = RunNames(run_id)
    up, start, stop = dask.Queue(names.up), dask.Variable(names.start), dask.Event(names.stop)
    stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed in the finally below)
    process = subprocess.Popen(
        [sys.executable, "-m", "loadgen.distributed.host"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=stderr,
    )
    assert process.stdin is not None and process.stdout is not None
    write_frame(process.stdin, job)
    messages: queue.Queue[Any] = queue.Queue()
    reader = threading.Thread(target=_read_all, args=(process.stdout, messages), daemon=True)
    reader.start()
    client = dask.get_client()
    offset = measure_offset(lambda: float(client.run_on_scheduler(time.time)))
    started = stopped = False
    try:
        while True:
            if not stopped and stop.is_set():
                _tell(process.stdin, ("stop",))
                stopped = True
            try:
                message = messages.get(timeout=POLL_S)
            except queue.Empty:
                continue
            if message is None:
                raise HostFailed(_ended(process, stderr))
            kind = message[0]
            if kind == "tick":
                up.put(pickle.dumps(("tick", job.index, message[1])))
            elif kind == "ready":
                margin_s = message[1] / 1e9
                ready = ("ready", job.index, offset.offset_s, offset.uncertainty_s, margin_s)
                up.put(pickle.dumps(ready))
                while not started and not stopped:
                    started = _await_start(start, stop, offset, process.stdin)
                    stopped = not started and stop.is_set()
                if stopped:
                    _tell(process.stdin, ("stop",))
            elif kind == "result":
                return HostOutcome(message[1], offset)
            elif kind == "error":
                failure = message[1]  # a StopReason
                raise HostFailed(f"{failure.detail}{_stderr_tail(stderr)}", failure.traceback)
    finally:
        _finish(process)
        stderr.close()


def _await_start(start: Any, stop: Any, offset: ClockOffset, stdin: IO[bytes]) -> bool:
    """Wait a little for the start instant; hand it down when it comes (True)."""
    try:
        scheduler_time = float(start.get(timeout=POLL_S))
    except TimeoutError:
        return False
    _tell(stdin, ("start", remote_to_monotonic_ns(scheduler_time, offset)))
    return True


def _read_all(stdout: IO[bytes], messages: queue.Queue[Any]) -> None:
    while True:
        message = read_frame(stdout)
        messages.put(message)
        if message is None:
            return


def _tell(stdin: IO[bytes], message: object) -> None:
    with suppress(OSError):  # it has ended (a broken pipe); its end is read from stdout
        write_frame(stdin, message)


def _ended(process: subprocess.Popen[bytes], stderr: IO[bytes]) -> str:
    try:
        code = process.wait(EXIT_GRACE_S)
    except subprocess.TimeoutExpired:
        code = None
    from loadgen.run.processes import describe_exit

    return f"the host process {describe_exit(code)} without a result{_stderr_tail(stderr)}"


def _stderr_tail(stderr: IO[bytes], lines: int = 8) -> str:
    stderr.seek(0)
    tail = stderr.read().decode(errors="replace").strip().splitlines()[-lines:]
    return (": " + " | ".join(tail)) if tail else ""


def _finish(process: subprocess.Popen[bytes]) -> None:
    """Close the host process's stdin (it stops if still running) and reap it."""
    if process.stdin is not None:
        with suppress(OSError):
            process.stdin.close()
    try:
        process.wait(EXIT_GRACE_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
