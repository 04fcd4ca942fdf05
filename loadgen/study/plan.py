"""What a receive-mode study will run: the grid (connections x modes x repeats) and, for
each cell, the scenario of one trial. No network here.

One trial is one ordinary run (``runner.run``) of the closed model in two phases:

1. **idle** (``idle: true``): the connections open and each keeps its receive posted, but
   no request is sent. The phase lasts an allowance for opening them (1 s plus 1 s per
   5,000), then ``settle``, then ``window`` (the samples that count).
2. **traffic**: every connection sends, waits for its whole reply and sends again (the
   closed loop at full speed: the throughput and latency a mode costs), ``settle`` then
   ``window``.

The run samples memory once a second (``pool.MEMORY_SAMPLE_NS``); ``measure`` picks the
samples inside each window. Everything but the connections, the receive mode, the buffer
size and the phases comes from the scenario (target, protocol, message size, timeouts,
source addresses); the default is the built-in echo target.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from loadgen.config.receive import ReceiveMode
from loadgen.config.scenario import Scenario, ScenarioError, parse_scenario
from loadgen.config.units import parse_count

DEFAULT_SCENARIO = """
name: recv-modes
target: builtin:echo
connections: 1
duration: 1s
"""
#: Connections opened per second that the idle phase allows for (10,000 open in ~1.5 s
#: here, with up to 1,024 connects in flight; the allowance is generous for a busy host).
OPENS_PER_S = 5000


class StudyError(ValueError):
    """A study that cannot run as asked; ``str()`` says what to change."""


def accepted_modes() -> tuple[str, ...]:
    """The receive modes a scenario accepts, in order."""
    return tuple(mode.value for mode in ReceiveMode)


def parse_connection_counts(text: str) -> tuple[int, ...]:
    """``1000,5k,10000`` → (1000, 5000, 10000), ascending, each at least 1."""
    counts: list[int] = []
    for part in text.split(","):
        if not part.strip():
            continue
        try:
            count = parse_count(part)
        except ValueError as exc:
            raise StudyError(f"--connections: {exc}") from None
        if count < 1:
            raise StudyError(f"--connections: {part.strip()!r}: need at least 1 connection")
        counts.append(count)
    if not counts:
        raise StudyError("--connections: give one or more counts, e.g. 1000,5000,10000")
    return tuple(sorted(set(counts)))


def parse_modes(text: str | None) -> tuple[str, ...]:
    """``buffered,zero-byte`` → the modes, checked against what a scenario accepts."""
    accepted = accepted_modes()
    if text is None:
        return accepted
    modes = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    unknown = [mode for mode in modes if mode not in accepted]
    if unknown:
        raise StudyError(
            f"--modes: {', '.join(unknown)} is not a receive mode this loadgen knows "
            f"(it knows {', '.join(accepted)})"
        )
    if not modes:
        raise StudyError(f"--modes: give one or more of {', '.join(accepted)}")
    return modes


def default_scenario(overrides: Sequence[str] = ()) -> Scenario:
    """The built-in echo target (``--set`` overrides apply to it as to a file)."""
    return parse_scenario(DEFAULT_SCENARIO, "<recv-modes default>", overrides)


@dataclass(frozen=True)
class StudyPlan:
    base: Scenario  # target, protocol, message size, timeouts and sources come from here
    source: str  # where ``base`` came from: a file, or the default
    connections: tuple[int, ...]
    modes: tuple[str, ...]
    repeat: int
    buffer_bytes: int
    settle_s: float = 2.0
    window_s: float = 3.0
    backend: str = "auto"
    overrides: tuple[str, ...] = ()  # the --set settings already applied to ``base``
    #: Client processes (None: as ``loadgen run`` chooses, raised to fit the descriptor
    #: limit) and a built-in target's processes (None: likewise).
    processes: int | None = None
    target_processes: int | None = None

    def __post_init__(self) -> None:
        if self.repeat < 1:
            raise StudyError(f"--repeat: need at least 1, got {self.repeat}")
        if self.settle_s < 0 or self.window_s <= 0:
            raise StudyError("--settle must be 0 or more and --window more than 0 seconds")
        if self.base.protocol_name == "stream":
            raise StudyError(
                f"{self.source}: protocol stream cannot be studied: a stream connection is "
                "replaced after each transfer, so connections never sit idle; use echo, "
                "http or redis"
            )

    def open_allowance_s(self, connections: int) -> float:
        return 1.0 + connections / OPENS_PER_S

    def idle_s(self, connections: int) -> float:
        """The idle phase, whole seconds (the run's intervals are 1 s long)."""
        return float(math.ceil(self.open_allowance_s(connections) + self.settle_s + self.window_s))

    def traffic_s(self) -> float:
        return float(math.ceil(self.settle_s + self.window_s))

    def trials(self) -> list[tuple[int, str, int]]:
        """(connections, mode, repeat index) in run order: repeats outermost, so a slow
        drift of the machine spreads over every cell instead of biasing one."""
        return [
            (count, mode, index)
            for index in range(self.repeat)
            for count in self.connections
            for mode in self.modes
        ]

    def trial_scenario(self, connections: int, mode: str) -> Scenario:
        """The base scenario with the study's connections, mode, buffer and phases."""
        data: dict[str, Any] = self.base.to_dict()
        data.update(
            name=f"{self.base.name}-{mode}-{connections}"[:100],
            connections=None,
            duration=None,
            thresholds=[],
            receive=mode,
            receive_buffer=self.buffer_bytes,
            load={
                "model": "closed",
                "connections": connections,
                "phases": [
                    {"duration": self.idle_s(connections), "idle": True},
                    {"duration": self.traffic_s()},
                ],
            },
        )
        try:
            return Scenario.model_validate(data)
        except ValidationError as exc:
            problems = [
                f"{self.source}: {'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                for e in exc.errors()
            ]
            raise ScenarioError(problems) from None

    def describe(self) -> dict[str, Any]:
        """The plan as JSON-ready data (for the result)."""
        return {
            "scenario": self.source,
            "target": self.base.targets,
            "protocol": self.base.protocol_name,
            "message_size": self.base.to_dict()["message_size"],
            "connections": list(self.connections),
            "modes": list(self.modes),
            "repeat": self.repeat,
            "buffer_bytes": self.buffer_bytes,
            "settle_s": self.settle_s,
            "window_s": self.window_s,
            "backend": self.backend,
            "overrides": list(self.overrides),
            "processes": self.processes,
            "target_processes": self.target_processes,
            "phases": {
                str(count): {"idle_s": self.idle_s(count), "traffic_s": self.traffic_s()}
                for count in self.connections
            },
        }
