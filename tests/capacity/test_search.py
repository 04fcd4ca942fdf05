"""The search strategy on a target model whose latency at each load is known (grow, shrink,
bisect, prove, widen, move up, step down, stop): every branch, in milliseconds.

The steps here come from a model, not from runs: the strategy is pure logic over a
``measure(load, phase)`` callable (``capacity.search``). The real runs, against a built-in
target of known capacity, are in ``test_capacity_e2e.py``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import pytest

from loadgen.capacity.model import Settings, Status, Step, StepVerdict, Vary, Window
from loadgen.capacity.proof import judge_proof
from loadgen.capacity.search import MAX_PROOF_ROUNDS, SATURATED_RETRIES, search
from loadgen.config.thresholds import Threshold, ThresholdVerdict
from loadgen.result.model import LatencySummary
from tests.report.builders import make_result

P99 = Threshold.parse("p99 < 10ms")
SLOS = [P99]


def settings(**changes: object) -> Settings:
    values: dict[str, object] = {
        "vary": Vary.RATE,
        "slos": [P99.expression],
        "start": 100.0,
        "maximum": None,
        "step_duration_s": 10.0,
        "warmup_s": 3.0,
        "precision": 0.05,
        "confirm": 3,
    }
    values.update(changes)
    return Settings(**values)  # type: ignore[arg-type]


class Model:
    """A target whose p99 at load x is ``p99_ms(x)`` times a seeded noise factor; records
    every step it was asked for. ``saturates_at``: the generator's limit (steps at or above
    it are SATURATED); ``interrupt_at``: Ctrl-C during the step at that index."""

    def __init__(
        self,
        p99_ms: Callable[[float], float],
        *,
        noise: float = 0.0,
        saturates_at: float | None = None,
        interrupt_at: int | None = None,
        keyboard_at: int | None = None,
        seed: int = 7,
    ) -> None:
        self.p99_ms = p99_ms
        self.noise = noise
        self.saturates_at = saturates_at
        self.interrupt_at = interrupt_at
        self.keyboard_at = keyboard_at
        self.rng = random.Random(seed)
        self.steps: list[Step] = []

    def __call__(self, load: float, phase: str) -> Step:
        index = len(self.steps) + 1
        if index == self.keyboard_at:
            raise KeyboardInterrupt
        p99_s = self.p99_ms(load) * math.exp(self.rng.gauss(0, self.noise)) / 1000
        verdict = ThresholdVerdict(P99.expression, P99.metric, p99_s, p99_s < P99.limit)
        result = make_result(
            partial=index == self.interrupt_at,
        )
        if index == self.interrupt_at:
            step_verdict, note = StepVerdict.STOPPED, result.stop_reason
        elif self.saturates_at is not None and load >= self.saturates_at:
            step_verdict, note = StepVerdict.SATURATED, "generator CPU 95% (bound 90%)"
        elif verdict.passed:
            step_verdict, note = StepVerdict.PASS, ""
        else:
            step_verdict, note = StepVerdict.FAIL, f"broke {P99.expression}"
        latency = LatencySummary(100, 1.0, 1.0, 1.0, 1.0, p99_s * 1e6, p99_s * 1e6, p99_s * 1e6)
        step = Step(
            index=index,
            phase=phase,
            offered=load,
            connections=32,
            window=Window(3.0, 10.0, 100, {}, load, latency),
            verdicts=[verdict],
            verdict=step_verdict,
            note=note,
            result=result,
        )
        self.steps.append(step)
        return step

    def phases(self) -> list[str]:
        return [step.phase for step in self.steps]


def knee(capacity: float) -> Callable[[float], float]:
    """p99 = 2 ms / (1 - load / capacity): 10 ms at 0.8 x capacity, unbounded at capacity."""
    return lambda load: 2.0 / (1 - load / capacity) if load < capacity else 1e6


def test_grows_bisects_and_proves_a_sharp_knee() -> None:
    model = Model(knee(1000.0), noise=0.01)  # p99 = 10 ms at 800/s, 1% noise: no ties
    outcome = search(model, settings(), SLOS)
    assert outcome.status is Status.PROVEN, outcome.message
    assert outcome.capacity is not None and outcome.breaking is not None
    assert 800 / 1.05 <= outcome.capacity <= 800
    assert outcome.breaking == pytest.approx(outcome.capacity * 1.05, rel=0.01)
    assert outcome.p_value == pytest.approx(0.05)  # 3 against 3, completely separated
    phases = model.phases()
    assert phases[:4] == ["grow"] * 4  # 100, 200, 400, 800 pass; 1,600 breaks
    assert phases[4] == "grow" and not model.steps[4].passed
    assert phases[-6:] == ["confirm"] * 3 + ["above"] * 3
    assert "bisect" in phases
    # the answer quotes the SLO's values where it holds and where it breaks
    assert "sustained with p99 = " in outcome.message and "(SLO p99 < 10ms)" in outcome.message
    assert f"{outcome.breaking:,.0f} req/s (+" in outcome.message and "p = 0.05" in outcome.message
    # rates are rounded to three significant digits
    assert all(step.offered == float(f"{step.offered:.3g}") for step in model.steps)


def test_above_max_is_reported_as_such() -> None:
    model = Model(knee(1e9))
    outcome = search(model, settings(maximum=500.0), SLOS)
    assert outcome.status is Status.ABOVE_MAX
    assert [step.offered for step in model.steps] == [100, 200, 400, 500]
    assert outcome.capacity == 500
    assert "never broke the SLOs up to --max 500 req/s" in outcome.message


def test_a_start_that_breaks_shrinks_then_bisects() -> None:
    model = Model(knee(100.0))  # 10 ms at 80/s: the start (100/s) breaks
    outcome = search(model, settings(start=100.0, confirm=0), SLOS)
    assert outcome.status is Status.UNCONFIRMED
    assert model.phases()[:2] == ["grow", "shrink"]
    assert outcome.capacity is not None and 80 / 1.05 <= outcome.capacity <= 80
    assert "not repeated (--confirm 0)" in outcome.message


def test_below_start_after_every_shrink_fails() -> None:
    model = Model(lambda load: 50.0)
    outcome = search(model, settings(start=640.0), SLOS)
    assert outcome.status is Status.BELOW_START
    assert [step.offered for step in model.steps] == [640, 320, 160, 80, 40, 20, 10]
    assert outcome.capacity is None and outcome.breaking == 10
    assert "even 10 req/s breaks the SLOs" in outcome.message


def test_a_saturated_generator_stops_the_search_after_its_retries() -> None:
    model = Model(knee(1e9), saturates_at=1600.0)
    outcome = search(model, settings(), SLOS)
    assert outcome.status is Status.GENERATOR_LIMITED
    assert SATURATED_RETRIES == 2
    assert [s.offered for s in model.steps] == [100, 200, 400, 800, 1600, 1600, 1600]
    assert outcome.capacity == 800  # what the target sustained: never the generator's limit
    assert outcome.message.startswith("the target sustained at least 800 req/s; this generator")
    assert "add processes or hosts" in outcome.message


def test_a_saturated_step_that_passes_on_retry_goes_on() -> None:
    model = Model(knee(1000.0))
    calls = {"n": 0}

    def flaky(load: float, phase: str) -> Step:
        calls["n"] += 1
        step = model(load, phase)
        if calls["n"] == 2:  # one moment of starvation
            return Step(**{**step.__dict__, "verdict": StepVerdict.SATURATED, "note": "starved"})
        return step

    outcome = search(flaky, settings(confirm=0), SLOS)
    assert outcome.status is Status.UNCONFIRMED
    assert [s.offered for s in model.steps][:3] == [100, 200, 200]


def test_an_interrupted_step_ends_the_search() -> None:
    model = Model(knee(1000.0), interrupt_at=3)
    outcome = search(model, settings(), SLOS)
    assert outcome.status is Status.INTERRUPTED
    assert len(model.steps) == 3
    assert "sustained so far: 200 req/s" in outcome.message


def test_ctrl_c_between_steps_ends_the_search() -> None:
    model = Model(knee(1000.0), keyboard_at=4)
    outcome = search(model, settings(), SLOS)
    assert outcome.status is Status.INTERRUPTED
    assert outcome.message == "interrupted between steps; sustained so far: 400 req/s"


def test_a_confirm_step_that_breaks_moves_the_proof_down() -> None:
    # Noise-free knee, but the first confirm at the bisection's answer breaks once.
    model = Model(knee(1000.0))
    broken = {"done": False}

    def once(load: float, phase: str) -> Step:
        step = model(load, phase)
        if phase == "confirm" and not broken["done"]:
            broken["done"] = True
            return Step(**{**step.__dict__, "verdict": StepVerdict.FAIL, "note": "broke it"})
        return step

    outcome = search(once, settings(), SLOS)
    assert outcome.status is Status.PROVEN
    confirms = [s for s in model.steps if s.phase == "confirm"]
    first, lower = confirms[0].offered, confirms[1].offered
    assert lower == pytest.approx(first / 1.05, rel=0.01)  # one precision down
    assert all(s.offered == lower for s in confirms[1:4])
    assert f"{first:,.0f} req/s was not sustained in every confirm step" in outcome.notes[0]


def test_a_load_above_that_holds_becomes_the_answer() -> None:
    # A cliff at 1,000/s (5 ms below, 50 ms from it), and one spurious failure at 951/s
    # during the bisection: the bracket closes too low, so the first load above the answer
    # holds in all its steps and the proof moves up to it.
    model = Model(lambda load: 5.0 if load < 1000 else 50.0)
    spurious = {951.0}

    def glitch(load: float, phase: str) -> Step:
        step = model(load, phase)
        if load in spurious:
            spurious.discard(load)
            return Step(**{**step.__dict__, "verdict": StepVerdict.FAIL, "note": "a glitch"})
        return step

    outcome = search(glitch, settings(), SLOS)
    assert outcome.status is Status.PROVEN, outcome.message
    first_above = next(s.offered for s in model.steps if s.phase == "above")
    assert outcome.capacity == first_above and outcome.breaking is not None
    assert first_above < 1000 <= outcome.breaking
    assert outcome.notes == [
        f"{first_above:,.0f} req/s held in all 3 steps as well: it is sustained, and the "
        "proof moved up to it"
    ]
    assert [s.phase for s in model.steps if s.offered == first_above] == ["above"] * 3


def test_not_sure_widens_the_margin_then_gives_up() -> None:
    # Above the answer the SLO breaks in two of three steps only, at every load: never a
    # complete separation, so never significant; the margin widens until the rounds end.
    flips = iter([True, False, False] * 100)
    model = Model(knee(1000.0))

    def mixed(load: float, phase: str) -> Step:
        step = model(load, phase)
        if phase == "above" and next(flips):  # held, as fast as at the answer
            held = ThresholdVerdict(P99.expression, P99.metric, 0.001, True)
            return Step(**{**step.__dict__, "verdicts": [held], "verdict": StepVerdict.PASS})
        return step

    outcome = search(mixed, settings(), SLOS)
    assert outcome.status is Status.NOT_PROVEN
    assert sum("widened the margin" in note for note in outcome.notes) == MAX_PROOF_ROUNDS
    aboves = sorted({s.offered for s in model.steps if s.phase == "above"})
    capacity = outcome.capacity or 0
    assert len(aboves) == MAX_PROOF_ROUNDS
    # each round doubles the margin: +5%, +10%, +20%, +40%, ...
    margins = [0.05 * 2**round_ for round_ in range(MAX_PROOF_ROUNDS)]
    for above, margin in zip(aboves, margins, strict=True):
        assert above == pytest.approx(capacity * (1 + margin), rel=0.01)


def test_connections_are_whole_numbers() -> None:
    model = Model(lambda n: 2.0 if n <= 37 else 20.0)
    outcome = search(model, settings(vary=Vary.CONNECTIONS, start=1.0), SLOS)
    assert outcome.status is Status.PROVEN, outcome.message
    assert all(step.offered == int(step.offered) for step in model.steps)
    assert outcome.capacity == 37 and outcome.breaking == 39  # 37 x 1.05 -> 39
    assert "37 connections sustained" in outcome.message


def test_fewer_than_three_confirm_steps_can_never_prove() -> None:
    model = Model(knee(1000.0))
    outcome = search(model, settings(confirm=2), SLOS)
    assert outcome.status is Status.NOT_PROVEN
    assert any("2 step(s) a side can never be significant" in n for n in outcome.notes)


def test_proof_direction_follows_the_operator() -> None:
    """A floor (throughput > X) breaks when the value drops: tested toward "lower"."""
    floor = Threshold.parse("throughput > 1k/s")

    def step(value: float) -> Step:
        verdict = ThresholdVerdict(floor.expression, floor.metric, value, value > floor.limit)
        latency = LatencySummary(1, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0)
        return Step(
            1, "confirm", 1.0, 1, Window(0, 1, 1, {}, value, latency), [verdict],
            StepVerdict.PASS if verdict.passed else StepVerdict.FAIL, "", make_result(),
        )  # fmt: skip

    proof = judge_proof(
        [step(1500), step(1400), step(1300)], [step(700), step(800), step(900)], [floor]
    )
    assert proof.significant and proof.p_value == pytest.approx(0.05)
    assert [slo.passed for slo in proof.at_breaking] == [False]
    reversed_proof = judge_proof(
        [step(1500), step(1400), step(1300)], [step(1600), step(1700), step(900)], [floor]
    )
    assert not reversed_proof.significant and reversed_proof.broke == []
