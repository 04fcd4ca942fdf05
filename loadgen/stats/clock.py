"""The clock every measurement is timed with, and the Windows system timer behind waits.

* Latency, connect time, schedule lag and the loop's own timing are all differences of
  ``time.perf_counter_ns``: ``clock_gettime(CLOCK_MONOTONIC)`` on Linux (clock_getres: 1 ns)
  and ``QueryPerformanceCounter`` on Windows (1 / QueryPerformanceFrequency: 100 ns on
  Windows 10 and later, and under Wine). Not ``time.monotonic_ns``: on Windows CPython
  before 3.13 that is ``GetTickCount64``, which ticks every 15.625 ms (1 ms under Wine), so
  loopback requests read 0 ns or one whole tick.
* ``CLOCK_LIMIT_NS`` (1 us): a clock coarser than that cannot time a loopback request (tens
  of microseconds); a run timed with one is marked invalid for latency (``run.selfcheck``).
* Windows only: timed waits (``GetQueuedCompletionStatusEx``'s timeout, ``time.sleep``) end
  on a system timer tick, 15.625 ms unless raised with ``timeBeginPeriod``. A run raises it
  to ``TIMER_PERIOD_MS`` (1 ms) for its length and lowers it again with ``timeEndPeriod``
  (since Windows 10 2004 the raise applies to the calling process only), so think times and
  open-model pacing below 15 ms are not rounded up to a tick. ``NtQueryTimerResolution``
  reports the system's current tick (100 ns units); ``timeGetDevCaps`` the finest period
  ``timeBeginPeriod`` accepts.
"""

from __future__ import annotations

import ctypes
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Final

from loadgen.engine import win32

#: The clock of every measurement (see the module docstring).
CLOCK: Final = "perf_counter"
#: Coarser than this, a clock cannot time a loopback request: the run's latency is invalid.
CLOCK_LIMIT_NS: Final = 1000.0
#: The Windows timer period a run asks for: the finest timeBeginPeriod grants everywhere.
TIMER_PERIOD_MS: Final = 1


@dataclass(frozen=True)
class ClockInfo:
    """What ``time.get_clock_info`` says of the measuring clock."""

    implementation: str  # e.g. "clock_gettime(CLOCK_MONOTONIC)", "QueryPerformanceCounter()"
    resolution_ns: float

    @property
    def fine_enough(self) -> bool:
        return self.resolution_ns <= CLOCK_LIMIT_NS


def measuring_clock() -> ClockInfo:
    info = time.get_clock_info(CLOCK)
    return ClockInfo(info.implementation, round(info.resolution * 1e9, 3))


@dataclass(frozen=True)
class TimerResolution:
    """The Windows system timer, in ms: the current tick and the range allowed."""

    current_ms: float
    finest_ms: float
    coarsest_ms: float


def _windows() -> bool:
    # A function, not an inline check: type checkers on Linux would call the rest unreachable.
    return sys.platform == "win32"


def timer_resolution() -> TimerResolution | None:
    """The system timer's resolution now (Windows); None elsewhere or if not readable."""
    if not _windows():
        return None
    coarsest, finest, current = ctypes.c_uint32(), ctypes.c_uint32(), ctypes.c_uint32()
    status = win32.ntdll().NtQueryTimerResolution(
        ctypes.byref(coarsest), ctypes.byref(finest), ctypes.byref(current)
    )
    if status != win32.STATUS_SUCCESS:
        return None
    return TimerResolution(current.value / 1e4, finest.value / 1e4, coarsest.value / 1e4)


def finest_timer_period_ms() -> int | None:
    """The finest period timeBeginPeriod accepts (Windows), in ms; None elsewhere."""
    if not _windows():
        return None
    caps = win32.TIMECAPS()
    if win32.winmm().timeGetDevCaps(ctypes.byref(caps), ctypes.sizeof(caps)):
        return None
    return int(caps.wPeriodMin)


@contextmanager
def raised_timer_resolution(period_ms: int = TIMER_PERIOD_MS) -> Iterator[float | None]:
    """On Windows, ask for a ``period_ms`` system timer while active (``timeBeginPeriod``)
    and give it back after (``timeEndPeriod``). Yields the period granted, in ms; None
    elsewhere (Linux timers are not tick-bound) or when Windows refused it."""
    if not _windows():
        yield None
        return
    winmm = win32.winmm()
    granted = winmm.timeBeginPeriod(period_ms) == win32.TIMERR_NOERROR
    try:
        yield float(period_ms) if granted else None
    finally:
        if granted:
            winmm.timeEndPeriod(period_ms)
