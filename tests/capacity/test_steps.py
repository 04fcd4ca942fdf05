"""Steps: the scenario each one runs, its pool, its measured window, who was the
bottleneck, and the pool that grows when it (not the target) ran out."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from loadgen.capacity.model import Settings, StepVerdict, Vary
from loadgen.capacity.steps import (
    MIN_POOL,
    POOL_GROWTH,
    Stepper,
    latency_budget_s,
    pool_size,
    step_scenario,
)
from loadgen.capacity.window import Bottleneck, bottleneck, measured_window
from loadgen.config.scenario import Scenario, parse_scenario
from loadgen.config.thresholds import Threshold
from loadgen.result.model import Interval, LatencySummary, RunResult, SelfCheck
from loadgen.run.api import run
from loadgen.stats.histogram import HdrHistogram
from tests.report.builders import make_result

BASE = parse_scenario(
    "name: base\ntarget: 127.0.0.1:9\nprotocol: http\nconnections: 7\nduration: 1s\n"
    "thresholds: ['p99 < 10ms']\ntimeouts: {request: 2s}\n"
)
SLOS = [Threshold.parse("p50 < 10ms"), Threshold.parse("error_rate < 1%")]


def test_an_open_step_is_one_poisson_phase_at_the_rate() -> None:
    step = step_scenario(BASE, Vary.RATE, 1500.0, 300, 13.0, SLOS, target="10.0.0.1:80")
    load = step.load_section
    assert load.model == "open" and load.connections == 300
    (phase,) = load.phases
    assert phase.rate == (1500.0, 1500.0) and phase.arrivals == "poisson"
    assert phase.duration == 13.0
    assert step.targets == ["10.0.0.1:80"] and step.protocol_name == "http"
    assert [t.expression for t in step.thresholds] == ["p50 < 10ms", "error_rate < 1%"]
    assert step.timeouts.request == 2.0


def test_a_closed_step_keeps_the_think_time() -> None:
    base = parse_scenario(
        "name: closed\ntarget: builtin:echo\nload:\n  model: closed\n  connections: 1\n"
        "  think_time: 20ms\n  phases: [{duration: 5s, connections: 1 to 9}]\n"
    )
    step = step_scenario(base, Vary.CONNECTIONS, 12.0, 12, 4.0, SLOS)
    assert step.load_section.model == "closed" and step.load_section.connections == 12
    assert step.load_section.think_time == 0.02 and step.load_section.phases[0].connections is None


def test_a_stream_cannot_vary_its_rate() -> None:
    stream = parse_scenario(
        "name: s\ntarget: builtin:stream\nprotocol: stream\nconnections: 2\nduration: 1s\n"
    )
    with pytest.raises(ValueError, match="stream runs the closed model only"):
        step_scenario(stream, Vary.RATE, 100.0, 32, 2.0, SLOS)


def test_the_pool_follows_the_rate() -> None:
    assert latency_budget_s(SLOS, BASE) == 0.05  # 10 ms, but never below the stall floor
    assert latency_budget_s([Threshold.parse("p99 < 200ms")], BASE) == 0.2
    assert latency_budget_s([Threshold.parse("error_rate < 1%")], BASE) == 1.0  # timeout, <= 1 s
    assert pool_size(10.0, 0.05) == MIN_POOL
    assert pool_size(2000.0, 0.2) == 800  # 2,000/s x 200 ms x 2
    assert pool_size(2000.0, 0.2, POOL_GROWTH) == 3200
    assert pool_size(1e6, 1.0) == 4096  # at most


def test_bottleneck_reads_the_self_check() -> None:
    valid = SelfCheck(True, [], 40.0, 90.0)
    assert bottleneck(None) is Bottleneck.NONE and bottleneck(valid) is Bottleneck.NONE
    busy = SelfCheck(False, ["cpu"], 95.0, 90.0)
    starved = SelfCheck(False, ["runnable"], 30.0, 90.0, runnable_percent=99.0)
    late = SelfCheck(False, ["schedule"], 30.0, 90.0, waited_fraction=0.0)
    waited = SelfCheck(False, ["schedule"], 30.0, 90.0, waited_fraction=0.2)
    assert bottleneck(busy) is Bottleneck.GENERATOR
    assert bottleneck(starved) is Bottleneck.GENERATOR
    assert bottleneck(late) is Bottleneck.GENERATOR  # its loop could not send on time
    assert bottleneck(waited) is Bottleneck.POOL


def test_the_window_leaves_the_warmup_out() -> None:
    """A real run: 1 s at 100/s, then 1 s at 400/s; the window after a 1 s warm-up holds
    the second second only."""
    scenario = parse_scenario(
        "name: window\ntarget: builtin:echo\nload:\n  model: open\n  connections: 20\n"
        "  phases: [{duration: 1s, rate: 100/s}, {duration: 1s, rate: 400/s}]\n"
    )
    result = run(scenario)
    data = measured_window(result, 1.0)
    window = data.window
    after = [i for i in result.intervals if i.start_s >= 1.0]
    assert window.requests == sum(i.requests for i in after) == data.latency.total_count
    assert 300 <= window.requests <= 480  # ~400, not ~500
    assert window.duration_s == pytest.approx(sum(i.duration_s for i in after))
    assert window.achieved_rps == pytest.approx(window.requests / window.duration_s, rel=1e-3)
    assert window.raw_latency_us is not None and window.raw_latency_us.count == window.requests
    assert data.summary.requests == window.requests
    everything = measured_window(result, 0.0)
    assert everything.window.requests == result.summary.requests


# ------------------------------------------------------------- the pool that ran out


def _pool_bound(raw_ms: float, corrected_ms: float, connections: int) -> RunResult:
    """A result whose pool ran out (requests waited for a connection): its one measured
    interval (after a 1 s warm-up) holds 200 requests at the raw and corrected latencies."""
    raw, corrected = HdrHistogram(), HdrHistogram()
    raw.record_many(np.full(200, int(raw_ms * 1e6)))
    corrected.record_many(np.full(200, int(corrected_ms * 1e6)))
    result = make_result()
    interval = Interval(1, 1.0, 1.0, 200, {}, 0, 0, raw.to_dict(), corrected.to_dict())
    summary = replace(result.summary, latency_corrected_us=LatencySummary.from_histogram(corrected))
    check = SelfCheck(False, ["requests waited"], 20.0, 90.0, waited_fraction=0.3)
    return replace(
        result,
        summary=summary,
        intervals=[interval],
        self_check=check,
        scenario={"name": "x", "load": {"connections": connections}},
    )


class Scripted:
    """Runs nothing: hands out the given results in turn, and keeps the scenarios asked for."""

    def __init__(self, *results: RunResult) -> None:
        self.results = list(results)
        self.asked: list[Scenario] = []

    def __call__(self, scenario: Scenario, processes: int | None) -> RunResult:
        self.asked.append(scenario)
        return self.results.pop(0)


def _stepper(runner: Scripted, notices: list[str]) -> Stepper:
    settings = Settings(Vary.RATE, [s.expression for s in SLOS], 400.0, None, 1.0, 1.0, 0.05, 3)
    return Stepper(BASE, settings, SLOS, runner, notice=notices.append)


def test_a_pool_that_ran_out_while_the_target_held_the_slo_grows() -> None:
    """Corrected p50 40 ms (the waits), raw 3 ms (the target): the pool's fault. The step
    runs again with four times the pool, and so does every later step."""
    valid = replace(_pool_bound(3.0, 4.0, 0), self_check=SelfCheck(True, [], 20.0, 90.0))
    runner = Scripted(_pool_bound(3.0, 40.0, 40), valid, valid)
    notices: list[str] = []
    stepper = _stepper(runner, notices)
    step = stepper.measure(400.0, "grow")
    first, second = (s.load_section.connections for s in runner.asked)
    assert first == 40 and second == 160  # 400/s x 50 ms x 2, then x 4
    assert step.verdict is StepVerdict.PASS and step.connections == 160
    assert len(stepper.steps) == 1  # the run the pool limited is not a step
    assert "every one of its 40 connections was busy while the target answered within" in notices[0]
    stepper.measure(800.0, "grow")
    assert runner.asked[-1].load_section.connections == 320


def test_a_pool_the_target_held_is_the_targets_verdict() -> None:
    """Raw p50 30 ms too: the target held the connections; the step fails, once."""
    runner = Scripted(_pool_bound(30.0, 60.0, 40))
    notices: list[str] = []
    step = _stepper(runner, notices).measure(400.0, "grow")
    assert len(runner.asked) == 1 and notices == []
    assert step.verdict is StepVerdict.FAIL
    assert step.note.startswith("all 40 connections of the pool were busy: the target held them")
    assert "broke p50 < 10ms (observed 60 ms)" in step.note


def test_a_step_that_left_a_queue_is_drained_and_ctrl_c_there_stops() -> None:
    """After a step whose last second's median was far above the first passing step's, a
    probe at that step's load runs; a probe Ctrl-C interrupted ends the search."""
    valid = SelfCheck(True, [], 20.0, 90.0)
    reference = replace(_pool_bound(3.0, 4.0, 40), self_check=valid)
    queued = replace(_pool_bound(30.0, 60.0, 40), self_check=valid)
    drained_probe = replace(_pool_bound(3.0, 4.5, 40), self_check=valid)
    runner = Scripted(reference, queued, drained_probe, queued, make_result(partial=True))
    stepper = _stepper(runner, [])
    first = stepper.measure(400.0, "grow")
    assert first.passed and first.drain is None  # the reference: nothing to drain
    second = stepper.measure(800.0, "grow")
    assert second.verdict is StepVerdict.FAIL and second.drain is not None
    assert second.drain.probes == 1 and second.drain.drained
    assert second.drain.bound_us == pytest.approx(6000.0)  # max(1.5 x 4 ms, 4 ms + 1 ms)
    probe = runner.asked[2]
    assert probe.load_section.phases[0].rate == (400.0, 400.0)  # the first passing step's load
    with pytest.raises(KeyboardInterrupt):
        stepper.measure(800.0, "bisect")
