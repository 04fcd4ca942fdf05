"""io_uring's receive features end to end: ``receive: buffer-ring`` and ``register_buffers``
through ``runner.run`` against the built-in echo target, and the clear refusals where they
do not apply (another backend, another receive mode)."""

from __future__ import annotations

import time

import pytest

from loadgen.config.plan import LoadPlan
from loadgen.config.scenario import Scenario, ScenarioError, parse_scenario
from loadgen.engine import select_backend
from loadgen.engine.base import FeatureUnavailable
from loadgen.load.recorder import Recorder
from loadgen.load.requests import LoadClient
from loadgen.result.model import RunResult
from loadgen.run.api import run
from loadgen.run.wiring import client_config
from tests.engine.conftest import AVAILABLE
from tests.shared_targets import SharedTargets

KiB = 1024


def _scenario(target: str = "builtin:echo", **fields: object) -> Scenario:
    settings = {"connections": 20, "duration": "1s", "message_size": "1KiB", **fields}
    text = f"name: recv\ntarget: {target}\n"
    text += "".join(f"{key}: {value}\n" for key, value in settings.items())
    return parse_scenario(text, "recv.yaml")


def _needs_ring() -> None:
    if "io_uring" not in AVAILABLE:
        pytest.skip("io_uring is not available here")
    engine = select_backend("io_uring")
    try:
        if not engine.supports_buffer_ring:
            pytest.skip("this kernel's io_uring has no multishot receive (Linux < 6.1)")
    finally:
        engine.shutdown()


def _vm_pin_bytes() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmPin:"):
                return int(line.split()[1]) * KiB
    raise AssertionError("no VmPin in /proc/self/status")


def _check_echo(result: RunResult, connections: int) -> None:
    summary = result.summary
    assert not result.partial and result.stop_reason == "completed"
    assert summary.errors == {}
    assert summary.requests > 100
    assert summary.connects == connections
    # Every echo was verified byte for byte on arrival; each counted byte is a verified one.
    assert summary.bytes_received == summary.requests * KiB
    assert RunResult.from_dict(result.to_dict()) == result


def test_buffer_ring_echo_run(echo_target: str) -> None:
    _needs_ring()
    result = run(
        _scenario(echo_target, receive="buffer-ring", ring_buffers=64, receive_buffer="4KiB"),
        backend="io_uring",
    )
    _check_echo(result, 20)
    assert result.environment.recv_mode == "buffer-ring"
    assert result.environment.recv_options == {
        "ring_buffers": 64,
        "ring_buffer_bytes": 4 * KiB,
        "ring_bytes": 64 * 4 * KiB,
    }
    assert result.scenario["receive"] == "buffer-ring" and result.scenario["ring_buffers"] == 64
    assert result.generator.ring_enobufs is not None
    # Between batches every buffer is back in the ring: the engine's posted receive bytes
    # are the ring, whatever the number of connections.
    assert result.memory
    assert {sample["engine_posted_recv_bytes"] for sample in result.memory} == {64 * 4 * KiB}


def test_a_ring_smaller_than_the_echoes_in_flight_runs_dry_and_loses_nothing(
    echo_target: str,
) -> None:
    _needs_ring()
    # 2 buffers for 20 connections with an echo each in flight: receives keep ending with
    # ENOBUFS and are armed again; the data waits in the sockets meanwhile.
    result = run(
        _scenario(echo_target, receive="buffer-ring", ring_buffers=2, receive_buffer="1KiB"),
        backend="io_uring",
    )
    _check_echo(result, 20)
    assert result.generator.ring_enobufs is not None and result.generator.ring_enobufs > 0


