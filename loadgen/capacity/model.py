"""A capacity search's result: every step (with its full ``RunResult``) and the answer, as
versioned JSON (``kind: loadgen.capacity``).

A step is one run at one offered load: a rate (req/s, open model) or a connection count
(closed model, ``--vary connections``). Its ``window`` holds what its measured window saw
(after the warm-up), its ``verdicts`` the SLOs judged on that window, and ``result`` the
run's whole result, so ``loadgen report FILE --step N`` draws any step as the run report
does. Latencies are microseconds: the corrected ones in the open model (from each request's
intended send time), the only ones in the closed model.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from loadgen.config.thresholds import ThresholdVerdict
from loadgen.result.files import write_atomically
from loadgen.result.model import LatencySummary, RunResult

KIND = "loadgen.capacity"
SCHEMA_VERSION = 1


class Vary(StrEnum):
    RATE = "rate"  # open model: requests per second, Poisson arrivals
    CONNECTIONS = "connections"  # closed model: connections, each with the think time


class StepVerdict(StrEnum):
    PASS = "pass"  # every SLO held in the measured window
    FAIL = "fail"  # an SLO broke (or the target held every connection of the pool)
    SATURATED = "saturated"  # the generator was the bottleneck: no measure of the target
    STOPPED = "stopped"  # interrupted or failed before the run completed


class Status(StrEnum):
    PROVEN = "proven"  # confirmed at the capacity, and the load above broke an SLO
    NOT_PROVEN = "not proven"  # confirmed, but no load above broke an SLO significantly
    UNCONFIRMED = "unconfirmed"  # --confirm 0: the bisection's answer, not repeated
    ABOVE_MAX = "above max"  # no step up to --max broke an SLO
    BELOW_START = "below start"  # even the lowest load tried broke an SLO
    GENERATOR_LIMITED = "generator limited"  # the generator could not offer more
    INTERRUPTED = "interrupted"
    FAILED = "failed"


@dataclass(frozen=True)
class Window:
    """What a step's measured window (after its warm-up) saw."""

    start_s: float  # the warm-up's end, from the run's start
    duration_s: float
    requests: int
    errors: dict[str, int]
    achieved_rps: float  # responses per second of the window
    latency_us: LatencySummary  # corrected in the open model, the only one in the closed
    raw_latency_us: LatencySummary | None = None  # open model: from the actual send

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


@dataclass(frozen=True)
class Drain:
    """The wait after a step until the target's latency at a low probe load was back near
    the first step's (``probes`` 0: the step ended without a queue, nothing to wait for)."""

    probes: int
    seconds: float
    latency_p50_us: float | None  # the last probe's
    bound_us: float  # drained at or below this
    drained: bool


@dataclass(frozen=True)
class Step:
    index: int  # 1-based, in the order run
    phase: str  # grow, shrink, bisect, confirm, above (the load above the capacity)
    offered: float  # req/s (rate) or connections
    connections: int  # the pool (open model) or the connection count (closed)
    window: Window
    verdicts: list[ThresholdVerdict]  # the SLOs, judged on the window
    verdict: StepVerdict
    note: str  # why it failed, or why it does not count
    result: RunResult
    drain: Drain | None = None

    @property
    def passed(self) -> bool:
        return self.verdict is StepVerdict.PASS


@dataclass(frozen=True)
class SloAt:
    """One SLO at one load: its value in each step there, their median, and the verdict."""

    expression: str
    metric: str
    values: list[float | None]  # seconds for latencies, a fraction for error_rate
    median: float | None
    passed: bool  # the median holds the SLO
    #: At the breaking load: one-sided Mann-Whitney U p-value of "worse than at the
    #: capacity", the steps as the unit (None where not tested).
    p_value: float | None = None


@dataclass(frozen=True)
class Outcome:
    status: Status
    message: str  # the answer in one sentence
    capacity: float | None  # the highest load sustained (its confirm steps all passed)
    breaking: float | None = None  # the load shown to break an SLO
    p_value: float | None = None  # the proof's: the smallest over the SLOs it broke
    at_capacity: list[SloAt] = field(default_factory=list)
    at_breaking: list[SloAt] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Settings:
    vary: Vary
    slos: list[str]
    start: float
    maximum: float | None
    step_duration_s: float  # the measured window
    warmup_s: float
    precision: float  # a fraction: 0.05 is 5%
    confirm: int
    processes: int | None = None
    cluster: str | None = None
    hosts: int | None = None
    backend: str = "auto"
    expect_at_least: float | None = None

    @property
    def unit(self) -> str:
        return "req/s" if self.vary is Vary.RATE else "connections"


@dataclass(frozen=True)
class CapacityResult:
    scenario: dict[str, Any]  # the user's scenario, as resolved
    settings: Settings
    started_at: str  # ISO 8601, UTC
    finished_at: str
    loadgen_version: str
    steps: list[Step]
    outcome: Outcome
    kind: str = KIND
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        return {"kind": data.pop("kind"), "schema_version": data.pop("schema_version"), **data}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def write(self, path: str | Path) -> Path:
        """Write the JSON atomically (a partial file never replaces a good one)."""
        return write_atomically(path, self.to_json() + "\n")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CapacityResult:
        if data.get("kind") != KIND:
            raise ValueError(f"not a capacity result (kind {data.get('kind')!r}, not {KIND!r})")
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ValueError(
                f"capacity schema_version {version!r} is not supported (this loadgen reads "
                f"{SCHEMA_VERSION})"
            )
        settings = dict(data["settings"])
        settings["vary"] = Vary(settings["vary"])
        outcome = dict(data["outcome"])
        outcome["status"] = Status(outcome["status"])
        for key in ("at_capacity", "at_breaking"):
            outcome[key] = [SloAt(**item) for item in outcome.get(key, [])]
        return cls(
            scenario=data["scenario"],
            settings=Settings(**settings),
            started_at=data["started_at"],
            finished_at=data["finished_at"],
            loadgen_version=data["loadgen_version"],
            steps=[_step_from_dict(item) for item in data["steps"]],
            outcome=Outcome(**outcome),
        )

    @classmethod
    def read(cls, path: str | Path) -> CapacityResult:
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


def _step_from_dict(data: dict[str, Any]) -> Step:
    window = dict(data["window"])
    window["latency_us"] = LatencySummary(**window["latency_us"])
    if window.get("raw_latency_us") is not None:
        window["raw_latency_us"] = LatencySummary(**window["raw_latency_us"])
    return Step(
        index=data["index"],
        phase=data["phase"],
        offered=data["offered"],
        connections=data["connections"],
        window=Window(**window),
        verdicts=[ThresholdVerdict(**item) for item in data["verdicts"]],
        verdict=StepVerdict(data["verdict"]),
        note=data["note"],
        result=RunResult.from_dict(data["result"]),
        drain=Drain(**data["drain"]) if data.get("drain") else None,
    )


def slo_at(steps: list[Step], slo_index: int, p_value: float | None = None) -> SloAt:
    """SLO ``slo_index`` over ``steps`` at one load: values, median, and whether the median
    holds (the steps' own verdicts decide; the median of pass/fail is a majority)."""
    verdicts = [step.verdicts[slo_index] for step in steps]
    values = [verdict.value for verdict in verdicts]
    known = [value for value in values if value is not None]
    passes = sum(verdict.passed for verdict in verdicts)
    return SloAt(
        expression=verdicts[0].expression,
        metric=verdicts[0].metric,
        values=values,
        median=statistics.median(known) if known else None,
        passed=passes * 2 > len(verdicts),
        p_value=p_value,
    )
