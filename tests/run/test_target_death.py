"""A built-in target that dies mid-run: the run says so and is marked failed, not
"completed" (``loadgen.run.api``)."""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from loadgen.config.scenario import parse_scenario
from loadgen.run.api import run
from loadgen.run.progress import Snapshot

pytestmark = pytest.mark.skipif(
    sys.platform == "win32" or not Path("/proc/self/task").is_dir(),
    reason="finds the target's process through Linux's /proc and kills it with SIGKILL",
)


def _started_ticks(pid: str) -> int:
    """When a process started (clock ticks since boot: field 22 of /proc/PID/stat)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[19])


def _target_pid() -> int:
    """This process's newest child running ``loadgen serve``: the run's built-in target
    (the session's shared targets, ``tests/conftest.py``, are older children)."""
    serving = []
    for children in Path(f"/proc/{os.getpid()}/task").glob("*/children"):
        for pid in children.read_text().split():
            command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if b"serve" in command:
                serving.append(pid)
    assert serving, "no built-in target process found"
    return int(max(serving, key=_started_ticks))


def _kill_target_after_traffic() -> tuple[Callable[[Callable[[], Snapshot]], object], list[int]]:
    killed: list[int] = []

    @contextmanager
    def watch(read: Callable[[], Snapshot]) -> Iterator[None]:
        done = threading.Event()

        def loop() -> None:
            while not done.wait(0.05):
                if read().requests > 200:
                    pid = _target_pid()
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                    return

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()

    return watch, killed


@pytest.mark.parametrize("processes", [1, 2])
def test_a_target_that_dies_mid_run_fails_the_run(processes: int) -> None:
    scenario = parse_scenario(
        "name: dies\ntarget: builtin:echo\nconnections: 4\nduration: 2.5s\n"
        "timeouts: {connect: 200ms, request: 200ms}\n"
    )
    watch, killed = _kill_target_after_traffic()
    result = run(scenario, live=watch, processes=processes)
    assert killed, "the run never reached 200 requests"
    assert result.partial
    assert result.stop_reason == (
        f"failed: the built-in target (pid {killed[0]}) killed by SIGKILL during the run"
    )
    assert result.summary.requests > 200
    assert sum(result.summary.errors.values()) > 0  # what the run saw after the death


def test_a_target_that_lives_leaves_the_run_completed() -> None:
    scenario = parse_scenario("name: lives\ntarget: builtin:echo\nconnections: 4\nduration: 1s\n")
    result = run(scenario)
    assert result.stop_reason == "completed" and not result.partial
