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

import numpy as np
import pytest
from typer.testing import CliRunner

from loadgen.cli.app import app
from loadgen.result.model import RunResult
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
    arguments += ["-d", "3s", "-q", "--json", str(out)]
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
    # Timed with QueryPerformanceCounter (100 ns), not GetTickCount64 (15.6 ms; 1 ms under
    # Wine, where a run held 42-71 distinct latencies and 1 in 150 read 0 ns).
    environment = data["environment"]
    assert environment["clock"] == "QueryPerformanceCounter()"
    assert environment["clock_resolution_ns"] <= 100
    assert environment["timer_resolution_ms"] == 1.0
    result = RunResult.read(out)
    for name in ("latency", "connect_latency"):
        histogram = result.histogram(name)
        assert histogram.min > 0, f"{name}: a zero latency"
    latency = result.histogram("latency")
    distinct = int(np.count_nonzero(latency.counts))  # 3 significant figures: 0.1% buckets
    requests = latency.total_count
    message = f"{distinct} distinct latencies in {requests:,} requests"
    if requests >= 2000:  # the quickstart makes ~24,000 in 3 s on an idle machine
        assert distinct > 1000, message
    else:  # a machine so loaded that requests took 100s of ms: at least half distinct
        assert distinct >= requests // 2, message  # a 15.6 ms tick allows ~100 values there
    connects = result.histogram("connect_latency")
    assert np.count_nonzero(connects.counts) > 10  # 100 connects, not one 28,000 us tick
