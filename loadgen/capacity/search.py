"""The search strategy: grow, bisect, prove. Pure logic over a ``measure(load, phase)``
callable that runs one step and returns it (``steps.Stepper.measure``).

1. **Grow**: from ``start``, double the load (``GROWTH``) until a step breaks an SLO, or
   ``maximum`` holds (the capacity is above it). A first step that already breaks is
   followed by halving (**shrink**) until one holds, at most ``MAX_SHRINK`` times.
2. **Bisect** between the last passing and the first failing load, at their geometric
   mean, until they are within ``precision`` of each other.
3. **Prove** (``proof``): ``confirm`` fresh steps at the passing load R must all hold; then
   ``confirm`` steps at R x (1 + precision) must break an SLO by a significant margin. When
   a confirm step breaks, R was not sustained every time: the proof moves down by one
   precision. When the steps above all hold, that load is sustained as well and becomes R.
   When they break, but not significantly, the search is not sure and widens the margin
   (x2). ``MAX_PROOF_ROUNDS`` bounds all of this; past it the answer is "not proven".

A step whose generator was the bottleneck is run again, up to ``SATURATED_RETRIES``
times (a generator starved for a moment on a busy machine is not one that cannot offer
the load); when every try is, that ends the search: the target sustained at least the
last load that passed, and the generator cannot say more (never its limit as the target's
capacity). A step that was interrupted or failed ends it too.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from loadgen.capacity.model import Outcome, Settings, SloAt, Status, Step, StepVerdict, Vary, slo_at
from loadgen.capacity.proof import Proof, judge_proof, why_not_significant
from loadgen.capacity.text import format_change, format_load, slo_values
from loadgen.config.thresholds import Threshold

#: Each growth step doubles the load: the knee is bracketed within a factor of 2 in
#: log2(capacity / start) steps, and bisection then needs ~4 more steps to reach 5%.
GROWTH = 2.0
#: A start that already breaks is halved at most this often (down to start / 64).
MAX_SHRINK = 6
#: Confirm / above rounds of the proof (each up to 2 x confirm steps) before giving up.
MAX_PROOF_ROUNDS = 6
#: A step whose generator was the bottleneck is run again this often before that ends the
#: search: on a busy shared machine the generator is starved for seconds at a time (measured
#: on the 2-core VM at a load average of 15-20: schedule lag p99 of 40-100 ms at 100-400/s,
#: passing on the next try), which says nothing about what it can offer.
SATURATED_RETRIES = 2
#: Rates are rounded to this many significant digits, so steps read 1,130/s, not 1,131.37/s.
RATE_DIGITS = 3

Measure = Callable[[float, str], Step]


class _Stop(Exception):
    """A step ended the search early (generator limit, interrupt, failure)."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.message)
        self.outcome = outcome


@dataclass
class _Bracket:
    passing: float | None = None  # the highest load that passed
    failing: float | None = None  # the lowest load that broke an SLO
    passing_step: Step | None = None
    failing_step: Step | None = None


def search(measure: Measure, settings: Settings, slos: Sequence[Threshold]) -> Outcome:
    """Run the search to its answer."""
    state = _Search(measure, settings, list(slos))
    try:
        return state.run()
    except _Stop as stop:
        return stop.outcome
    except KeyboardInterrupt:  # Ctrl-C between two steps (inside one, the run stops itself)
        return state.interrupted()


