"""End-to-end runs through ``runner.run`` on every backend, against real servers (the
session's shared built-in echo target, ``tests/conftest.py``, and misbehaving ones)."""

from __future__ import annotations

import itertools

import pytest

from loadgen.config.scenario import Scenario, parse_scenario
from loadgen.load.pool import TICK_NS
from loadgen.result.model import RunResult
from loadgen.run.api import run
from tests.adversarial.servers import bad_target, free_port
from tests.engine.conftest import AVAILABLE


def _scenario(target: str, **fields: object) -> Scenario:
    settings = {"connections": 20, "duration": "1s", "message_size": "64B", **fields}
    text = f"name: e2e\ntarget: {target}\n" + "".join(f"{k}: {v}\n" for k, v in settings.items())
    return parse_scenario(text)


def _check_consistent(result: RunResult) -> None:
    summary = result.summary
    assert result.histogram("latency").total_count == summary.requests
    assert sum(interval.requests for interval in result.intervals) == summary.requests
    merged_errors: dict[str, int] = {}
    for interval in result.intervals:
        for kind, count in interval.errors.items():
            merged_errors[kind] = merged_errors.get(kind, 0) + count
    assert merged_errors == summary.errors
    assert RunResult.from_dict(result.to_dict()) == result


@pytest.mark.parametrize("recv_mode", ["buffered", "zero-byte"])
@pytest.mark.parametrize("backend", AVAILABLE)
def test_echo_run_on_every_backend(echo_target: str, backend: str, recv_mode: str) -> None:
    result = run(_scenario(echo_target, receive=recv_mode, message_size="1KiB"), backend=backend)
    summary = result.summary
    assert result.environment.backend == backend
    assert result.environment.recv_mode == recv_mode
    assert not result.partial and result.stop_reason == "completed"
    assert summary.errors == {}
    assert summary.requests > 100
    assert summary.connects == 20 and summary.connections == 20
    assert summary.bytes_received == summary.requests * 1024
    # Sends are counted when reaped: each connection may be one message ahead either way.
    assert abs(summary.bytes_sent - summary.bytes_received) <= 20 * 1024
    latency = summary.latency_us
    assert latency.min is not None and latency.max is not None and latency.p50 is not None
    assert 0 < latency.min <= latency.p50 <= latency.max
    assert summary.connect_latency_us.count == 20
    _check_consistent(result)


@pytest.mark.parametrize(
    ("behaviour", "kind"),
    [("corrupt", "verify"), ("close", "eof"), ("reset", "reset"), ("silent", "timeout")],
)
def test_misbehaving_target_is_a_result(behaviour: str, kind: str) -> None:
    with bad_target(behaviour) as (host, port):
        scenario = _scenario(
            f"{host}:{port}", connections=5, duration="500ms", timeouts="{request: 200ms}"
        )
        result = run(scenario, backend="auto")
    summary = result.summary
    assert summary.requests == 0
    assert summary.errors.get(kind, 0) > 0, summary.errors
    assert set(summary.errors) == {kind}
    assert result.stop_reason == "completed"
    _check_consistent(result)


def test_refused_target_counts_refused_and_backs_off() -> None:
    result = run(_scenario(f"127.0.0.1:{free_port()}", connections=5), backend="auto")
    refused = result.summary.errors.get("refused", 0)
    assert refused > 0 and set(result.summary.errors) == {"refused"}
    # Backoff doubles from 10 ms toward 1 s: far fewer than a hot retry loop would make.
    assert refused < 5 * 20
    assert result.summary.connect_latency_us.count == 0


@pytest.mark.parametrize("recv_mode", ["buffered", "zero-byte"])
def test_message_sizes_from_a_distribution(echo_target: str, recv_mode: str) -> None:
    scenario = _scenario(echo_target, message_size="{uniform: [16B, 8KiB]}", receive=recv_mode)
    result = run(scenario, backend="auto", seed=1)
    summary = result.summary
    assert summary.errors == {}
    mean_size = summary.bytes_received / summary.requests
    assert 0.8 * (16 + 8192) / 2 < mean_size < 1.2 * (16 + 8192) / 2  # a uniform draw's mean
    assert result.scenario["message_size"] == {"uniform": [16, 8192]}
    weighted = "{choice: [64B, 4KiB], weights: [3, 1]}"
    choices = run(_scenario(echo_target, message_size=weighted), seed=2)
    expected = (3 * 64 + 4096) / 4
    assert (
        0.8 * expected < choices.summary.bytes_received / choices.summary.requests < 1.2 * expected
    )


@pytest.mark.parametrize("recv_mode", ["buffered", "zero-byte"])
@pytest.mark.parametrize("backend", AVAILABLE)
def test_a_run_samples_memory_once_a_second(echo_target: str, backend: str, recv_mode: str) -> None:
    duration_s = 1.5
    scenario = _scenario(echo_target, receive=recv_mode, duration=f"{duration_s}s")
    result = run(scenario, backend=backend)
    samples = result.memory
    # A sample at the first tick (a baseline), then one a second, each taken at the first
    # tick due after the second is up: up to a tick period plus the loop's lag late (the
    # run measures its own worst lag). A second sample is due at 1 s of this 1.5 s run;
    # only a loop more than 0.5 s late can miss it, and then the run says so.
    late_s = TICK_NS / 1e9 + result.generator.max_loop_lag_ms / 1e3
    times = [sample["t_s"] for sample in samples]
    assert 0 <= times[0] <= late_s, samples
    for earlier, later in itertools.pairwise(times):
        assert 1.0 <= later - earlier <= 1.0 + late_s, samples
    assert times[-1] + 1.0 + late_s >= result.summary.duration_s, samples  # none missed
    if late_s < duration_s - 1.0:
        assert len(samples) == 2, samples
    limit = scenario.load_section.connections * scenario.receive_buffer
    for sample in samples:
        posted = sample["engine_posted_recv_bytes"]
        assert 0 <= posted <= limit if recv_mode == "buffered" else posted == 0
        assert "engine_posted_bytes" not in sample
        if sample["measurable"]:
            assert sample.get("sunreclaim_bytes") or sample.get("process_nonpaged_bytes")
        else:
            assert sample["reason"].startswith("not measurable here")
    if recv_mode == "buffered":  # a connection's receive stays posted while it waits
        assert samples[-1]["engine_posted_recv_bytes"] > 0
    assert RunResult.from_dict(result.to_dict()).memory == samples


def test_connect_before_start_opens_the_pool_before_the_schedule_begins() -> None:
    """An open-model pool of 2,000 connections at 2,000 requests/s: opened at the start
    instant, the first requests wait while the connects are in flight (measured: 560 of
    2,000 waited, schedule lag p99 236 ms, the run invalid); opened before it
    (``connect_before_start``), none waits for a connection."""
    scenario = parse_scenario(
        "name: preconnected\ntarget: builtin:echo\nload:\n  model: open\n"
        "  connections: 2000\n  phases: [{duration: 1s, rate: 2k/s}]\n"
    )
    result = run(scenario, connect_before_start=True)
    summary = result.summary
    assert summary.connects == 2000 and summary.errors == {}
    assert summary.waited_for_connection == 0
    assert summary.requests + (summary.unsent or 0) >= 1800  # about 2,000 were due
    _check_consistent(result)
