"""Reading result files for reports and comparisons, with errors that name the file.

A report reads both the typed ``RunResult`` and the raw JSON: keys that later issues add
(``thresholds``, ``memory``, a ``latency_corrected`` histogram, per-interval ``connections``)
are drawn when present, so an older reader never has to drop them to parse the rest.

A capacity search's result (``kind: loadgen.capacity``) embeds every step's whole result
under ``steps[i].result``: ``load_runs(paths, steps=[3])`` reads step 3 of it as a run (the
steps are numbered from 1, as the search prints them).
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from loadgen.config.document import shown_value
from loadgen.report.shape import shape_problem
from loadgen.result.model import SCHEMA_VERSION, RunResult
from loadgen.result.stop import StopReason
from loadgen.stats.histogram import HdrHistogram

#: Keys every loadgen result has had since schema 1; a JSON object without them is not one.
_REQUIRED_KEYS = ("schema_version", "scenario", "environment", "summary", "histograms")
#: A capacity search's result: steps, each with a run's whole result (``loadgen.capacity``).
CAPACITY_KIND = "loadgen.capacity"


class ResultFileError(ValueError):
    """A file that cannot be used as a loadgen result; ``str()`` names the file and why."""

    def __init__(self, path: str | Path, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = str(path)
        self.problem = problem


@dataclass(frozen=True)
class LoadedRun:
    """One run as a report sees it: a label, where it came from, typed and raw."""

    label: str
    source: str
    result: RunResult
    raw: dict[str, Any]


def from_result(result: RunResult, label: str | None = None, source: str = "") -> LoadedRun:
    """Wrap a result that is already in memory (``loadgen run --html``)."""
    return LoadedRun(
        label=label or result.label or str(result.scenario.get("name", "run")),
        source=source,
        result=result,
        raw=result.to_dict(),
    )


def read_json(path: str | Path) -> dict[str, Any]:
    """A result file's JSON object; ``ResultFileError`` when it is not one."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ResultFileError(file, "not a loadgen result (not UTF-8 text)") from None
    except OSError as exc:
        raise ResultFileError(file, f"cannot read: {exc.strerror or exc}") from None
    return _decode(text, file)


def is_capacity(data: dict[str, Any]) -> bool:
    return data.get("kind") == CAPACITY_KIND


def load_run(path: str | Path, label: str | None = None, step: int | None = None) -> LoadedRun:
    """Read one result file (with ``step``: that step of a capacity result);
    ``ResultFileError`` for anything that is not a usable result. Its label: ``label``, else
    the result's own (``run --label``), else the file's name (and the step's number)."""
    file = Path(path)
    data = read_json(file)
    if is_capacity(data):
        steps = data.get("steps")
        count = len(steps) if isinstance(steps, list) else 0
        if step is None:
            raise ResultFileError(
                file,
                f"a capacity search of {count} steps, not one run: pick steps with --step N "
                f"(1-{count}), or draw the whole search with `loadgen report {file}` alone",
            )
        if not isinstance(steps, list) or not 1 <= step <= count:
            raise ResultFileError(file, f"no step {step}: the search has steps 1-{count}")
        item = steps[step - 1]
        if not isinstance(item, dict) or not isinstance(item.get("result"), dict):
            raise ResultFileError(file, f"malformed capacity result: step {step} has no result")
        result, raw = _check(item["result"], f"{file} step {step}")
        return LoadedRun(
            label=label or f"{file.stem} step {step}",
            source=f"{file} (step {step})",
            result=result,
            raw=raw,
        )
    result, raw = _check(data, file)
    return LoadedRun(
        label=label or result.label or file.stem, source=str(file), result=result, raw=raw
    )


def _load(path: Path, label: str | None, steps: list[int]) -> list[LoadedRun]:
    """One file's runs: the file's, or the ``steps`` of a capacity result."""
    if steps and is_capacity(read_json(path)):
        return [load_run(path, f"{label} step {n}" if label else None, n) for n in steps]
    return [load_run(path, label)]