class _Search:
    def __init__(self, measure: Measure, settings: Settings, slos: list[Threshold]) -> None:
        self.measure_step = measure
        self.settings = settings
        self.slos = slos
        self.integer = settings.vary is Vary.CONNECTIONS
        self.bracket = _Bracket()
        #: The highest load the proof confirmed (every confirm step there held), and them.
        self.confirmed: tuple[float, list[Step]] | None = None

    # ------------------------------------------------------------------ loads

    def _load(self, value: float) -> float:
        """A load as a step runs it: whole connections, or a rate to RATE_DIGITS digits."""
        if self.integer:
            return float(max(1, round(value)))
        digits = RATE_DIGITS - 1 - math.floor(math.log10(value)) if value > 0 else 0
        return round(value, digits)

    def _text(self, value: float | None) -> str:
        return format_load(value, self.settings.vary)

    def _close_enough(self, low: float, high: float) -> bool:
        if self.integer and high - low <= 1:
            return True
        return high <= low * (1 + self.settings.precision) * (1 + 1e-9)

    def _between(self, low: float, high: float) -> float | None:
        """The bisection's next load (geometric mean), None when none lies between."""
        middle = self._load(math.sqrt(low * high))
        if not low < middle < high:
            middle = self._load((low + high) / 2)
        return middle if low < middle < high else None

    def _above(self, load: float, margin: float) -> float:
        above = self._load(load * (1 + margin))
        if above <= load:
            above = load + 1 if self.integer else self._load(load * (1 + margin) * 1.01)
        return above

    # ------------------------------------------------------------------ steps

    def measure(self, load: float, phase: str) -> Step:
        step = self.measure_step(load, phase)
        for _ in range(SATURATED_RETRIES):
            if step.verdict is not StepVerdict.SATURATED:
                break
            step = self.measure_step(load, phase)  # starved a moment, or unable? again
        if step.verdict is StepVerdict.SATURATED:
            raise _Stop(self._generator_limited(step))
        if step.verdict is StepVerdict.STOPPED:
            raise _Stop(self._stopped(step))
        return step

    def _record(self, step: Step) -> None:
        bracket = self.bracket
        if step.passed:
            if bracket.passing is None or step.offered > bracket.passing:
                bracket.passing, bracket.passing_step = step.offered, step
        elif bracket.failing is None or step.offered < bracket.failing:
            bracket.failing, bracket.failing_step = step.offered, step

    def _values(self, steps: list[Step]) -> list[SloAt]:
        return [slo_at(steps, index) for index in range(len(self.slos))]

    # ------------------------------------------------------------------ phases

    def run(self) -> Outcome:
        settings = self.settings
        load = self._load(settings.start)
        maximum = settings.maximum
        while True:  # grow
            step = self.measure(load, "grow")
            self._record(step)
            if not step.passed:
                break
            if maximum is not None and load >= maximum:
                return self._above_max(step)
            load = self._load(load * GROWTH)
            if maximum is not None:
                load = min(load, maximum)
        shrinks = 0
        while self.bracket.passing is None:  # shrink
            load = self._load(load / GROWTH)
            shrinks += 1
            if shrinks > MAX_SHRINK or (self.integer and load >= (self.bracket.failing or 0)):
                return self._below_start()
            self._record(self.measure(load, "shrink"))
        while True:  # bisect
            low, high = self.bracket.passing, self.bracket.failing
            assert low is not None and high is not None
            if self._close_enough(low, high):
                break
            middle = self._between(low, high)
            if middle is None:
                break
            self._record(self.measure(middle, "bisect"))
        if settings.confirm == 0:
            return self._unconfirmed()
        return self._prove()

    def _prove(self) -> Outcome:
        precision = self.settings.precision
        confirm = self.settings.confirm
        load = self.bracket.passing
        assert load is not None
        confirms: list[Step] | None = None
        margin = precision
        notes: list[str] = []
        proof: Proof | None = None
        uppers: list[Step] = []
        above = load
        for _ in range(MAX_PROOF_ROUNDS):
            if confirms is None:
                confirms = []
                for _ in range(confirm):
                    step = self.measure(load, "confirm")
                    confirms.append(step)
                    if not step.passed:
                        break
                if all(step.passed for step in confirms):
                    self.confirmed = (load, confirms)
                else:
                    lower = self._load(load / (1 + precision))
                    if self.integer and lower >= load:
                        lower = load - 1
                    notes.append(
                        f"{self._text(load)} was not sustained in every confirm step "
                        f"(step {confirms[-1].index}: {confirms[-1].note}); tried "
                        f"{self._text(lower)}"
                    )
                    if lower < 1 and self.integer:
                        break
                    load, confirms, margin = lower, None, precision
                    continue
            above = self._above(load, margin)
            if self.settings.maximum is not None and above > self.settings.maximum:
                notes.append(
                    f"the load above, {self._text(above)}, is past --max "
                    f"{self._text(self.settings.maximum)}: not tried"
                )
                return self._not_proven(load, confirms, [], None, notes)
            uppers = [self.measure(above, "above") for _ in range(confirm)]
            proof = judge_proof(confirms, uppers, self.slos)
            if proof.significant:
                return self._proven(load, above, proof, notes)
            if all(step.passed for step in uppers):
                self.confirmed = (above, uppers)
                notes.append(
                    f"{self._text(above)} held in all {confirm} steps as well: it is "
                    "sustained, and the proof moved up to it"
                )
                load, confirms, margin = above, uppers, precision
                continue
            notes.append(
                f"{self._text(above)} ({format_change(load, above)}) is not a sure break: "
                f"{why_not_significant(proof, confirm)}; widened the margin"
            )
            margin *= 2
        if confirms is None or not confirms or not all(s.passed for s in confirms):
            return self._not_proven(None, confirms or [], uppers, proof, notes)
        return self._not_proven(load, confirms, uppers, proof, notes)

    # ------------------------------------------------------------------ outcomes

    def _proven(self, load: float, above: float, proof: Proof, notes: list[str]) -> Outcome:
        assert proof.p_value is not None
        message = (
            f"{self._text(load)} sustained with {slo_values(proof.at_capacity)}; "
            f"{self._text(above)} ({format_change(load, above)}) breaks it "
            f"({slo_values(proof.at_breaking, only_broken=True)}; p = {proof.p_value:.3g})"
        )
        return Outcome(
            Status.PROVEN,
            message,
            capacity=load,
            breaking=above,
            p_value=proof.p_value,
            at_capacity=proof.at_capacity,
            at_breaking=proof.at_breaking,
            notes=notes,
        )

    def _not_proven(
        self,
        load: float | None,
        confirms: list[Step],
        uppers: list[Step],
        proof: Proof | None,
        notes: list[str],
    ) -> Outcome:
        if load is None:
            message = (
                "no load was sustained in every confirm step "
                f"({len(notes)} attempts; the bisection's answer was "
                f"{self._text(self.bracket.passing)})"
            )
            return Outcome(Status.NOT_PROVEN, message, capacity=None, notes=notes)
        at_capacity = self._values(confirms)
        above = uppers[0].offered if uppers else None
        message = (
            f"{self._text(load)} sustained with {slo_values(at_capacity)} in all "
            f"{len(confirms)} confirm steps, but not proven: "
            + (
                f"{self._text(above)} did not break an SLO for sure"
                if above is not None
                else "no load above it was tried"
            )
        )
        return Outcome(
            Status.NOT_PROVEN,
            message,
            capacity=load,
            breaking=above,
            p_value=proof.p_value if proof else None,
            at_capacity=at_capacity,
            at_breaking=proof.at_breaking if proof else [],
            notes=notes,
        )

    def _unconfirmed(self) -> Outcome:
        bracket = self.bracket
        assert bracket.passing_step is not None and bracket.failing_step is not None
        at_capacity = self._values([bracket.passing_step])
        at_breaking = self._values([bracket.failing_step])
        message = (
            f"{self._text(bracket.passing)} held with {slo_values(at_capacity)}; "
            f"{self._text(bracket.failing)} broke it "
            f"({slo_values(at_breaking, only_broken=True)}); not proven: one step each, "
            "not repeated (--confirm 0)"
        )
        return Outcome(
            Status.UNCONFIRMED,
            message,
            capacity=bracket.passing,
            breaking=bracket.failing,
            at_capacity=at_capacity,
            at_breaking=at_breaking,
        )

    def _above_max(self, step: Step) -> Outcome:
        at_capacity = self._values([step])
        maximum = self._text(step.offered)
        message = (
            f"never broke the SLOs up to --max {maximum} ({slo_values(at_capacity)} there): "
            f"the capacity is above {maximum}"
        )
        return Outcome(Status.ABOVE_MAX, message, capacity=step.offered, at_capacity=at_capacity)

    def _below_start(self) -> Outcome:
        step = self.bracket.failing_step
        assert step is not None
        at_breaking = self._values([step])
        message = (
            f"even {self._text(step.offered)} breaks the SLOs "
            f"({slo_values(at_breaking, only_broken=True)}): the capacity is below it"
        )
        return Outcome(
            Status.BELOW_START,
            message,
            capacity=None,
            breaking=step.offered,
            at_breaking=at_breaking,
        )

    def _sustained(self) -> tuple[float | None, list[Step]]:
        """The highest load known to be sustained, and the steps that show it."""
        if self.confirmed is not None:
            return self.confirmed
        step = self.bracket.passing_step
        return (step.offered, [step]) if step is not None else (None, [])

    def interrupted(self) -> Outcome:
        passing, _ = self._sustained()
        sustained = f"; sustained so far: {self._text(passing)}" if passing is not None else ""
        return Outcome(Status.INTERRUPTED, f"interrupted between steps{sustained}", capacity=None)

    def _generator_limited(self, step: Step) -> Outcome:
        passing, shown_by = self._sustained()
        reason = step.note
        if passing is None:
            message = (
                f"this generator cannot offer even {self._text(step.offered)} here ({reason}): "
                "add processes or hosts"
            )
            at_capacity: list[SloAt] = []
        else:
            message = (
                f"the target sustained at least {self._text(passing)}; this generator cannot "
                f"offer {self._text(step.offered)} here ({reason}): add processes or hosts"
            )
            at_capacity = self._values(shown_by)
        return Outcome(
            Status.GENERATOR_LIMITED,
            message,
            capacity=passing,
            breaking=None,
            at_capacity=at_capacity,
        )

    def _stopped(self, step: Step) -> Outcome:
        interrupted = step.result.stop_reason.startswith("interrupted")
        passing, _ = self._sustained()
        sustained = f"; sustained so far: {self._text(passing)}" if passing is not None else ""
        return Outcome(
            Status.INTERRUPTED if interrupted else Status.FAILED,
            f"step {step.index} {step.result.stop_reason}{sustained}",
            capacity=None,
        )
