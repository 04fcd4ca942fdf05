"""``ShardSpec.connect_before_start``: a shard connects before it reports ready.

Each test runs one shard (``run_shard``) against a real built-in target on loopback, through
a real ``ShardChannel`` whose ``ready()`` looks, at the moment it is called, at the client's
sockets to the target (``/proc/net/tcp``: how many are established; ``ss -ti``: how many
bytes they have sent), then returns a start instant a little later, as a coordinator would.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from loadgen.config.scenario import parse_scenario
from loadgen.result.model import RunResult
from loadgen.run.measure import run_shard
from loadgen.run.progress import Tick
from loadgen.run.shard import ShardSpec
from tests.adversarial.servers import free_port
from tests.engine.conftest import AVAILABLE
from tests.shared_targets import SharedTargets

pytestmark = pytest.mark.skipif(
    sys.platform != "linux", reason="reads the client's sockets from /proc/net/tcp (Linux)"
)

#: Receive modes per backend (buffer-ring is io_uring's only).
MODES = [
    (backend, mode)
    for backend in AVAILABLE
    for mode in ("buffered", "zero-byte", "buffer-ring")
    if mode != "buffer-ring" or backend == "io_uring"
]


def established_to(port: int) -> int:
    """Sockets of this machine in ESTABLISHED whose remote end is 127.0.0.1:``port``."""
    count = 0
    for table in (Path("/proc/net/tcp"), Path("/proc/net/tcp6")):
        if not table.exists():
            continue
        for line in table.read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "01" and int(fields[2].rsplit(":", 1)[1], 16) == port:
                count += 1
    return count


def bytes_sent_to(port: int) -> int | None:
    """Payload bytes the sockets to 127.0.0.1:``port`` have sent (tcp_info through ``ss``;
    None where ``ss`` is not installed)."""
    ss = shutil.which("ss")
    if ss is None:
        return None
    out = subprocess.run(
        [ss, "-Htin", "state", "established", "dst", f"127.0.0.1:{port}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return sum(int(n) for n in re.findall(r"\bbytes_sent:(\d+)", out))


class WatchingChannel:
    """A coordinator of one shard: at ``ready()`` it notes the client's connections to the
    target, waits ``hold_s`` (other shards still connecting), and starts ``lead_s`` later."""

    def __init__(self, port: int, hold_s: float = 0.0, lead_s: float = 0.2) -> None:
        self.port = port
        self.hold_s = hold_s
        self.lead_s = lead_s
        self.made_ns = time.perf_counter_ns()
        self.ready_after_s: float | None = None
        self.established: int | None = None
        self.bytes_sent: int | None = None
        self.start_ns = 0

    def ready(self, shard: int) -> int:
        self.ready_after_s = (time.perf_counter_ns() - self.made_ns) / 1e9
        self.established = established_to(self.port)
        self.bytes_sent = bytes_sent_to(self.port)
        time.sleep(self.hold_s)
        self.start_ns = time.perf_counter_ns() + int(self.lead_s * 1e9)
        return self.start_ns

    def tick(self, tick: Tick) -> None:
        pass

    def wait_stop(self, timeout_s: float) -> bool:
        time.sleep(timeout_s)
        return False

    @property
    def wants_ticks(self) -> bool:
        return False


@pytest.fixture
def echo_on(shared_targets: SharedTargets) -> Callable[[str], tuple[str, int]]:
    """The session's built-in echo target on a backend (started once per backend): a
    client's sockets to its port are this test's alone, since a run closes all of its own."""
    return lambda backend: shared_targets.address("echo", backend)


def run_one(
    text: str,
    address: tuple[str, int],
    backend: str,
    preconnect: bool,
    channel: WatchingChannel,
) -> RunResult:
    scenario = parse_scenario(f"name: pre\ntarget: {address[0]}:{address[1]}\n{text}")
    spec = ShardSpec(
        scenario=scenario,
        index=0,
        count=1,
        backend=backend,
        addresses=(address,),
        connect_before_start=preconnect,
    )
    return run_shard(spec, channel)


def check_consistent(result: RunResult) -> None:
    summary = result.summary
    assert result.stop_reason == "completed" and not result.partial
    assert sum(i.requests for i in result.intervals) == summary.requests
    errors: dict[str, int] = {}
    for interval in result.intervals:
        for kind, count in interval.errors.items():
            errors[kind] = errors.get(kind, 0) + count
    assert errors == summary.errors
    assert RunResult.from_dict(result.to_dict()) == result


# --- closed model ------------------------------------------------------------------------


@pytest.mark.parametrize(("backend", "receive"), MODES)
def test_closed_model_connects_before_ready(
    echo_on: Callable[[str], tuple[str, int]], backend: str, receive: str
) -> None:
    n = 200
    text = f"connections: {n}\nduration: 1s\nmessage_size: 64B\nreceive: {receive}\n"
    address = echo_on(backend)
    channel = WatchingChannel(address[1])
    result = run_one(text, address, backend, True, channel)
    assert channel.established == n  # every connection open when ready() was called
    if channel.bytes_sent is not None:
        assert channel.bytes_sent == 0  # and nothing sent on any of them
    summary = result.summary
    assert summary.errors == {} and summary.requests > n
    # The connects were this run's: counted once each, their latencies in the histogram.
    assert summary.connects == n and summary.connect_latency_us.count == n
    assert summary.connections == n
    # The timeline starts at the start instant, not when the connects began: a 1 s run
    # is one interval (a recorder left on its earlier provisional start would close its
    # first interval early and add a second).
    assert [(i.start_s, i.duration_s) for i in result.intervals] == [(0.0, 1.0)]
    assert result.intervals[0].requests > 0
    assert summary.duration_s >= 1.0
    if receive == "buffered":
        # The memory sample at the start sees every receive buffer posted already.
        assert result.memory[0]["engine_posted_recv_bytes"] == n * 64 * 1024
    check_consistent(result)


@pytest.mark.parametrize("backend", AVAILABLE)
def test_closed_model_without_preconnect_connects_at_the_start(
    echo_on: Callable[[str], tuple[str, int]], backend: str
) -> None:
    n = 200
    address = echo_on(backend)
    channel = WatchingChannel(address[1])
    result = run_one(f"connections: {n}\nduration: 1s\n", address, backend, False, channel)
    assert channel.established == 0
    assert result.memory[0]["engine_posted_recv_bytes"] == 0  # sampled before any connect
    summary = result.summary
    assert summary.errors == {} and summary.requests > n and summary.connects == n
    check_consistent(result)


def test_closed_ramp_preconnects_its_first_count(
    echo_on: Callable[[str], tuple[str, int]],
) -> None:
    backend = AVAILABLE[0]
    ramps = {
        "10 to 40": 10,  # the ramp's count at elapsed 0
        "0 to 20": 0,  # a ramp from zero opens nothing before the start
    }
    address = echo_on(backend)
    for ramp, first in ramps.items():
        text = f"load:\n  connections: 40\n  phases: [{{duration: 1s, connections: {ramp}}}]\n"
        channel = WatchingChannel(address[1])
        result = run_one(text, address, backend, True, channel)
        assert channel.established == first, ramp
        summary = result.summary
        assert summary.errors == {} and summary.requests > 0, ramp
        assert summary.connects > first, ramp  # the ramp still opened the rest
        check_consistent(result)


def test_idle_first_phase_holds_preconnected_connections(
    echo_on: Callable[[str], tuple[str, int]],
) -> None:
    backend = AVAILABLE[0]
    n = 20
    text = (
        f"load:\n  connections: {n}\n  phases: [{{duration: 1s, idle: true}}, {{duration: 1s}}]\n"
    )
    address = echo_on(backend)
    channel = WatchingChannel(address[1])
    result = run_one(text, address, backend, True, channel)
    assert channel.established == n
    first, second = result.intervals[0], result.intervals[1]
    assert first.requests == 0 and second.requests > 0  # idle, then traffic
    assert result.summary.errors == {} and result.summary.connects == n
    check_consistent(result)


# --- open model --------------------------------------------------------------------------


@pytest.mark.parametrize("backend", AVAILABLE)
def test_open_model_connections_are_free_for_the_first_request(
    echo_on: Callable[[str], tuple[str, int]], backend: str
) -> None:
    n, rate = 100, 100
    text = (
        f"load:\n  model: open\n  connections: {n}\n  phases: [{{duration: 2s, rate: {rate}/s}}]\n"
    )
    address = echo_on(backend)
    # The coordinator holds the start back 1 s after ready (other shards connecting).
    channel = WatchingChannel(address[1], hold_s=1.0)
    result = run_one(text, address, backend, True, channel)
    plain = run_one(text, address, backend, False, WatchingChannel(address[1]))
    assert channel.established == n
    if channel.bytes_sent is not None:
        assert channel.bytes_sent == 0
    summary = result.summary
    assert summary.errors == {} and summary.connects == n
    # 200 requests due at 0, 10 ms, ... 1.99 s: each sent, answered or still in flight.
    assert summary.unsent == 0
    assert summary.requests + summary.in_flight_at_end == rate * 2
    # Connections already open: the first due request found one free. Without
    # preconnecting, the request due at 0 has to wait for the connects.
    assert summary.waited_for_connection == 0
    assert plain.summary.waited_for_connection is not None
    assert plain.summary.waited_for_connection >= 1
    # The schedule starts at the start instant, not when the connects began (1 s earlier
    # and more): no request left a second late.
    assert summary.schedule_lag_us is not None and summary.schedule_lag_us.max is not None
    assert summary.schedule_lag_us.max < 1_000_000
    assert [i.start_s for i in result.intervals] == [0.0, 1.0]
    check_consistent(result)


# --- streams -----------------------------------------------------------------------------


@pytest.mark.parametrize(("backend", "receive"), MODES)
def test_stream_connects_before_ready_and_sends_its_header_at_the_start(
    shared_targets: SharedTargets, backend: str, receive: str
) -> None:
    n = 20
    # Paced: each transfer takes 128 KiB / 512 KiB/s = 0.25 s from its start.
    text = (
        "protocol: {stream: {pattern: push, bytes: 128KiB, segment: 16KiB, rate: 512KiB/s}}\n"
        f"connections: {n}\nduration: 1s\nreceive: {receive}\n"
    )
    address = shared_targets.address("stream", backend)
    channel = WatchingChannel(address[1], hold_s=1.0)
    result = run_one(text, address, backend, True, channel)
    assert channel.established == n
    if channel.bytes_sent is not None:
        assert channel.bytes_sent == 0  # not even the header
    summary = result.summary
    assert summary.errors == {} and summary.requests >= n
    # Every connect is a transfer that finished or one still open at the end.
    assert summary.connects == summary.requests + summary.in_flight_at_end
    # A transfer's time runs from the start instant for the pre-opened connections, not
    # from their connect (over a second before): pacing starts at the start too.
    assert summary.latency_us.min is not None and summary.latency_us.min >= 240_000
    assert summary.latency_us.max is not None and summary.latency_us.max < 1_000_000
    check_consistent(result)


# --- targets that do not answer ----------------------------------------------------------


def test_refused_target_reaches_ready_and_completes() -> None:
    backend = AVAILABLE[0]
    port = free_port()  # nothing listens here: every connect is refused
    channel = WatchingChannel(port)
    result = run_one(
        "connections: 20\nduration: 1s\ntimeouts: {connect: 2s}\n",
        ("127.0.0.1", port),
        backend,
        True,
        channel,
    )
    assert channel.ready_after_s is not None and channel.ready_after_s < 2.0 + 3.0
    assert channel.established == 0
    summary = result.summary
    assert summary.requests == 0 and summary.connects == 0
    assert set(summary.errors) == {"refused"}
    # One refused connect per slot before the start (in interval 0), then the run's retries.
    assert summary.errors["refused"] >= 20
    assert result.intervals[0].errors.get("refused", 0) >= 20
    check_consistent(result)


def test_silent_target_bounds_the_wait_by_the_connect_timeout() -> None:
    """A listener that never accepts, with a backlog of 1: the SYNs beyond it are dropped,
    so those connects hang until the connect timeout, which ends the wait for ready."""
    backend = AVAILABLE[0]
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    try:
        channel = WatchingChannel(port)
        result = run_one(
            "connections: 10\nduration: 1s\ntimeouts: {connect: 500ms, request: 300ms}\n",
            ("127.0.0.1", port),
            backend,
            True,
            channel,
        )
    finally:
        listener.close()
    assert channel.ready_after_s is not None
    assert channel.ready_after_s >= 0.5  # waited for the connects that hang, no longer
    assert channel.ready_after_s < 0.5 + 3.0
    assert channel.established is not None and channel.established < 10
    summary = result.summary
    assert summary.requests == 0
    assert result.intervals[0].errors.get("timeout", 0) >= 10 - channel.established
    check_consistent(result)