def test_after_a_run_every_ring_buffer_is_back_in_the_ring(
    shared_targets: SharedTargets,
) -> None:
    _needs_ring()
    # Closing cancels the armed receives; completions still in flight then may carry
    # buffers, which close_all gives back: the ring ends whole, nothing is pending.
    scenario = _scenario(receive="buffer-ring", ring_buffers=4, receive_buffer="1KiB")
    engine = select_backend("io_uring")
    try:
        address = shared_targets.address("echo")
        recorder = Recorder(time.perf_counter_ns())
        client = LoadClient(
            engine,
            client_config(scenario, LoadPlan.from_scenario(scenario), [address]),
            recorder,
        )
        client.run(recorder.start_ns + 500_000_000)
        assert recorder.requests > 0 and dict(recorder.errors) == {}
        client.close_all()
        assert engine.pending() == 0
        assert engine.posted_recv_bytes() == 4 * KiB
    finally:
        engine.shutdown()


CONNECTIONS = 64
BUFFER = 64 * KiB


def test_registered_buffers_show_in_vm_pin_during_the_run(echo_target: str) -> None:
    if "io_uring" not in AVAILABLE:
        pytest.skip("registered buffers need the io_uring backend")
    before = _vm_pin_bytes()
    result = run(
        _scenario(
            echo_target, connections=CONNECTIONS, receive_buffer="64KiB", register_buffers="true"
        ),
        backend="io_uring",
    )
    _check_echo(result, CONNECTIONS)
    assert result.environment.recv_options == {"receive_buffer": BUFFER, "register_buffers": True}
    pinned = [sample["vm_pin_bytes"] for sample in result.memory]
    assert pinned and all(value is not None for value in pinned), pinned
    # Registration pins every buffer before any data moves: each sample shows them all.
    grown = min(pinned) - before
    assert CONNECTIONS * BUFFER <= grown <= CONNECTIONS * BUFFER + (1 << 20), (before, pinned)
    # The pins go with the ring (torn down by the kernel shortly after the run).
    deadline = time.monotonic() + 10
    while _vm_pin_bytes() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _vm_pin_bytes() <= before


def test_unregistered_buffers_pin_nothing(echo_target: str) -> None:
    if "io_uring" not in AVAILABLE:
        pytest.skip("a baseline for registered buffers, on the io_uring backend")
    before = _vm_pin_bytes()
    result = run(_scenario(echo_target, connections=CONNECTIONS), backend="io_uring")
    _check_echo(result, CONNECTIONS)
    assert all(sample["vm_pin_bytes"] - before < BUFFER for sample in result.memory)


@pytest.mark.parametrize("backend", [name for name in AVAILABLE if name != "io_uring"])
def test_buffer_ring_elsewhere_is_refused_before_the_run(backend: str) -> None:
    started = time.monotonic()
    with pytest.raises(FeatureUnavailable) as refused:
        run(_scenario(receive="buffer-ring"), backend=backend)
    message = str(refused.value)
    assert "buffer-ring needs the io_uring backend" in message
    assert f"the {backend} backend has no provided-buffer ring" in message
    with pytest.raises(FeatureUnavailable, match=f"the {backend} backend cannot register"):
        run(_scenario(register_buffers="true"), backend=backend)
    assert time.monotonic() - started < 5  # refused up front, not after a 1 s run


def test_register_buffers_needs_buffered_receives() -> None:
    with pytest.raises(ScenarioError) as refused:
        _scenario(receive="zero-byte", register_buffers="true")
    # file:line: field: why (register_buffers is line 7 of the generated file).
    assert str(refused.value).startswith("recv.yaml:7: register_buffers: registers the per-")
    assert "receive: zero-byte has none to register (it posts no buffer)" in str(refused.value)
    with pytest.raises(ScenarioError, match=r"recv\.yaml:7: register_buffers: .*shared ring"):
        _scenario(receive="buffer-ring", register_buffers="true")


def test_ring_buffers_must_be_a_power_of_two_the_kernel_takes() -> None:
    with pytest.raises(ScenarioError, match=r"recv\.yaml:7: ring_buffers: must be a power of two"):
        _scenario(receive="buffer-ring", ring_buffers=100)
    with pytest.raises(ScenarioError, match="ring_buffers: must be at most 32768, got 65536"):
        _scenario(receive="buffer-ring", ring_buffers=65536)
    assert _scenario(receive="buffer-ring", ring_buffers=1024).ring_buffer_count == 1024
    assert _scenario(receive="buffer-ring").ring_buffer_count == 256
