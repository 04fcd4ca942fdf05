"""The load plan: every derived number of a scenario's load, from the scenario alone.

Table-driven and socket-free: each case is a ``load`` (or the shorthand) and what the plan
must say about it. The end-to-end check that a client follows the plan's per-phase think
times is in tests/load/test_think_phases.py.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import pytest

from loadgen.config.plan import LoadPlan
from loadgen.config.scenario import parse_scenario


def plan_of(body: str) -> LoadPlan:
    return LoadPlan.from_scenario(parse_scenario(f"name: p\ntarget: 127.0.0.1:9\n{body}"))


@dataclass(frozen=True)
class Case:
    body: str
    expected: dict[str, Any]


CASES = {
    "shorthand": Case(
        "connections: 100\nduration: 5s\n",
        {
            "model": "closed",
            "duration_s": 5.0,
            "peak_connections": 100,
            "connection_phases": (),
            "idle_windows": (),
            "think_times": (),
        },
    ),
    "closed ramp: a phase without connections holds load.connections": Case(
        "load:\n  connections: 10\n  phases:\n"
        "    - {duration: 5s, connections: 10 to 100}\n"
        "    - {duration: 10s}\n"
        "    - {duration: 5s, connections: 100 to 0}\n",
        {
            "duration_s": 20.0,
            "peak_connections": 100,
            "connection_phases": ((5.0, 10, 100), (10.0, 10, 10), (5.0, 100, 0)),
        },
    ),
    "the pool is the largest count, whichever phase asks for it": Case(
        "load:\n  connections: 500\n  phases:\n"
        "    - {duration: 1s, connections: 0 to 20}\n    - {duration: 1s}\n",
        {"peak_connections": 500, "connection_phases": ((1.0, 0, 20), (1.0, 500, 500))},
    ),
    "idle windows": Case(
        "load:\n  connections: 4\n  phases:\n"
        "    - {duration: 3s, idle: true}\n    - {duration: 2s}\n"
        "    - {duration: 1s, idle: true}\n",
        {"idle_windows": ((0.0, 3.0), (5.0, 6.0)), "connection_phases": ()},
    ),
    "think time per phase, load.think_time the default": Case(
        "load:\n  connections: 4\n  think_time: 10ms\n  phases:\n"
        "    - {duration: 1s}\n"
        "    - {duration: 2s, think_time: 100ms}\n"
        "    - {duration: 1s, think_time: 0s}\n",
        {"think_times": ((1.0, 0.01), (3.0, 0.1), (4.0, 0.0))},
    ),
    "think time in one phase only": Case(
        "load:\n  connections: 4\n  phases:\n"
        "    - {duration: 1s, think_time: 50ms}\n    - {duration: 1s}\n",
        {"think_times": ((1.0, 0.05), (2.0, 0.0))},
    ),
    "no think time anywhere: an empty table (the client's fast path)": Case(
        "load:\n  connections: 4\n  think_time: 0s\n  phases: [{duration: 1s}, {duration: 1s}]\n",
        {"think_times": ()},
    ),
    "open model: one pool, rates per phase": Case(
        "load:\n  model: open\n  connections: 50\n  phases:\n"
        "    - {duration: 2s, rate: 100/s to 300/s}\n"
        "    - {duration: 1s, rate: 1k/s, arrivals: poisson}\n",
        {
            "model": "open",
            "duration_s": 3.0,
            "peak_connections": 50,
            "connection_phases": (),
            "highest_rate": 1000.0,
            "first_gap_ns": 10_000_000,
        },
    ),
    "open model from a rate of zero: no first gap": Case(
        "load:\n  model: open\n  connections: 5\n  phases: [{duration: 1s, rate: 0/s to 10/s}]\n",
        {"first_gap_ns": 0},
    ),
    "open model, Poisson from the start: no first gap": Case(
        "load:\n  model: open\n  connections: 5\n"
        "  phases: [{duration: 1s, rate: 10/s, arrivals: poisson}]\n",
        {"first_gap_ns": 0},
    ),
    "closed model: no arrivals, no rate": Case(
        "connections: 3\nduration: 1s\n", {"first_gap_ns": 0, "highest_rate": 0.0}
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_plan_derives(case: Case) -> None:
    plan = plan_of(case.body)
    for name, value in case.expected.items():
        assert getattr(plan, name) == value, name


LABELS = {
    "ramp, at its start": (0.0, "phase 1/3 (1,000/s)"),
    "ramp, halfway": (5.0, "phase 1/3 (5,500/s)"),
    "second phase": (10.0, "phase 2/3 (20,000/s)"),
    "idle is open-model rate 0": (30.5, "phase 3/3 (0/s)"),
    "after the end: the last phase": (99.0, "phase 3/3 (0/s)"),
}


@pytest.mark.parametrize(("elapsed_s", "label"), LABELS.values(), ids=LABELS.keys())
def test_phase_label(elapsed_s: float, label: str) -> None:
    plan = plan_of(
        "load:\n  model: open\n  connections: 10\n  phases:\n"
        "    - {duration: 10s, rate: 1k/s to 10k/s}\n"
        "    - {duration: 20s, rate: 20k/s}\n"
        "    - {duration: 1s, rate: 0/s}\n"
    )
    assert plan.phase_label(elapsed_s) == label


def test_closed_phase_labels_name_idle_phases() -> None:
    plan = plan_of(
        "load:\n  connections: 4\n  phases: [{duration: 2s, idle: true}, {duration: 1s}]\n"
    )
    assert [plan.phase_label(t) for t in (0.0, 1.99, 2.0, 5.0)] == [
        "phase 1/2 (idle)",
        "phase 1/2 (idle)",
        "phase 2/2",
        "phase 2/2",
    ]


def test_phase_bounds_tile_the_run() -> None:
    plan = plan_of(
        "load:\n  connections: 4\n  phases:\n"
        "    - {duration: 1.5s}\n    - {duration: 250ms}\n    - {duration: 2s}\n"
    )
    assert [p.number for p in plan.phases] == [1, 2, 3]
    assert plan.phases[0].start_s == 0.0 and plan.phases[-1].end_s == plan.duration_s == 3.75
    for before, after in itertools.pairwise(plan.phases):
        assert before.end_s == after.start_s
    assert [plan.phase_at(t).number for t in (0.0, 1.49, 1.5, 1.75, 3.74, 10.0)] == [
        1,
        1,
        2,
        3,
        3,
        3,
    ]


def test_arrivals_follow_the_rates() -> None:
    plan = plan_of(
        "load:\n  model: open\n  connections: 5\n  phases:\n"
        "    - {duration: 1s, rate: 100/s}\n    - {duration: 2s, rate: 0/s to 200/s}\n"
    )
    arrivals = plan.arrivals_ns(seed=1)
    assert arrivals is not None
    offsets = list(arrivals)
    # 100 in the first second, then a ramp to 200/s over 2 s: (0 + 200) / 2 * 2 = 200 more.
    assert len(offsets) == 300
    assert sum(1 for t in offsets if t < 1e9) == 100
    assert offsets == sorted(offsets) and offsets[-1] < 3e9
    assert plan_of("connections: 2\nduration: 1s\n").arrivals_ns() is None


def test_with_duration_scales_the_plan() -> None:
    scenario = parse_scenario(
        "name: p\ntarget: 127.0.0.1:9\nload:\n  connections: 4\n  phases:\n"
        "    - {duration: 1s, think_time: 10ms}\n    - {duration: 3s, idle: true}\n"
    )
    plan = LoadPlan.from_scenario(scenario.with_duration(8))
    assert plan.duration_s == 8.0
    assert plan.think_times == ((2.0, 0.01), (8.0, 0.0))
    assert plan.idle_windows == ((2.0, 8.0),)
