"""Why a run ended (``result.stop``): kinds, the one-line form of older results, what the
reports show, and tracebacks kept from a shard process whose loop failed."""

from __future__ import annotations

import io
import json
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from rich.console import Console

from loadgen.config.scenario import parse_scenario
from loadgen.report.compare import compare_runs
from loadgen.report.console import render_summary
from loadgen.report.html import render_html
from loadgen.report.junit import comparison_junit
from loadgen.report.loading import from_result
from loadgen.report.markdown import comparison_markdown
from loadgen.result.model import SCHEMA_VERSION, RunResult
from loadgen.result.stop import StopKind, StopReason
from loadgen.run.api import run
from tests.faults import MESSAGE, fault_in_children
from tests.report.builders import make_result

LEGACY = {
    "completed": ("completed", StopReason(StopKind.COMPLETED)),
    "interrupted": ("interrupted (SIGINT)", StopReason(StopKind.INTERRUPTED, "SIGINT")),
    "failed": ("failed: KeyError: 5", StopReason(StopKind.FAILED, "KeyError: 5")),
    "failed shard": (
        "failed: shard 1 (pid 42) died: killed by SIGKILL",
        StopReason(StopKind.FAILED, "shard 1 (pid 42) died: killed by SIGKILL"),
    ),
}


@pytest.mark.parametrize(("text", "reason"), LEGACY.values(), ids=LEGACY.keys())
def test_old_stop_strings_parse_and_print_back(text: str, reason: StopReason) -> None:
    assert StopReason.parse(text) == reason
    assert str(reason) == text


def test_the_coordinators_stop_of_older_results() -> None:
    old = StopReason.parse("stopped by the coordinator")
    assert old.kind is StopKind.STOPPED and not old.is_completed


def test_failures_of_several_parts_keep_every_traceback() -> None:
    first = StopReason(StopKind.FAILED, "shard 0 failed: OSError: x", "Traceback A\n")
    second = StopReason(StopKind.FAILED, "shard 1 died: killed by SIGKILL")
    third = StopReason(StopKind.FAILED, "shard 2 failed: KeyError: 5", "Traceback C\n")
    both = StopReason.failed_parts([first, second, third])
    assert both.detail == f"{first.detail}; {second.detail}; {third.detail}"
    assert both.traceback == f"{first.detail}\nTraceback A\n\n{third.detail}\nTraceback C\n"
    assert StopReason.failed_parts([first]) == first


def test_results_keep_stop_and_the_old_line_and_read_old_schemas() -> None:
    failed = replace(
        make_result(partial=True),
        stop=StopReason(StopKind.FAILED, "OSError: boom", "Traceback (most recent call last)\n"),
    )
    data = json.loads(failed.to_json())
    assert data["schema_version"] == SCHEMA_VERSION >= 4
    assert data["stop"] == {
        "kind": "failed",
        "detail": "OSError: boom",
        "traceback": "Traceback (most recent call last)\n",
    }
    assert data["stop_reason"] == "failed: OSError: boom"
    assert list(data).index("stop_reason") == list(data).index("partial") + 1
    assert RunResult.from_dict(data) == failed
    for version in (1, 2, 3):  # before schema 4: the string alone
        old = {**data, "schema_version": version}
        del old["stop"]
        assert RunResult.from_dict(old).stop == StopReason(StopKind.FAILED, "OSError: boom")


def test_reports_show_a_failure_and_its_traceback() -> None:
    traceback = 'Traceback (most recent call last):\n  File "x.py", line 1\nOSError: <boom>\n'
    failed = replace(
        make_result(partial=True, name="failing"),
        stop=StopReason(StopKind.FAILED, "OSError: <boom>", traceback),
    )
    interrupted = make_result(partial=True, name="stopped")
    console = Console(file=io.StringIO(), width=200)
    render_summary(failed, console)
    assert "partial — failed: OSError: <boom>" in console.file.getvalue()  # type: ignore[attr-defined]
    page = render_html([from_result(failed, source="failing.json")])
    assert "failed: OSError: &lt;boom&gt;" in page and "OSError: &lt;boom&gt;\n</pre>" in page
    comparison = compare_runs(
        [from_result(interrupted, source="a.json")], [from_result(failed, source="b.json")]
    )
    assert [(label, stop.kind) for label, stop in comparison.stopped_runs] == [
        (comparison.stopped_runs[0][0], StopKind.INTERRUPTED),
        (comparison.stopped_runs[1][0], StopKind.FAILED),
    ]
    junit = comparison_junit(comparison)
    assert 'type="failed-run"' in junit and "OSError: &lt;boom&gt;" in junit
    assert "<skipped" in junit  # the interrupted run: not loadgen's failure
    markdown = comparison_markdown(comparison)
    assert "is partial: loadgen failed" in markdown and "OSError: <boom>" in markdown
    assert "is partial (interrupted (SIGINT))" in markdown


@pytest.mark.skipif(sys.platform != "linux", reason="the fault is injected into epoll (Linux)")
def test_shard_processes_that_fail_keep_their_tracebacks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fault_in_children(monkeypatch, tmp_path)  # each shard's loop raises when it connects
    scenario = parse_scenario(
        "name: failing-shards\ntarget: builtin:echo\nconnections: 4\nduration: 2s\n"
    )
    result = run(scenario, backend="epoll", processes=2)
    stop = result.stop
    assert result.partial and stop.kind is StopKind.FAILED
    assert "process 1 of 2: RuntimeError" in stop.detail
    assert "process 2 of 2: RuntimeError" in stop.detail
    assert stop.traceback is not None
    # Each shard's own traceback, under its name, down to the connect that raised.
    assert stop.traceback.count("Traceback (most recent call last)") == 2
    assert stop.traceback.count("in _open") == 2 and MESSAGE in stop.traceback
    path = result.write(tmp_path / "failed.json")
    assert json.loads(path.read_text())["stop"]["traceback"] == stop.traceback
