"""``loadgen run`` when loadgen itself fails: the result still written, its stop keeping
the traceback, exit 1, and ``--verbose`` printing the traceback."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from loadgen.cli.app import app
from loadgen.cli.common import EXIT_RUNTIME_FAILURE
from tests.faults import MESSAGE, patch_connect

runner = CliRunner()

SCENARIO = """\
name: broken-loop
target: builtin:echo
connections: 2
duration: 2s
"""


@pytest.fixture
def scenario(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    if sys.platform != "linux":
        pytest.skip("the fault is injected into the epoll backend (Linux)")
    patch_connect(monkeypatch)  # an exception raised inside the hot loop
    path = tmp_path / "broken-loop.yaml"
    path.write_text(SCENARIO)
    return path


@pytest.mark.parametrize("verbose", [False, True], ids=["quiet", "verbose"])
def test_a_failure_in_the_loop_keeps_its_traceback(
    scenario: Path, tmp_path: Path, verbose: bool, echo_target: str
) -> None:
    out = tmp_path / "result.json"
    arguments = ["run", str(scenario), "--json", str(out), "--quiet", "--processes", "1"]
    arguments += ["--set", f"target={echo_target}"]  # the session's shared echo target
    arguments += ["--backend", "epoll"]
    outcome = runner.invoke(app, arguments + (["--verbose"] if verbose else []))
    assert outcome.exit_code == EXIT_RUNTIME_FAILURE, outcome.output
    data = json.loads(out.read_text())
    assert data["partial"] is True
    assert data["stop_reason"] == f"failed: RuntimeError: {MESSAGE}"
    stop = data["stop"]
    assert stop["kind"] == "failed" and stop["detail"] == f"RuntimeError: {MESSAGE}"
    traceback = stop["traceback"]
    assert traceback.startswith("Traceback (most recent call last):")
    assert "in run_shard" in traceback and "in _open" in traceback  # where it happened
    assert traceback.rstrip().endswith(stop["detail"])
    if verbose:
        assert traceback.rstrip() in outcome.stderr
    else:
        assert "Traceback" not in outcome.stderr and "--verbose prints it" in outcome.stderr
