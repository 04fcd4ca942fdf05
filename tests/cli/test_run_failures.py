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

runner = CliRunner()

#: TEST-NET-1 (RFC 5737): no host owns it, so the client's bind fails (EADDRNOTAVAIL) when
#: its loop opens the first connection: an exception raised inside the hot loop.
SCENARIO = """\
name: bad-source
target: builtin:echo
connections: 2
duration: 2s
source: 192.0.2.1
"""


@pytest.fixture
def scenario(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # `run` refuses a source it cannot bind before any traffic (loadgen.run.sources); these
    # tests need that bind to fail inside the loop, so the CLI's early check is skipped.
    monkeypatch.setattr("loadgen.run.sources.unusable_source", lambda addresses: None)
    if sys.platform != "linux":
        pytest.skip("needs Linux's EADDRNOTAVAIL for an address no interface has")
    if Path("/proc/sys/net/ipv4/ip_nonlocal_bind").read_text().strip() != "0":
        pytest.skip("ip_nonlocal_bind is on: binding 192.0.2.1 succeeds here")
    path = tmp_path / "bad-source.yaml"
    path.write_text(SCENARIO)
    return path


@pytest.mark.parametrize("verbose", [False, True], ids=["quiet", "verbose"])
def test_a_failure_in_the_loop_keeps_its_traceback(
    scenario: Path, tmp_path: Path, verbose: bool, echo_target: str
) -> None:
    out = tmp_path / "result.json"
    arguments = ["run", str(scenario), "--json", str(out), "--quiet", "--processes", "1"]
    arguments += ["--set", f"target={echo_target}"]  # the session's shared echo target
    outcome = runner.invoke(app, arguments + (["--verbose"] if verbose else []))
    assert outcome.exit_code == EXIT_RUNTIME_FAILURE, outcome.output
    data = json.loads(out.read_text())
    assert data["partial"] is True
    assert data["stop_reason"].startswith("failed: OSError: [Errno 99]")
    stop = data["stop"]
    assert stop["kind"] == "failed" and stop["detail"].startswith("OSError: [Errno 99]")
    traceback = stop["traceback"]
    assert traceback.startswith("Traceback (most recent call last):")
    assert "in run_shard" in traceback and "in _open" in traceback  # where it happened
    assert traceback.rstrip().endswith(stop["detail"])
    if verbose:
        assert traceback.rstrip() in outcome.stderr
    else:
        assert "Traceback" not in outcome.stderr and "--verbose prints it" in outcome.stderr
