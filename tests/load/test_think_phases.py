"""Per-phase think time, end to end: a real run against the built-in echo target (the
session's shared one).

A connection that thinks ``T`` between a response and its next request sends at most
``1 / T`` requests a second (a round trip on loopback adds well under a millisecond), so a
phase's request rate is bounded above by ``connections / T`` and, on a machine that keeps
up, close to it. The bounds below are generous for a busy 2-core machine; what they must
catch is a run that applies one phase's think time to the other (a factor of 10 apart).
"""

from __future__ import annotations

from loadgen.config.plan import LoadPlan
from loadgen.config.scenario import parse_scenario
from loadgen.result.model import RunResult
from loadgen.run.api import run

CONNECTIONS = 4
FAST_THINK_S = 0.01
SLOW_THINK_S = 0.1
PHASE_S = 2.0


def _rate_in(result: RunResult, start_s: float, end_s: float) -> float:
    """Requests per second over the intervals lying wholly inside [start_s, end_s]."""
    inside = [
        i
        for i in result.intervals
        if i.start_s >= start_s - 1e-6 and i.start_s + i.duration_s <= end_s + 1e-6
    ]
    seconds = sum(i.duration_s for i in inside)
    assert seconds >= 0.9 * (end_s - start_s), [(i.start_s, i.duration_s) for i in inside]
    return sum(i.requests for i in inside) / seconds


def test_each_phase_thinks_its_own_think_time(echo_target: str) -> None:
    scenario = parse_scenario(
        f"name: think-phases\ntarget: {echo_target}\nload:\n"
        f"  connections: {CONNECTIONS}\n"
        f"  think_time: {SLOW_THINK_S}s\n"  # the default, overridden by the first phase
        "  phases:\n"
        f"    - {{duration: {PHASE_S}s, think_time: {FAST_THINK_S}s}}\n"
        f"    - {{duration: {PHASE_S}s}}\n"
    )
    plan = LoadPlan.from_scenario(scenario)
    assert plan.think_times == ((PHASE_S, FAST_THINK_S), (2 * PHASE_S, SLOW_THINK_S))
    result = run(scenario, processes=1)
    assert result.stop.is_completed and result.summary.errors == {}

    fast = _rate_in(result, 0.0, PHASE_S)
    slow = _rate_in(result, PHASE_S, 2 * PHASE_S)
    fast_ceiling = CONNECTIONS / FAST_THINK_S  # 400/s
    slow_ceiling = CONNECTIONS / SLOW_THINK_S  # 40/s
    assert 0.4 * fast_ceiling <= fast <= 1.1 * fast_ceiling, (fast, slow)
    assert 0.5 * slow_ceiling <= slow <= 1.1 * slow_ceiling, (fast, slow)
    assert fast >= 4 * slow, (fast, slow)
