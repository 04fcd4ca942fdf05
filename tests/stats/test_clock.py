"""The clock every latency is timed with, and the Windows timer raised for a run.

Runs on Linux and, through ``tests/test_wine.py``, on Windows CPython under Wine: there the
clock must be QueryPerformanceCounter (``time.monotonic`` is GetTickCount64 on CPython 3.12
for Windows: 15.625 ms ticks, 1 ms under Wine).
"""

from __future__ import annotations

import itertools
import sys
import time

import pytest

from loadgen.stats.clock import (
    CLOCK_LIMIT_NS,
    finest_timer_period_ms,
    measuring_clock,
    raised_timer_resolution,
    timer_resolution,
)


def test_the_measuring_clock_reports_sub_microsecond_resolution() -> None:
    clock = measuring_clock()
    assert clock.resolution_ns < CLOCK_LIMIT_NS, clock
    assert clock.fine_enough
    if sys.platform == "win32":
        assert clock.implementation == "QueryPerformanceCounter()"
        assert clock.resolution_ns <= 100  # 1 / QueryPerformanceFrequency (10 MHz)
    else:
        assert "CLOCK_MONOTONIC" in clock.implementation


def test_the_measuring_clock_tells_loopback_round_trips_apart() -> None:
    """Back-to-back readings of ``perf_counter_ns`` differ by far less than a millisecond
    and take many distinct values: what a 15.6 ms (or 1 ms) tick could never give."""
    readings = [time.perf_counter_ns() for _ in range(20_000)]
    steps = {b - a for a, b in itertools.pairwise(readings) if b != a}
    assert steps and min(steps) < 100_000
    assert len(set(readings)) > 1000


@pytest.mark.skipif(sys.platform != "win32", reason="the system timer is Windows' (Wine here)")
def test_a_run_raises_the_windows_timer_and_gives_it_back() -> None:
    before = timer_resolution()
    assert before is not None and before.finest_ms <= before.current_ms <= before.coarsest_ms
    assert finest_timer_period_ms() == 1
    with raised_timer_resolution() as period_ms:
        assert period_ms == 1.0
        during = timer_resolution()
        assert during is not None and during.current_ms <= 1.0
    # timeEndPeriod was called: a second raise and release work the same
    with raised_timer_resolution() as again:
        assert again == 1.0


@pytest.mark.skipif(sys.platform == "win32", reason="checks the non-Windows answer")
def test_off_windows_there_is_no_timer_to_raise() -> None:
    assert timer_resolution() is None and finest_timer_period_ms() is None
    with raised_timer_resolution() as period_ms:
        assert period_ms is None