def load_runs(
    paths: list[Path], labels: list[str] | None = None, steps: list[int] | None = None
) -> list[LoadedRun]:
    """Read several files, labelled by ``labels`` (one per file, in order), else by each
    result's own label or file name, made unique when they repeat. From a capacity result,
    its ``steps`` (numbered from 1), each labelled with its number."""
    if labels is not None and len(labels) != len(paths):
        raise ValueError(
            f"{len(labels)} labels for {len(paths)} result files: give one --label per file"
        )
    given: list[str | None] = list(labels) if labels is not None else [None] * len(paths)
    loaded = [
        (run, path)
        for path, label in zip(paths, given, strict=True)
        for run in _load(path, label, list(steps or []))
    ]
    runs = [run for run, _ in loaded]
    names = [run.label for run in runs]
    named = [
        name
        if names.count(name) == 1 or run.result.label or labels
        else f"{name} ({p.parent.name or p.parent})"
        for name, (run, p) in zip(names, loaded, strict=True)
    ]
    seen: dict[str, int] = {}
    unique = []
    for name in named:
        seen[name] = seen.get(name, 0) + 1
        unique.append(name if seen[name] == 1 else f"{name} #{seen[name]}")
    return [replace(run, label=name) for run, name in zip(runs, unique, strict=True)]


def _decode(text: str, source: str | Path) -> dict[str, Any]:
    if not text.strip():
        raise ResultFileError(source, "empty file, not a loadgen result")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        # A cut-off file fails at its very end, or inside a string that never closes.
        if exc.pos >= len(text.rstrip()) or exc.msg.startswith("Unterminated string"):
            last_line = text.rstrip().count("\n") + 1
            problem = f"truncated JSON (it stops at line {last_line} before the result is whole)"
        else:
            problem = f"not valid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        raise ResultFileError(source, problem) from None
    if not isinstance(data, dict):
        raise ResultFileError(source, "not a loadgen result (the JSON is not an object)")
    return data


def _check(data: dict[str, Any], source: str | Path) -> tuple[RunResult, dict[str, Any]]:
    missing = [key for key in _REQUIRED_KEYS if key not in data]
    if missing:
        raise ResultFileError(
            source, f"not a loadgen result (no {', '.join(repr(k) for k in missing)})"
        )
    version = data["schema_version"]
    if not isinstance(version, int) or isinstance(version, bool):
        raise ResultFileError(source, f"not a loadgen result (schema_version {version!r})")
    if version > SCHEMA_VERSION:
        raise ResultFileError(
            source,
            f"written by a newer loadgen (schema_version {version}; this loadgen reads "
            f"{SCHEMA_VERSION}): upgrade loadgen to read it",
        )
    problem = _stop_problem(data) or shape_problem(_without_stop_reason(data), RunResult)
    if problem is not None:
        raise ResultFileError(source, f"malformed loadgen result: {problem}")
    try:
        result = RunResult.from_dict(data)
        for name in result.histograms:
            result.histogram(name)  # decode once: a damaged histogram fails here, not later
        for interval in result.intervals:
            for encoded in (interval.latency, interval.latency_corrected):
                if encoded is not None:
                    HdrHistogram.from_dict(encoded)
    except (KeyError, TypeError, ValueError, AttributeError, struct.error, zlib.error) as exc:
        detail = f"missing {exc}" if isinstance(exc, KeyError) else str(exc)
        raise ResultFileError(source, f"malformed loadgen result: {detail}") from None
    return result, data


def _stop_problem(data: dict[str, Any]) -> str | None:
    """The one-line ``stop_reason`` (every schema; alone before schema 4) must be text, and
    one of ``stop_reason`` and ``stop`` must be there."""
    if "stop_reason" in data and not isinstance(data["stop_reason"], str):
        return f"stop_reason: expected text, got {shown_value(data['stop_reason'])}"
    if "stop" not in data and "stop_reason" not in data:
        return "stop: missing"
    return None


def _without_stop_reason(data: dict[str, Any]) -> dict[str, Any]:
    """The fields ``RunResult`` has: ``stop_reason`` is ``stop`` in one line (its property),
    and a result before schema 4 has only that (``stop`` is then parsed from it)."""
    shaped = {key: value for key, value in data.items() if key != "stop_reason"}
    if "stop" not in shaped:
        shaped["stop"] = StopReason.completed().to_dict()  # checked above as stop_reason
    return shaped
