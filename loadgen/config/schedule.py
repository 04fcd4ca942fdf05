"""When each request of an open-model run is meant to be sent. Pure: no clocks, no I/O.

Within a phase the rate ramps linearly from ``r0`` to ``r1`` over ``D`` seconds, so the
expected number of arrivals by time ``t`` is ``N(t) = r0·t + (r1 - r0)·t² / (2D)``. Arrival
``k`` is placed where ``N(t)`` reaches a count ``c_k``:

* constant arrivals: ``c_k = k`` (evenly spaced at the instantaneous rate);
* Poisson arrivals: ``c_k`` is a running sum of unit exponential draws (a unit-rate Poisson
  process mapped through ``N⁻¹``: exactly an inhomogeneous Poisson process of rate r(t)).

Solving ``N(t) = c`` gives ``t = 2c / (r0 + sqrt(r0² + 2ac))`` with ``a = (r1 - r0) / D``, a
form that stays exact when ``a`` is 0 and avoids cancellation when ``r0`` is large.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class RatePhase:
    duration_s: float
    start_rate: float  # requests per second at the start of the phase
    end_rate: float
    poisson: bool = False


def arrival_offsets_ns(phases: Sequence[RatePhase], seed: int | None = None) -> Iterator[int]:
    """Intended send times, in nanoseconds from the run's start, in increasing order."""
    rng = random.Random(seed)
    phase_start_s = 0.0
    for phase in phases:
        r0, r1, length = phase.start_rate, phase.end_rate, phase.duration_s
        slope = (r1 - r0) / length
        expected_total = (r0 + r1) / 2 * length
        count = rng.expovariate(1.0) if phase.poisson else 0.0
        while count < expected_total:
            root = math.sqrt(max(0.0, r0 * r0 + 2 * slope * count))
            offset_s = 2 * count / (r0 + root) if r0 + root > 0 else 0.0
            yield int((phase_start_s + offset_s) * 1e9)
            count += rng.expovariate(1.0) if phase.poisson else 1.0
        phase_start_s += length


def expected_arrivals(phases: Sequence[RatePhase]) -> float:
    """The mean number of arrivals the phases ask for."""
    return sum((p.start_rate + p.end_rate) / 2 * p.duration_s for p in phases)


def connections_at(phases: Sequence[tuple[float, int, int]], elapsed_s: float) -> int:
    """Closed model: the connection count wanted ``elapsed_s`` into the run.

    ``phases`` holds (duration_s, start_connections, end_connections); counts ramp linearly
    within a phase and the last phase's end count holds after the end.
    """
    start_s = 0.0
    for duration_s, first, last in phases:
        if elapsed_s < start_s + duration_s:
            fraction = (elapsed_s - start_s) / duration_s
            return round(first + (last - first) * fraction)
        start_s += duration_s
    return phases[-1][2] if phases else 0
