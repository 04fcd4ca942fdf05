"""Results damaged in their types, and runs that did not complete, given to ``report`` and
``compare``: exit 2 naming the file and the field, or a gate that fails; never a crash."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from loadgen.cli.app import app
from loadgen.cli.common import EXIT_RUNTIME_FAILURE, EXIT_USAGE
from loadgen.report.compare import Verdict, compare_runs
from loadgen.report.html import render_html
from loadgen.report.junit import comparison_junit
from loadgen.report.loading import ResultFileError, load_run
from loadgen.report.markdown import comparison_markdown
from loadgen.result.stop import StopKind, StopReason

from .builders import loaded, make_result, write_runs
from .conftest import RunFile

runner = CliRunner()


def _leaves(data: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Paths of the scalar values of a result, one per list (its first item): every field
    of every kind of record, without walking all the intervals and samples."""
    if isinstance(data, dict):
        return [leaf for key, value in data.items() for leaf in _leaves(value, (*path, key))]
    if isinstance(data, list):
        return _leaves(data[0], (*path, 0)) if data else [path]
    return [path]


def _damaged(data: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    copy = json.loads(json.dumps(data))
    holder = copy
    for key in path[:-1]:
        holder = holder[key]
    holder[path[-1]] = value
    return copy


def _invoke(arguments: list[str]) -> tuple[int, str]:
    outcome = runner.invoke(app, arguments)
    assert outcome.exception is None or isinstance(outcome.exception, SystemExit), (
        arguments,
        outcome.exception,
    )
    return outcome.exit_code, outcome.stderr


# The kinds of damage, each field getting one in turn: text for a number, a list for a
# scalar, a mapping, NaN.
DAMAGE = ["x", [1], {"a": 1}, math.nan]


def test_every_field_damaged_is_named_or_harmless(
    real_runs: dict[str, RunFile], tmp_path: Path
) -> None:
    """Each field of a real result damaged in turn: the file is refused naming itself, or
    it reads, compares and renders (in-process here: the CLI path is the next test's)."""
    good = load_run(real_runs["open"].path)
    leaves = [p for p in _leaves(good.raw) if p[0] not in ("scenario", "memory")]  # free-form
    refused = 0
    for number, path in enumerate(leaves):
        bad = tmp_path / f"bad-{number}.json"
        bad.write_text(json.dumps(_damaged(good.raw, path, DAMAGE[number % len(DAMAGE)])))
        try:
            run = load_run(bad)
        except ResultFileError as exc:
            assert str(exc).startswith(f"{bad}: "), path
            refused += 1
            continue
        comparison = compare_runs([good], [run])
        comparison_markdown(comparison)
        comparison_junit(comparison)
        render_html([good, run])
    assert refused > len(leaves) // 2


def test_a_wrong_type_is_named_with_its_field(
    real_runs: dict[str, RunFile], tmp_path: Path
) -> None:
    data = json.loads(real_runs["closed"].path.read_text())
    cases = {
        ("summary", "requests"): ("many", "summary.requests: expected a whole number, got 'many'"),
        ("summary", "latency_us", "p99"): (math.nan, "summary.latency_us.p99: expected a "
                                           "finite number, got nan"),
        ("intervals", 0, "errors"): ([], "intervals[0].errors: expected a mapping, got []"),
        ("environment",): ("linux", "environment: expected a mapping of fields, got 'linux'"),
    }  # fmt: skip
    for path, (value, message) in cases.items():
        bad = tmp_path / "bad.json"
        bad.write_text(json.dumps(_damaged(data, path, value)))
        for command in (["report", str(bad)], ["compare", "--baseline", str(bad), "--current",
                                                 str(real_runs["closed"].path)]):  # fmt: skip
            code, err = _invoke(command)
            assert code == EXIT_USAGE, (command, err)
            assert f"error: {bad}: malformed loadgen result: {message}" in err


def test_an_unknown_field_is_named(real_runs: dict[str, RunFile], tmp_path: Path) -> None:
    data = json.loads(real_runs["closed"].path.read_text())
    data["generator"]["turbo"] = True
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    code, err = _invoke(["report", str(bad)])
    assert code == EXIT_USAGE
    assert "malformed loadgen result: generator: unknown field 'turbo'" in err


def test_a_nan_value_is_never_ok() -> None:
    nan_run = make_result()
    nan_run = replace(
        nan_run,
        summary=replace(
            nan_run.summary, latency_us=replace(nan_run.summary.latency_us, p99=math.nan)
        ),
    )
    comparison = compare_runs([loaded(make_result(), "a")], [loaded(nan_run, "b")])
    p99 = next(m for m in comparison.metrics if m.metric.key == "p99")
    assert p99.verdict is Verdict.REGRESSION and "not a finite number" in p99.reason
    assert comparison.failed


def test_an_interrupted_current_run_is_a_failed_junit_check_unless_allowed() -> None:
    interrupted = make_result(partial=True)
    gate = compare_runs([loaded(make_result(), "a")], [loaded(interrupted, "b")])
    assert 'failure message="b: interrupted (SIGINT)"' in comparison_junit(gate)
    allowed = compare_runs(
        [loaded(make_result(), "a")], [loaded(interrupted, "b")], allow_partial=True
    )
    assert "<failure" not in comparison_junit(allowed)


def test_a_partial_current_run_fails_the_gate_unless_allowed(tmp_path: Path) -> None:
    base = write_runs(tmp_path, "base", [make_result()])
    cur = write_runs(tmp_path, "cur", [make_result(partial=True)])
    code, err = _invoke(["compare", "--baseline", *base, "--current", *cur])
    assert code == EXIT_RUNTIME_FAILURE
    assert "error: current run cur-0 did not complete (interrupted (SIGINT))" in err
    code, err = _invoke(["compare", "--baseline", *base, "--current", *cur, "--allow-partial"])
    assert code == 0 and "warning: cur-0 is partial" in err
    # A partial baseline is a warning only: it is what the current runs are held against.
    code, err = _invoke(["compare", "--baseline", *cur, "--current", *base])
    assert code == 0 and "warning: cur-0 is partial" in err


def test_a_failed_current_run_is_a_failed_check_in_junit_and_markdown() -> None:
    stop = StopReason(StopKind.FAILED, "shard 1 (pid 9) died")
    failed = replace(make_result(), partial=True, stop=stop)
    comparison = compare_runs([loaded(make_result(), "a")], [loaded(failed, "b")])
    assert comparison.failed and comparison.incomplete == (("b", stop),)
    assert 'name="b: ran to its end"' in comparison_junit(comparison)
    assert "b did not complete**: failed: shard 1 (pid 9) died" in comparison_markdown(comparison)
    allowed = compare_runs([loaded(make_result(), "a")], [loaded(failed, "b")], allow_partial=True)
    assert not allowed.failed
