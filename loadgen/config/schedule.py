"""When each request of an open-model run is meant to be sent. Pure: no clocks, no I/O.

Within a phase the rate ramps linearly from ``r0`` to ``r1`` over ``D`` seconds, so the
expected number of arrivals by time ``t`` is ``N(t) = r0·t + (r1 - r0)·t² / (2D)``. Arrival
``k`` is placed where ``N(t)`` reaches a count ``c_k``:

* constant arrivals: ``c_k = k`` (evenly spaced at the instantaneous rate);
* Poisson arrivals: ``c_k`` is a running sum of unit exponential draws (a unit-rate Poisson
  process mapped through ``N⁻¹``: exactly an inhomogeneous Poisson process of rate r(t)).

Solving ``N(t) = c`` gives ``t = 2c / (r0 + sqrt(r0² + 2ac))`` with ``a = (r1 - r0) / D``, a
form that stays exact when ``a`` is 0 and avoids cancellation when ``r0`` is large.

Counts are integers (Poisson: an integer and a fraction in [0, 1)), so a schedule never
stops advancing: a float count stops growing by 1 past 2^53. A constant-rate phase places
arrival ``k`` with integer arithmetic, ``k * 10^9 / r0`` nanoseconds with the rate taken as
the exact fraction its float is, so arrivals 100 ns apart stay apart even years into a
run; a ramp uses the float formula above.

``ArrivalSchedule.skip_until`` drops every arrival due by a given time in O(1) per phase,
without producing them one by one: a generator that is far behind its schedule counts
those requests as never sent instead of materialising millions of them. Rates above
``MAX_RATE_PER_S`` are refused by the scenario schema (``offerable_rates``).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction

#: "No more arrivals": later than any run (2^62 ns is 146 years).
NEVER_NS = 1 << 62

#: The highest open-model rate a run may ask for (the whole run: every process and host
#: together). One loadgen process sends ~0.1M requests/s at most (benchmarks/echo.py; a C
#: client such as wrk manages ~1M/s per core), so 10M/s is a hundred processes at full
#: speed: beyond any one machine and about what a large cluster run could offer. A rate
#: above it is a typo, not a load, and would only keep the schedule busy for nothing.
MAX_RATE_PER_S = 10_000_000


def offerable_rates(rates: tuple[float, float]) -> tuple[float, float]:
    """A phase's (start, end) rates, checked against ``MAX_RATE_PER_S`` (the schema's
    check: ``ValueError`` says what is wrong)."""
    for rate in rates:
        if math.isnan(rate):
            raise ValueError("a rate must be a number of requests per second, e.g. 1k/s")
        if rate > MAX_RATE_PER_S:
            shown = f"{rate:,.0f}/s" if rate < 1e12 else f"{rate:.3g}/s"
            raise ValueError(
                f"{shown} is more than any run can send: at most 10M/s "
                f"({MAX_RATE_PER_S:,} requests/s) for the whole run"
            )
    return rates


@dataclass(frozen=True)
class RatePhase:
    duration_s: float
    start_rate: float  # requests per second at the start of the phase
    end_rate: float
    poisson: bool = False


class ArrivalSchedule:
    """Intended send offsets in nanoseconds from the run's start, in increasing order.

    ``next_ns`` is the next arrival's offset (``NEVER_NS`` when none is left); ``take``
    and iteration produce arrivals, ``skip_until`` drops them. ``shift_ns`` delays every
    arrival (a shard's place in the interleaving of several shards); arrivals at or after
    ``end_ns`` are cut.
    """

    def __init__(
        self,
        phases: Sequence[RatePhase],
        seed: int | None = None,
        shift_ns: int = 0,
        end_ns: int = NEVER_NS,
    ) -> None:
        self._rng = random.Random(seed)
        self._phases = list(phases)
        self._shift_ns = shift_ns
        self._end_ns = end_ns
        starts_s = [sum(p.duration_s for p in self._phases[:i]) for i in range(len(phases))]
        self._starts_ns = [round(start * 1e9) for start in starts_s]
        self._phase = -1
        self._start_ns = 0  # of the current phase, shift included
        self._length_ns = 0
        self._r0 = 0.0
        self._slope = 0.0  # rate change per second within the phase
        self._total = 0.0  # expected arrivals in the phase: N(D)
        self._poisson = False
        #: Constant rate: nanoseconds per arrival as an exact fraction (num / den).
        self._num = 0
        self._den = 1
        self._whole = 0  # the count c of the next arrival: whole + frac
        self._frac = 0.0
        self.next_ns = NEVER_NS
        self._enter(0)

    # --- producing ------------------------------------------------------------------
    def __iter__(self) -> Iterator[int]:
        return self

    def __next__(self) -> int:
        offset = self.next_ns
        if offset >= NEVER_NS:
            raise StopIteration
        self._advance(1)
        return offset

    def take(self, until_ns: int, limit: int, out: list[int]) -> int:
        """Append the offsets of arrivals due at or before ``until_ns`` to ``out``, at most
        ``limit`` of them; return how many."""
        taken = 0
        if not self._poisson and self._slope == 0:
            # The common case, with locals: a constant rate, k * num // den ns apart.
            whole, num, den = self._whole, self._num, self._den
            start, end = self._start_ns, self._end_ns
            last = math.ceil(self._total) - 1  # the phase's last arrival
            offset = self.next_ns
            while offset <= until_ns and taken < limit and whole < last:
                out.append(offset)
                taken += 1
                whole += 1
                offset = start + (whole * num) // den
                if offset >= end:
                    break
            self._whole = whole
            self._place()
        elif self._slope == 0 and self._r0 > 0:
            # Poisson at a constant rate, with locals (one exponential draw per arrival).
            whole, frac, num, den = self._whole, self._frac, self._num, self._den
            start, end, total = self._start_ns, self._end_ns, self._total
            ns_per_arrival = num / den
            draw = self._rng.expovariate
            offset = self.next_ns
            while offset <= until_ns and taken < limit:
                out.append(offset)
                taken += 1
                frac += draw(1.0)
                if frac >= 1.0:
                    carry = int(frac)
                    whole += carry
                    frac -= carry
                if whole + frac >= total:
                    break
                offset = start + (whole * num) // den + int(frac * ns_per_arrival)
                if offset >= end:
                    break
            self._whole, self._frac = whole, frac
            self._place()
        while self.next_ns <= until_ns and taken < limit:
            out.append(self.next_ns)
            self._advance(1)
            taken += 1
        return taken

    def skip_until(self, until_ns: int) -> int:
        """Drop every arrival due at or before ``until_ns`` without producing it; return how
        many were dropped (for Poisson arrivals: the expected number, rounded)."""
        until_ns = min(until_ns, self._end_ns - 1)
        dropped = 0
        while self.next_ns <= until_ns:
            phase_end_ns = self._start_ns + self._length_ns
            if until_ns >= phase_end_ns:  # the rest of this phase
                ahead = self._total - self._count()
                dropped += math.ceil(ahead) if not self._poisson else 1 + round(ahead)
                self._enter(self._phase + 1)
                continue
            elapsed_s = (until_ns - self._start_ns) / 1e9
            due = self._r0 * elapsed_s + self._slope * elapsed_s * elapsed_s / 2  # N(t)
            if self._poisson:
                # The next arrival is due (1), and the unit-rate process holds on average
                # due - c more up to N(t); memoryless, the one after comes Exp(1) later.
                dropped += 1 + round(max(0.0, due - self._count()))
                self._set_count(due + self._rng.expovariate(1.0))
            else:
                if self._slope == 0:  # exact: k is due when k * num // den <= t
                    last = ((until_ns - self._start_ns + 1) * self._den - 1) // self._num
                else:  # k is due when k <= N(t)
                    last = math.floor(due)
                count = max(1, last + 1 - self._whole)  # at least the next one: it is due
                dropped += count
                self._advance(count)
        return dropped

    # --- the count and the phases ----------------------------------------------------
    def _count(self) -> float:
        return self._whole + self._frac

    def _set_count(self, count: float) -> None:
        whole = math.floor(count)
        self._whole, self._frac = whole, count - whole
        self._place()

    def _advance(self, arrivals: int) -> None:
        """Move past the next ``arrivals`` arrivals (Poisson: one draw per arrival)."""
        if self._poisson:
            draw = self._rng.expovariate
            whole, frac = self._whole, self._frac
            for _ in range(arrivals):
                frac += draw(1.0)
                if frac >= 1.0:
                    carry = int(frac)
                    whole += carry
                    frac -= carry
            self._whole, self._frac = whole, frac
        else:
            self._whole += arrivals
        self._place()

    def _enter(self, index: int) -> None:
        """Start phase ``index`` (or end the schedule after the last one)."""
        self._phase = index
        if index >= len(self._phases):
            self.next_ns = NEVER_NS
            return
        phase = self._phases[index]
        self._start_ns = self._starts_ns[index] + self._shift_ns
        self._length_ns = round(phase.duration_s * 1e9)
        self._r0 = phase.start_rate
        self._slope = (phase.end_rate - phase.start_rate) / phase.duration_s
        self._total = (phase.start_rate + phase.end_rate) / 2 * phase.duration_s
        self._poisson = phase.poisson
        if self._slope == 0 and self._r0 > 0:
            per_arrival = Fraction(10**9) / Fraction(self._r0)
            self._num, self._den = per_arrival.numerator, per_arrival.denominator
        self._whole, self._frac = 0, 0.0
        if self._poisson:
            self._set_count(self._rng.expovariate(1.0))
        else:
            self._place()

    def _place(self) -> None:
        """``next_ns`` from the count; past the phase's last arrival, the next phase."""
        if self._phase >= len(self._phases):
            self.next_ns = NEVER_NS
            return
        count = self._whole + self._frac
        if count >= self._total:
            self._enter(self._phase + 1)
            return
        if self._slope == 0:
            offset = (self._whole * self._num) // self._den
            if self._frac:
                offset += int(self._frac * (self._num / self._den))
        else:
            r0 = self._r0
            root = math.sqrt(max(0.0, r0 * r0 + 2 * self._slope * count))
            offset = int(2 * count / (r0 + root) * 1e9) if r0 + root > 0 else 0
        offset += self._start_ns
        if offset >= self._end_ns:
            self._phase = len(self._phases)  # cut: nothing after the end
            offset = NEVER_NS
        self.next_ns = offset


def arrival_offsets_ns(phases: Sequence[RatePhase], seed: int | None = None) -> Iterator[int]:
    """Intended send times, in nanoseconds from the run's start, in increasing order."""
    return ArrivalSchedule(phases, seed)


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
