"""The live view: its plain-line form in logs, its panel, and --quiet."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from pathlib import Path

from rich.console import Console

from loadgen.report.live import LiveView, plain_line
from loadgen.run.progress import Snapshot

QUICKSTART = Path(__file__).resolve().parents[2] / "scenarios" / "quickstart.yaml"
SNAPSHOT = Snapshot(
    elapsed_s=3.2,
    duration_s=10,
    phase="phase 1/2 (5,000/s)",
    requests=12_345,
    last_interval_rps=4_990.0,
    last_p50_us=210.0,
    last_p99_us=1_830.0,
    errors={"timeout": 3},
    open_connections=100,
    cpu_percent=57.0,
)


def test_plain_line_carries_every_number() -> None:
    line = plain_line(SNAPSHOT)
    assert line == (
        "[   3.2s/10s] phase 1/2 (5,000/s): 12,345 requests, 4,990/s, p50 210µs, "
        "p99 1.83ms, errors timeout 3, 100 connections, cpu 57%"
    )


def test_panel_renders_the_snapshot() -> None:
    out = io.StringIO()
    console = Console(file=out, width=100, force_terminal=False, color_system=None)
    view = LiveView("demo", lambda: SNAPSHOT, console)
    console.print(view.render(SNAPSHOT))
    text = out.getvalue()
    for expected in ("demo · phase 1/2", "3s of 10s, 7s left", "4,990", "1.83ms", "timeout 3"):
        assert expected in text, text


def _run(target: str, *extra: str) -> str:
    """The quickstart as a real process (its output a pipe, as in CI logs), against the
    session's shared echo target in one process."""
    command = [sys.executable, "-m", "loadgen", "run", str(QUICKSTART), "-d", "2.5s", "-p", "1"]
    command += ["--set", f"target={target}", *extra]
    return subprocess.run(command, capture_output=True, text=True, check=True, timeout=60).stdout


def test_logs_get_periodic_plain_lines(tmp_path: Path, echo_target: str) -> None:
    out = _run(echo_target, "--json", str(tmp_path / "r.json"))
    lines = re.findall(r"^\[\s*(\d+\.\d)s/2s\] phase 1/1: ([\d,]+) requests", out, re.M)
    # One a second in a 2.5 s run: two, or one when a loaded machine started the view late.
    assert 1 <= len(lines) <= 2, out
    elapsed = [float(t) for t, _ in lines]
    assert elapsed == sorted(elapsed) and elapsed[-1] <= 2.6
    assert int(lines[-1][1].replace(",", "")) > 0


def test_quiet_shows_nothing_while_running(tmp_path: Path, echo_target: str) -> None:
    out = _run(echo_target, "-q", "--json", str(tmp_path / "r.json"))
    assert "requests," not in out
    assert out.strip().startswith("result: ")
