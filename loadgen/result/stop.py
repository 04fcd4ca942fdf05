"""Why a run ended: a ``StopReason`` (kind, detail, and for a failure its traceback).

Kinds, in the order the CLI weighs them (README, "Exit codes"):

* ``completed``: the run lasted as planned;
* ``interrupted``: a signal ended it early (detail: the signal, e.g. ``SIGINT``);
* ``stopped``: its coordinator asked it to stop early (a shard, when another shard of the
  run failed or the run was interrupted; the detail says who asked);
* ``failed``: loadgen itself failed (a shard's loop raised, a shard process died, a host
  was lost); the detail names what failed and how, and ``traceback`` keeps the Python
  traceback where there was one (several, each under its part's name, for several parts).

A target that misbehaves never makes a run fail: its refusals, resets and garbage are
counted as errors by kind. Results before schema 4 held only a string (``stop_reason``):
``"completed"``, ``"interrupted (SIGINT)"``, ``"stopped by the coordinator"`` or
``"failed: ..."``; ``StopReason.parse`` reads those, and ``str()`` writes the same form, which
results keep beside the structured ``stop`` for readers of the old field.
"""

from __future__ import annotations

import traceback as tracebacks
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any


class StopKind(StrEnum):
    COMPLETED = "completed"
    INTERRUPTED = "interrupted"
    STOPPED = "stopped"
    FAILED = "failed"


@dataclass(frozen=True)
class StopReason:
    kind: StopKind
    detail: str = ""
    traceback: str | None = None

    @classmethod
    def completed(cls) -> StopReason:
        return cls(StopKind.COMPLETED)

    @classmethod
    def from_exception(cls, exc: BaseException, where: str = "") -> StopReason:
        """A failure: ``where`` (if given), the exception's type and message, and its
        traceback."""
        detail = f"{type(exc).__name__}: {exc}"
        return cls(
            StopKind.FAILED,
            f"{where}: {detail}" if where else detail,
            "".join(tracebacks.format_exception(exc)),
        )

    @classmethod
    def failed_parts(cls, failures: Sequence[StopReason]) -> StopReason:
        """One failure from several parts' (shards, hosts): the details joined with ``; ``,
        each traceback under its part's detail."""
        if len(failures) == 1:
            return failures[0]
        found = [
            f"{failure.detail}\n{failure.traceback}" for failure in failures if failure.traceback
        ]
        return cls(StopKind.FAILED, "; ".join(f.detail for f in failures), "\n".join(found) or None)

    @property
    def is_completed(self) -> bool:
        return self.kind is StopKind.COMPLETED

    def labelled(self, label: str) -> StopReason:
        """The same reason with ``label: `` before its detail (which part it was)."""
        return replace(self, detail=f"{label}: {self.detail}" if self.detail else label)

    def __str__(self) -> str:
        """The one-line form of results before schema 4 (``stop_reason``)."""
        if not self.detail:
            return self.kind.value
        if self.kind is StopKind.INTERRUPTED:
            return f"{self.kind.value} ({self.detail})"
        return f"{self.kind.value}: {self.detail}"

    @classmethod
    def parse(cls, text: str) -> StopReason:
        """The ``stop_reason`` string of a result before schema 4."""
        word, _, rest = text.partition(" ")
        word = word.rstrip(":")
        if text == StopKind.COMPLETED.value:
            return cls.completed()
        if word == StopKind.INTERRUPTED.value:
            return cls(StopKind.INTERRUPTED, rest.strip().removeprefix("(").removesuffix(")"))
        if word == StopKind.STOPPED.value:
            return cls(StopKind.STOPPED, rest.strip())
        if word == StopKind.FAILED.value:
            return cls(StopKind.FAILED, rest.strip())
        return cls(StopKind.FAILED, text)  # no other form was ever written

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": self.kind.value, "detail": self.detail}
        if self.traceback is not None:
            data["traceback"] = self.traceback
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StopReason:
        return cls(StopKind(data["kind"]), data.get("detail", ""), data.get("traceback"))
