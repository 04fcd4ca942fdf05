"""SIGTERM and SIGHUP end a run as Ctrl-C does: partial result written, children stopped,
exit 128 + the signal's number (what ``timeout``, ``docker stop`` and a closed terminal send).

Through a real ``python -m loadgen run`` process: a signal handler only matters in one.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "scenarios" / "quickstart.yaml"

pytestmark = pytest.mark.skipif(
    sys.platform == "win32" or not Path("/proc/self/task").is_dir(),
    reason="POSIX signals; children are found through Linux's /proc",
)


def _descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (Linux: /proc/PID/task/*/children)."""
    found: set[int] = set()
    todo = [pid]
    while todo:
        parent = todo.pop()
        for children in Path(f"/proc/{parent}/task").glob("*/children"):
            try:
                pids = {int(p) for p in children.read_text().split()}
            except OSError:  # the task ended meanwhile
                continue
            todo += sorted(pids - found)
            found |= pids
    return found


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status  # a zombie has ended, its parent not yet told


def _start_run(out: Path, processes: int) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "loadgen", "run", str(QUICKSTART), "-d", "120s"]
    command += ["-p", str(processes), "--set", "load.connections=20", "--json", str(out)]
    return subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as under `timeout`
    )


def _wait_for_traffic(process: subprocess.Popen[str]) -> None:
    """Until the live view's first line with requests counted (the run is measuring)."""
    assert process.stdout is not None
    deadline = time.monotonic() + 90  # interpreters, target and shards start on a busy box
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        if " requests, " in line and not line.split("] ")[1].startswith("phase 1/1: 0 "):
            return
    process.kill()
    _, stderr = process.communicate()
    pytest.fail(f"the run never showed traffic: {stderr}")


@pytest.mark.parametrize(
    ("signum", "processes", "whole_group"),
    [
        (signal.SIGTERM, 1, False),  # docker stop, Kubernetes: the main process alone
        (signal.SIGHUP, 1, False),
        (signal.SIGTERM, 2, True),  # timeout, CI cancellation: the whole process group
    ],
    ids=["SIGTERM", "SIGHUP", "SIGTERM-to-the-group-of-2-processes"],
)
def test_a_stop_signal_writes_the_partial_result(
    tmp_path: Path, signum: signal.Signals, processes: int, whole_group: bool
) -> None:
    out = tmp_path / "partial.json"
    process = _start_run(out, processes)
    try:
        _wait_for_traffic(process)
        children = _descendants(process.pid)
        assert children, "a builtin target (and shards) run as child processes"
        if whole_group:
            os.killpg(process.pid, signum)
        else:
            process.send_signal(signum)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == 128 + signum, stdout + stderr
    data = json.loads(out.read_text())
    assert data["partial"] is True
    assert data["stop_reason"] == f"interrupted ({signum.name})"
    assert data["summary"]["requests"] > 0
    assert data["summary"]["duration_s"] < 60
    assert data["environment"]["processes"] == processes
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in children if _alive(pid)], "children left running"
