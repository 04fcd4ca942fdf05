"""Splitting a scenario into shards (pure: no sockets) and merging intervals and memory."""

from __future__ import annotations

import os

import pytest

from loadgen.config.plan import LoadPlan
from loadgen.config.scenario import parse_scenario
from loadgen.report.memory import Counter, RunMemory
from loadgen.run.api import default_processes
from loadgen.run.merge import merge_memory
from loadgen.run.split import arrival_phase, split_counts, split_scenario, usable_processes
from loadgen.targets.scaled import reuse_port_supported


def test_counts_split_evenly_and_sum_exactly() -> None:
    assert split_counts(10, [1, 1]) == [5, 5]
    assert split_counts(7, [1, 1, 1]) == [3, 2, 2]
    assert split_counts(1, [1, 1]) == [1, 0]
    assert split_counts(100, [3, 1]) == [75, 25]
    assert sum(split_counts(999, [0.2, 0.5, 0.3])) == 999
    with pytest.raises(ValueError, match="weights"):
        split_counts(5, [0, 0])


def test_closed_ramp_and_sources_split() -> None:
    scenario = parse_scenario(
        "name: s\ntarget: 127.0.0.1:9\nsource: 127.0.0.1-127.0.0.5\n"
        "load:\n  connections: 11\n  phases:\n"
        "    - {duration: 2s, connections: 1 to 11}\n    - {duration: 1s}\n"
    )
    first, second = split_scenario(scenario, [1, 1])
    assert (first.load_section.connections, second.load_section.connections) == (6, 5)
    assert first.load_section.phases[0].connections == (1, 6)
    assert second.load_section.phases[0].connections == (0, 5)
    assert first.load_section.phases[1].connections is None
    assert [p.duration for p in second.load_section.phases] == [2.0, 1.0]
    assert first.source_addresses() == ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
    assert second.source_addresses() == ["127.0.0.4", "127.0.0.5"]
    # Per-connection settings stay as they were.
    assert first.message_size == scenario.message_size and second.timeouts == scenario.timeouts


def test_open_rates_split_proportionally_and_interleave() -> None:
    scenario = parse_scenario(
        "name: o\ntarget: 127.0.0.1:9\nsource: 127.0.0.1\n"
        "load:\n  model: open\n  connections: 3\n  phases:\n"
        "    - {duration: 1s, rate: 1k/s to 4k/s}\n"
    )
    shards = split_scenario(scenario, [2, 1])
    assert [s.load_section.phases[0].rate for s in shards] == [
        (2000 / 3, 8000 / 3),
        (1000 / 3, 4000 / 3),
    ]
    assert [s.load_section.connections for s in shards] == [2, 1]
    assert all(s.source_addresses() == ["127.0.0.1"] for s in shards)  # too few to deal out
    assert [arrival_phase([1, 1], i) for i in (0, 1)] == [0.0, 0.5]


def test_no_more_processes_than_connections() -> None:
    scenario = parse_scenario("name: q\ntarget: builtin:echo\nconnections: 3\nduration: 1s\n")
    plan = LoadPlan.from_scenario(scenario)
    assert usable_processes(plan, 8) == 3
    assert usable_processes(plan, 2) == 2
    ramp = parse_scenario(
        "name: q\ntarget: builtin:echo\nload:\n  connections: 1\n"
        "  phases: [{duration: 1s, connections: 0 to 4}]\n"
    )
    assert usable_processes(LoadPlan.from_scenario(ramp), 8) == 4  # the ramp's peak


def test_memory_merge_adds_per_process_fields_only() -> None:
    a = [{"t_s": 0.0, "sunreclaim_bytes": 100, "vm_rss_bytes": 10, "engine_posted_recv_bytes": 1}]
    b = [
        {"t_s": 0.01, "sunreclaim_bytes": 101, "vm_rss_bytes": 20, "engine_posted_recv_bytes": 2},
        {"t_s": 1.0, "sunreclaim_bytes": 102, "vm_rss_bytes": 30, "engine_posted_recv_bytes": 3},
    ]
    first, second = merge_memory([a, b])
    assert first == {
        "t_s": 0.0,
        "sunreclaim_bytes": 100,  # system-wide: one shard's reading, never a sum
        "vm_rss_bytes": 30,
        "engine_posted_recv_bytes": 3,
        "processes": 2,
    }
    # A second in which only one process sampled: the other's recent sample stands for it.
    assert second["processes"] == 1 and second["sunreclaim_bytes"] == 102
    assert second["vm_rss_bytes"] == 10 + 30 and second["engine_posted_recv_bytes"] == 1 + 3
    # A process whose last sample is too old (ended, or dead) leaves no per-process sum:
    # a sum of some processes would read as a drop.
    later = [*b, {"t_s": 4.0, "sunreclaim_bytes": 103, "vm_rss_bytes": 31}]
    last = merge_memory([a, later])[-1]
    assert last["t_s"] == 4.0 and last["vm_rss_bytes"] is None


def test_default_processes_share_the_cores_with_a_builtin_target(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    network = parse_scenario("name: n\ntarget: 127.0.0.1:9\nconnections: 9\nduration: 1s\n")
    builtin = parse_scenario("name: b\ntarget: builtin:echo\nconnections: 9\nduration: 1s\n")
    assert default_processes(network, None) == (8, 1)
    assert default_processes(network, 3) == (3, 1)
    scaled = reuse_port_supported()
    assert default_processes(builtin, None) == (4, 4 if scaled else 1)
    assert default_processes(builtin, 6) == (6, 2 if scaled else 1)
    assert default_processes(builtin, 8) == (8, 1)
    assert default_processes(builtin, 2, 3) == (2, 3)


def test_per_connection_memory_skips_samples_some_processes_lacked() -> None:
    kernel = Counter("kernel", "kernel", [0, 0, 0], None)
    posted = Counter("posted", "posted", [0, 3 * 65536 * 10, None], None)
    memory = RunMemory(
        time_s=[0.0, 1.0, 2.0],
        kernel=kernel,
        posted=posted,
        rss=kernel,
        components=[],
        connections=[0, 30, 30],
        os_kind="linux",
    )
    # The last sample has the most connections too, but only a merged sum of some
    # processes: the one before it, which every process took, gives the figure.
    assert memory.per_connection(posted) == (65536.0, 30)
