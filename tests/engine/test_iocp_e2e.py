"""The quickstart end to end on the IOCP backend, in both receive modes.

Runs under Windows CPython: on real Windows directly, and on Linux under Wine through
``tests/test_wine.py`` (which CI runs), so this skip on Linux hides nothing. Both modes run
against one built-in echo target (on IOCP) started for the session: a Windows process start
costs seconds under Wine. A built-in target started by a run itself is tested on Windows by
the stream target's run (tests/load/test_streams.py) and the receive-mode study.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from loadgen.cli.app import app
from tests.shared_targets import SharedTargets

QUICKSTART = Path(__file__).resolve().parents[2] / "scenarios" / "quickstart.yaml"

pytestmark = pytest.mark.skipif(
    sys.platform != "win32",
    reason="IOCP needs Windows CPython; tests/test_wine.py runs this file under Wine",
)


@pytest.mark.parametrize("recv_mode", ["buffered", "zero-byte"])
def test_quickstart_on_iocp(tmp_path: Path, recv_mode: str, shared_targets: SharedTargets) -> None:
    out = tmp_path / "result.json"
    arguments = ["run", str(QUICKSTART), "--backend", "iocp", "--recv-mode", recv_mode]
    arguments += ["--set", f"target={shared_targets.target('echo', 'iocp')}", "-p", "1"]
    arguments += ["-d", "2s", "-q", "--json", str(out)]
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["environment"]["backend"] == "iocp"
    assert data["environment"]["recv_mode"] == recv_mode
    assert data["environment"]["os"].startswith("Windows")
    summary = data["summary"]
    assert summary["errors"] == {}
    assert summary["requests"] > 100
    assert summary["connects"] == 100
    assert summary["bytes_received"] == summary["requests"] * 64
    assert data["partial"] is False
