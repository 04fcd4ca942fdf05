"""The benchmark runner keeps working (a smoke run; speed itself is never asserted here)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(sys.platform != "linux", reason="the benchmark peers use epoll and a C server")
@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler for the echo server")
def test_echo_benchmark_runs_every_client_and_prints_ratios() -> None:
    command = [sys.executable, str(ROOT / "benchmarks" / "echo.py")]
    command += ["--rounds", "1", "--seconds", "0.5", "--connections", "50"]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)
    out = completed.stdout
    assert "server: C epoll echo server" in out
    for client in ("loadgen-io_uring", "loadgen-epoll", "asyncio", "raw-epoll"):
        rate = re.search(rf"^  {re.escape(client)} +([\d,]+)", out, re.MULTILINE)
        assert rate is not None, out
        assert int(rate[1].replace(",", "")) > 0
    assert "loadgen-io_uring / asyncio:" in out and "loadgen-epoll / raw-epoll:" in out
