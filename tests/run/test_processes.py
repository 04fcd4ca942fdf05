"""Runs split over shard processes (spawned), against real built-in targets.

Each test starts real processes (about a second each to import numpy and the engine) and
runs for about two seconds, so there are few of them.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from loadgen.cli.app import app
from loadgen.config.scenario import Scenario, parse_scenario
from loadgen.result.model import LatencySummary, RunResult
from loadgen.run.api import run
from loadgen.run.merge import merge_results
from loadgen.run.processes import run_shards, shard_specs
from loadgen.run.progress import Snapshot, TickBoard
from loadgen.stats.histogram import HdrHistogram
from loadgen.targets.process import builtin_target
from loadgen.targets.scaled import reuse_port_supported
from tests.hdr_values import values_of
from tests.shared_targets import SharedTargets

QUICKSTART = Path(__file__).resolve().parents[2] / "scenarios" / "quickstart.yaml"
needs_reuse_port = pytest.mark.skipif(
    not reuse_port_supported(), reason="SO_REUSEPORT load spreading is Linux-only"
)


def _scenario(text: str, target: str = "builtin:echo") -> Scenario:
    return parse_scenario(f"name: p\ntarget: {target}\n" + text)


def test_two_processes_merge_exactly(shared_targets: SharedTargets) -> None:
    address = shared_targets.address("echo")
    scenario = _scenario("connections: 20\nduration: 2s\nmessage_size: 256B\n")
    board = TickBoard(2, scenario.load_section.duration)
    specs = shard_specs(scenario, 2, "auto", [address], seed=None)
    outcome = run_shards(specs, board, scenario.load_section.duration)
    assert outcome.failures == {} and outcome.interrupted == []
    shards = [outcome.results[0], outcome.results[1]]
    assert [s.summary.connects for s in shards] == [10, 10]
    merged = merge_results(shards, scenario)
    summary = merged.summary
    assert merged.environment.processes == 2
    assert summary.errors == {} and summary.connections == 20
    assert summary.requests == sum(s.summary.requests for s in shards) > 0
    assert summary.bytes_received == sum(s.summary.bytes_received for s in shards)

    # One histogram fed every shard's values has exactly the merged percentiles.
    fed = HdrHistogram()
    for shard in shards:
        fed.record_many(values_of(shard.histogram("latency")))
    assert fed == merged.histogram("latency")
    assert LatencySummary.from_histogram(fed) == summary.latency_us

    # Intervals align on the shared start: as many as the longest shard has, sums kept.
    assert len(merged.intervals) == max(len(s.intervals) for s in shards)
    assert [i.index for i in merged.intervals] == list(range(len(merged.intervals)))
    for interval in merged.intervals:
        same = [i for s in shards for i in s.intervals if i.index == interval.index]
        assert interval.requests == sum(i.requests for i in same)
        assert interval.bytes_sent == sum(i.bytes_sent for i in same)
        # Each interval's latency is that of one histogram fed both shards' values of it.
        fed_interval = HdrHistogram()
        for shard_interval in same:
            fed_interval.record_many(values_of(HdrHistogram.from_dict(shard_interval.latency)))
        assert HdrHistogram.from_dict(interval.latency) == fed_interval, interval.index
    assert sum(i.requests for i in merged.intervals) == summary.requests
    assert RunResult.from_dict(merged.to_dict()) == merged

    # The self-check judges the merged run against both processes' cores; intervals carry
    # the CPU of both processes added.
    assert merged.self_check is not None
    assert merged.self_check.cpu_limit_percent == 180.0
    for interval in merged.intervals:
        same = [i.cpu_percent for s in shards for i in s.intervals if i.index == interval.index]
        if None not in same:
            assert interval.cpu_percent == pytest.approx(sum(same), abs=0.11)
    # A process that was its own bottleneck invalidates the merged run, named.
    saturated = replace(
        shards[1],
        self_check=replace(shards[1].self_check, valid=False, reasons=["generator CPU 97%"]),
    )
    judged = merge_results([shards[0], saturated], scenario).self_check
    assert judged is not None and not judged.valid
    assert "process 2 of 2: generator CPU 97%" in judged.reasons
    # The board saw every shard's intervals through the ticks.
    assert sum(i.requests for n in (0, 1) for i in board.intervals[n]) > 0


@needs_reuse_port
def test_run_with_processes_against_a_scaled_target() -> None:
    scenario = _scenario("connections: 16\nduration: 1500ms\n")
    result = run(scenario, processes=2, target_processes=2)
    assert result.environment.processes == 2
    assert result.environment.target_processes == 2
    assert not result.partial and result.stop_reason == "completed"
    assert result.summary.errors == {} and result.summary.connects == 16
    assert result.summary.requests == result.histogram("latency").total_count > 0
    assert result.scenario["connections"] == 16  # the whole scenario, not a shard's slice


def test_open_model_rate_split_hits_the_total_rate(echo_target: str) -> None:
    scenario = _scenario(
        "load:\n  model: open\n  connections: 20\n  phases:\n    - {duration: 2s, rate: 2k/s}\n",
        echo_target,
    )
    result = run(scenario, processes=2)
    summary = result.summary
    assert summary.errors == {}
    assert summary.unsent is not None
    # Two shards at 1k/s for 2 s: every one of the 4,000 scheduled requests was answered,
    # is in flight or (on a starved machine) still waited to be sent.
    assert summary.requests + summary.in_flight_at_end + summary.unsent == 4000
    assert summary.requests > 3000
    assert result.histogram("latency_corrected").total_count == summary.requests


@contextmanager
def _kill_shard_when(
    ready: Callable[[Snapshot], bool], shard: str, seen: list[Snapshot]
) -> Iterator[Callable[[Callable[[], Snapshot]], object]]:
    """A live-view factory whose thread kills ``shard`` (by process name) once ``ready``."""
    killed: list[int] = []

    @contextmanager
    def live(read: Callable[[], Snapshot]) -> Iterator[None]:
        stop = threading.Event()

        def watch() -> None:
            while not stop.wait(0.1):
                snapshot = read()
                seen.append(snapshot)
                if not killed and ready(snapshot):
                    for child in multiprocessing.active_children():
                        if child.name == shard and child.pid is not None:
                            os.kill(child.pid, signal.SIGKILL)
                            killed.append(child.pid)

        thread = threading.Thread(target=watch, daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    yield live
    assert killed, "the shard was never killed"


def test_a_dead_shard_gives_a_partial_result_naming_it(echo_target: str) -> None:
    scenario = _scenario("connections: 10\nduration: 60s\n", echo_target)
    seen: list[Snapshot] = []
    began = time.monotonic()
    with _kill_shard_when(lambda s: s.elapsed_s > 1.6, "loadgen-shard-1", seen) as live:
        result = run(scenario, processes=2, live=live)
    assert time.monotonic() - began < 40, "the other shard was not stopped"
    assert result.partial
    assert result.stop_reason.startswith("failed: shard 1 (pid ")
    assert "died: killed by SIGKILL" in result.stop_reason
    # What the dead shard reported before it died is in the result, with the other's.
    assert result.summary.requests == sum(i.requests for i in result.intervals) > 0
    assert any(s.requests > 0 for s in seen)


def test_serve_with_processes_listens_on_one_port_twice() -> None:
    if not reuse_port_supported():
        pytest.skip("SO_REUSEPORT load spreading is Linux-only")
    with builtin_target("echo", processes=2) as (host, port):
        with open("/proc/net/tcp", encoding="ascii") as table:
            listening = [
                line
                for line in table.read().splitlines()[1:]
                if line.split()[1].endswith(f":{port:04X}") and line.split()[3] == "0A"
            ]
        assert len(listening) == 2
        clients = [socket.create_connection((host, port), timeout=5) for _ in range(8)]
        for n, client in enumerate(clients):
            client.sendall(b"x" * (n + 1))
        assert [len(c.recv(64)) for c in clients] == list(range(1, 9))
        for client in clients:
            client.close()


@needs_reuse_port
def test_cli_run_with_processes_writes_merged_outputs(tmp_path: Path) -> None:
    out, hdr = tmp_path / "run.json", tmp_path / "run.hlog"
    arguments = ["run", str(QUICKSTART), "-d", "1500ms", "-q", "-p", "2", "--target-processes"]
    arguments += ["2", "--json", str(out), "--hdr-log", str(hdr)]
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 0, result.output
    data = RunResult.read(out)
    assert (data.environment.processes, data.environment.target_processes) == (2, 2)
    assert data.summary.errors == {} and data.summary.connects == 100
    assert all(verdict.passed for verdict in data.thresholds)
    lines = [line for line in hdr.read_text().splitlines() if line[:1].isdigit()]
    assert len(lines) == len(data.intervals) > 0  # one line per merged interval
