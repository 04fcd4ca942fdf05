"""The receive-mode study's result: versioned, validated JSON (pydantic models).

``StudyResult.model_json_schema()`` is the file's JSON Schema; ``read_study`` refuses a
file of another kind or schema version. Bytes are bytes, latencies microseconds. A value a
machine cannot give is ``null`` and its metric carries the reason ("not measurable here:
..."), never a stand-in 0.

Layout: ``trials`` holds every (connections, mode, repeat) as measured: absolute counter
medians per phase (baseline, idle, traffic, after close) and per-connection deltas against
the baseline; ``groups`` holds, per (connections, mode), the median and spread of those
over the repeats, plus the throughput and latency under traffic.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from loadgen.result.files import write_atomically
from loadgen.result.stop import StopKind, StopReason

KIND = "loadgen.recv-modes"
SCHEMA_VERSION = 1
PHASES = ("idle", "traffic")

Values = dict[str, float | None]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MetricInfo(_Frozen):
    name: str
    label: str
    kind: Literal["kernel", "user"]
    description: str
    reason: str | None = None  # why it is not measurable here (None: measured)


class Trial(_Frozen):
    connections: int
    mode: str
    repeat: int  # 0-based
    baseline: Values  # medians of the quiet samples before the run
    idle: Values  # medians of the idle window's samples
    traffic: Values
    after: Values  # the last sample after closing
    per_connection: dict[str, Values]  # "idle", "traffic", "after": (phase - baseline) / n
    idle_samples: int
    traffic_samples: int
    all_open_s: float | None  # when every connection was open (None: never all)
    returned: bool | None  # kernel memory came back near the baseline (None: unmeasured)
    return_wait_s: float
    requests: int  # in the traffic window
    throughput_rps: float | None
    latency_p50_us: float | None
    latency_p99_us: float | None
    errors: dict[str, int]
    stop_reason: str  # the run's stop as one line (``RunResult.stop_reason``)
    #: How the run ended; studies written before it was kept have it read from stop_reason.
    stop_kind: StopKind
    notes: list[str] = []

    @model_validator(mode="before")
    @classmethod
    def _kind_from_reason(cls, data: Any) -> Any:
        if isinstance(data, dict) and "stop_kind" not in data and "stop_reason" in data:
            return {**data, "stop_kind": StopReason.parse(data["stop_reason"]).kind}
        return data


class Spread(_Frozen):
    """Median and spread of one number over the repeats (None where not measured)."""

    n: int
    median: float | None
    min: float | None
    max: float | None
    q1: float | None
    q3: float | None


class Group(_Frozen):
    connections: int
    mode: str
    repeats: int
    per_connection: dict[str, dict[str, Spread]]  # phase -> metric -> spread
    throughput_rps: Spread
    latency_p50_us: Spread
    latency_p99_us: Spread
    not_returned: int  # trials whose kernel memory did not come back near the baseline


class StudyResult(_Frozen):
    kind: Literal["loadgen.recv-modes"] = "loadgen.recv-modes"  # KIND
    schema_version: Literal[1] = 1  # SCHEMA_VERSION
    started_at: str
    finished_at: str
    environment: dict[str, Any]
    plan: dict[str, Any]
    notes: list[str]  # what the numbers include (loopback: both ends), the target's mode
    metrics: list[MetricInfo]
    trials: list[Trial]
    groups: list[Group]
    warnings: list[str] = []

    def group(self, connections: int, mode: str) -> Group:
        for group in self.groups:
            if group.connections == connections and group.mode == mode:
                return group
        raise KeyError((connections, mode))

    def metric(self, name: str) -> MetricInfo:
        return next(metric for metric in self.metrics if metric.name == name)

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)

    def write(self, path: str | Path) -> Path:
        """Write the JSON atomically (a partial file never replaces a good one)."""
        return write_atomically(path, self.to_json() + "\n")


class StudyFileError(ValueError):
    """A file that is not a study result this loadgen reads."""


def read_study(path: str | Path) -> StudyResult:
    source = Path(path)
    try:
        data = json.loads(source.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise StudyFileError(f"{source}: cannot read a study result: {exc}") from None
    if not isinstance(data, dict) or data.get("kind") != KIND:
        raise StudyFileError(f"{source}: not a receive-mode study result (kind {KIND!r})")
    if data.get("schema_version") != SCHEMA_VERSION:
        raise StudyFileError(
            f"{source}: study schema_version {data.get('schema_version')!r} is not supported "
            f"(this loadgen reads {SCHEMA_VERSION})"
        )
    try:
        return StudyResult.model_validate(data)
    except ValidationError as exc:
        raise StudyFileError(f"{source}: {exc}") from None
