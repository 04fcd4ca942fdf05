"""How far a host's wall clock is from the Dask scheduler's, and the shared start instant
turned into this host's CLOCK_MONOTONIC.

Hosts' clocks differ (NTP keeps them within milliseconds, an unsynchronised one can be
seconds off), so a distributed run's start instant is named on one clock, the scheduler's
``time.time()``, and each host converts it with its own measured offset. The offset is
estimated the NTP way: read the scheduler's clock in a round trip, assume the reading was
taken half-way, keep the sample with the shortest round trip (least queueing), whose half
round trip bounds the error. The conversion to CLOCK_MONOTONIC then happens on the host
(monotonic time does not jump when NTP steps the wall clock during the run).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

#: Round trips per estimate: a few are enough to catch one with little queueing.
SAMPLES = 9
#: Offsets (or uncertainties) above this are worth a warning: shards then start visibly
#: apart or the timestamps of the hosts' results disagree.
WARN_OFFSET_S = 0.010


@dataclass(frozen=True)
class ClockOffset:
    """This clock minus the remote one (seconds), and the error bound of that estimate."""

    offset_s: float
    uncertainty_s: float


def measure_offset(read_remote: Callable[[], float], samples: int = SAMPLES) -> ClockOffset:
    """Estimate ``time.time()`` minus ``read_remote()`` from ``samples`` round trips."""
    best: ClockOffset | None = None
    for _ in range(samples):
        before = time.time()
        remote = read_remote()
        after = time.time()
        sample = ClockOffset((before + after) / 2 - remote, (after - before) / 2)
        if best is None or sample.uncertainty_s < best.uncertainty_s:
            best = sample
    assert best is not None
    return best


def remote_to_monotonic_ns(remote_time_s: float, offset: ClockOffset) -> int:
    """The CLOCK_MONOTONIC instant (ns) on this host of ``remote_time_s`` on the remote
    clock (``offset`` measured by ``measure_offset``)."""
    local_wall_s = remote_time_s + offset.offset_s
    # Read both clocks back to back; the difference between them is what converts.
    now_wall, now_monotonic = time.time(), time.perf_counter_ns()
    return now_monotonic + int((local_wall_s - now_wall) * 1e9)
