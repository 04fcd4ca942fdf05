"""The load plan: what a scenario's ``load`` section asks for, worked out once.

A scenario says what to do in its own terms (a model, a default connection count and think
time, phases that may override them). Everything that runs or checks a run needs the same
derived numbers, and ``LoadPlan.from_scenario`` is the one place they are derived:

* **phases** with their start and end (seconds from the run's start), their think time
  (the phase's own ``think_time``, else ``load.think_time``), their connection counts at
  start and end (a ramp's two ends; a phase without ``connections``, and every open-model
  phase, holds ``load.connections``) and, in the open model, their rates;
* **peak connections**: the most connections held at once over the whole run, which is the
  size of a client's pool of slots and what the machine's limits are checked against;
* **connection phases** (closed model with a ramp): ``(duration_s, first, last)`` per phase
  for ``schedule.connections_at``; empty when the count never changes;
* **idle windows** (closed model): ``(start_s, end_s)`` of each ``idle: true`` phase;
* **think times**: ``(end_s, think_s)`` per phase, the table a client looks the current
  think time up in (empty when no phase thinks);
* the open model's **arrival schedule** (``schedule.arrival_offsets_ns``) and the gap
  between its first two sends;
* the **phase label** the live view shows at an elapsed time.

Pure: no clocks, no I/O. Frozen: a plan is built once and read by everyone.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from loadgen.config.phases import Load
from loadgen.config.scenario import Scenario
from loadgen.config.schedule import RatePhase, arrival_offsets_ns


@dataclass(frozen=True)
class PlannedPhase:
    """One phase of the plan, every default resolved."""

    number: int  # 1-based, as the live view counts them
    start_s: float  # from the run's start
    end_s: float
    think_time_s: float  # the phase's own think time, else load.think_time
    connections: tuple[int, int]  # at the phase's start and end (equal: no ramp)
    rate: tuple[float, float] | None  # open model: requests/s at start and end
    poisson: bool  # open model: Poisson arrivals (else evenly spaced)
    idle: bool  # closed model: connections open but send nothing

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    @property
    def peak_connections(self) -> int:
        return max(self.connections)

    def rate_at(self, elapsed_s: float) -> float | None:
        """Open model: the requests/s this phase asks for ``elapsed_s`` into the run."""
        if self.rate is None:
            return None
        first, last = self.rate
        fraction = min(1.0, max(0.0, (elapsed_s - self.start_s) / self.duration_s))
        return first + (last - first) * fraction


@dataclass(frozen=True)
class LoadPlan:
    """The derived numbers of one scenario's load (see the module's docstring)."""

    model: Literal["open", "closed"]
    phases: tuple[PlannedPhase, ...]
    requests_per_connection: int | None
    duration_s: float
    #: The most connections held at once: the pool of slots every client makes.
    peak_connections: int
    #: Closed model with a ramp: (duration_s, connections at start, at end) per phase;
    #: empty when the count is constant (``schedule.connections_at`` reads it).
    connection_phases: tuple[tuple[float, int, int], ...]
    #: Closed model: (start_s, end_s) of each idle phase.
    idle_windows: tuple[tuple[float, float], ...]
    #: (end_s, think_s) per phase, in order; empty when no phase has a think time.
    think_times: tuple[tuple[float, float], ...]

    @classmethod
    def from_scenario(cls, scenario: Scenario) -> LoadPlan:
        return cls.from_load(scenario.load_section)

    @classmethod
    def from_load(cls, load: Load) -> LoadPlan:
        phases: list[PlannedPhase] = []
        start_s = 0.0
        for number, phase in enumerate(load.phases, 1):
            end_s = start_s + phase.duration
            phases.append(
                PlannedPhase(
                    number=number,
                    start_s=start_s,
                    end_s=end_s,
                    think_time_s=(
                        phase.think_time if phase.think_time is not None else load.think_time
                    ),
                    connections=phase.connections or (load.connections, load.connections),
                    rate=phase.rate,
                    poisson=phase.arrivals == "poisson",
                    idle=phase.idle,
                )
            )
            start_s = end_s
        ramps = load.model == "closed" and any(p.connections is not None for p in load.phases)
        return cls(
            model=load.model,
            phases=tuple(phases),
            requests_per_connection=load.requests_per_connection,
            duration_s=start_s,
            peak_connections=max(p.peak_connections for p in phases),
            connection_phases=(
                tuple((p.duration_s, *p.connections) for p in phases) if ramps else ()
            ),
            idle_windows=tuple((p.start_s, p.end_s) for p in phases if p.idle),
            think_times=(
                tuple((p.end_s, p.think_time_s) for p in phases)
                if any(p.think_time_s for p in phases)
                else ()
            ),
        )

    @property
    def open_model(self) -> bool:
        return self.model == "open"

    def phase_at(self, elapsed_s: float) -> PlannedPhase:
        """The phase running ``elapsed_s`` into the run (the last one after the end)."""
        for phase in self.phases:
            if elapsed_s < phase.end_s:
                return phase
        return self.phases[-1]

    def phase_label(self, elapsed_s: float) -> str:
        """``phase 2/3 (20,000/s)``: where a run is, for the live view."""
        phase = self.phase_at(elapsed_s)
        rate = phase.rate_at(elapsed_s)
        detail = " (idle)" if phase.idle else ""
        if rate is not None:
            detail = f" ({rate:,.0f}/s)"
        return f"phase {phase.number}/{len(self.phases)}{detail}"

    def rate_phases(self) -> list[RatePhase]:
        """Open model: the phases as the arrival schedule takes them (empty: closed)."""
        if not self.open_model:
            return []
        rates = []
        for phase in self.phases:
            assert phase.rate is not None  # validated: the open model has a rate in every phase
            rates.append(RatePhase(phase.duration_s, *phase.rate, poisson=phase.poisson))
        return rates

    def arrivals_ns(self, seed: int | None = None) -> Iterator[int] | None:
        """Open model: intended send offsets (ns from the start); closed model: None."""
        if not self.open_model:
            return None
        return arrival_offsets_ns(self.rate_phases(), seed)

    @property
    def first_gap_ns(self) -> int:
        """Open model, constant arrivals: the gap between the first two sends (0 if none:
        closed model, Poisson arrivals or a ramp from zero)."""
        if not self.open_model:
            return 0
        first = self.phases[0]
        if first.poisson or first.rate is None or first.rate[0] <= 0:
            return 0
        return int(1e9 / first.rate[0])

    @property
    def highest_rate(self) -> float:
        """Open model: the highest requests/s any phase asks for (0 in the closed model)."""
        return max((max(p.rate) for p in self.phases if p.rate is not None), default=0.0)
