"""The generator's own CPU, sampled once a second from a thread beside the hot loop.

Two numbers per sample, both cumulative:

* ``process_time()``: CPU seconds of this whole process, user and system (every OS). Its
  share of wall time is how much of one core the generator used.
* ``runnable_ns`` (Linux only): the loop thread's time on a CPU plus its time waiting on a
  run queue, from ``/proc/self/task/TID/schedstat`` (fields 1 and 2, ns). A loop that was
  runnable all the time was the bottleneck even when other processes took the CPU from it:
  its CPU share then reads low (62% on a busy 2-core machine) while it never slept. Where the
  file is missing (no CONFIG_SCHED_INFO, Windows) it is None: not measurable here.

The thread wakes on the run's interval boundaries (``start_ns + k * period``), reads two
counters (a few microseconds) and sleeps again, so it costs the loop one GIL hand-over a
second. ``shares()`` turns the samples into per-interval percentages by interpolating the
cumulative counters at each interval's edges.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Sequence
from types import TracebackType


def _schedstat_path(thread_id: int | None) -> str | None:
    if sys.platform != "linux" or thread_id is None:
        return None
    return f"/proc/self/task/{thread_id}/schedstat"


def read_runnable_ns(path: str | None) -> int | None:
    """On-CPU plus run-queue-wait nanoseconds of one thread, or None where not measurable."""
    if path is None:
        return None
    try:
        with open(path, encoding="ascii") as file:
            fields = file.read().split()
        return int(fields[0]) + int(fields[1])
    except (OSError, ValueError, IndexError):
        return None


class CpuSampler:
    """Samples (monotonic ns, process CPU s, loop-thread runnable ns) from ``start_ns`` on.

    Use as a context manager around the run, from the loop's own thread (its id is taken at
    construction): a sample at entry, one per ``period_s`` boundary, one at exit.
    """

    def __init__(self, start_ns: int, period_s: float = 1.0) -> None:
        self.start_ns = start_ns
        self.period_ns = int(period_s * 1e9)
        self.samples: list[tuple[int, float, int | None]] = []
        self._path = _schedstat_path(threading.get_native_id())
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="loadgen-cpu", daemon=True)

    def sample(self) -> None:
        self.samples.append(
            (time.perf_counter_ns(), time.process_time(), read_runnable_ns(self._path))
        )

    def _loop(self) -> None:
        while True:
            now = time.perf_counter_ns()
            elapsed = now - self.start_ns
            next_edge = self.start_ns + (elapsed // self.period_ns + 1) * self.period_ns
            if self._stop.wait((next_edge - now) / 1e9):
                return
            self.sample()

    def __enter__(self) -> CpuSampler:
        self.sample()
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    @property
    def measures_runnable(self) -> bool:
        return all(runnable is not None for _, _, runnable in self.samples)

    def shares(self, start_s: float, end_s: float) -> tuple[float | None, float | None]:
        """(CPU %, runnable %) of one core between two times (s from ``start_ns``); None
        where the samples do not cover the span or runnable time is not measurable."""
        if len(self.samples) < 2 or end_s <= start_s:
            return None, None
        a_ns = self.start_ns + int(start_s * 1e9)
        b_ns = self.start_ns + int(end_s * 1e9)
        first, last = self.samples[0][0], self.samples[-1][0]
        if a_ns < first - self.period_ns // 10 or b_ns > last + self.period_ns // 10:
            return None, None
        wall = (b_ns - a_ns) / 1e9
        cpu = (_at(self.samples, b_ns, 1) - _at(self.samples, a_ns, 1)) / wall
        runnable: float | None = None
        if self.measures_runnable:
            runnable = (_at(self.samples, b_ns, 2) - _at(self.samples, a_ns, 2)) / 1e9 / wall
        return round(100 * cpu, 1), None if runnable is None else round(100 * runnable, 1)


def _at(samples: Sequence[tuple[int, float, int | None]], at_ns: int, column: int) -> float:
    """Cumulative counter ``column`` interpolated linearly at ``at_ns``."""
    previous = samples[0]
    if at_ns <= previous[0]:
        return float(previous[column] or 0)
    for sample in samples[1:]:
        if at_ns <= sample[0]:
            span = sample[0] - previous[0]
            low, high = float(previous[column] or 0), float(sample[column] or 0)
            return low + (high - low) * (at_ns - previous[0]) / span if span else high
        previous = sample
    return float(previous[column] or 0)
