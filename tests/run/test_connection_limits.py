"""Tens of thousands of connections: fitting a run to the machine's limits (descriptors per
process, ports per source address and target, TIME_WAIT of churn, memory), spreading over
processes and loopback source addresses where possible, refusing with the fix otherwise;
and ``close: rst`` for churn.

The arithmetic is checked against a given ``Machine`` (a narrow port range, a small
descriptor limit) so nothing here needs a sysctl; the real runs are small: a few hundred
connections over several source addresses from two processes (checked from the server's
side), and one churn run whose sockets must leave no TIME_WAIT behind.
"""

from __future__ import annotations

import ipaddress
import selectors
import socket
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from loadgen.config.plan import LoadPlan
from loadgen.config.scenario import Scenario, parse_scenario
from loadgen.run.api import run
from loadgen.run.limits import (
    CLOSED_CHURN_PER_PROCESS,
    ConnectionLimitError,
    Machine,
    check_ports,
    churn_rate,
    estimate_memory,
    fit_run,
)
from loadgen.targets.process import builtin_target

GIB = 1024**3
LINUX = Machine(nofile_hard=20_000, port_range=(32768, 60999), mem_available=24 * GIB)
linux_only = pytest.mark.skipif(
    sys.platform != "linux", reason="IP_BIND_ADDRESS_NO_PORT, 127.0.0.0/8 and /proc/net/tcp"
)


def scenario(text: str) -> Scenario:
    return parse_scenario("name: t\n" + text)


# --- descriptors: per process, client and target ------------------------------------------


def test_50k_connections_are_spread_over_processes_and_source_addresses() -> None:
    fit = fit_run(
        scenario("target: builtin:echo\nconnections: 50000\nduration: 1s\n"), 1, 1, machine=LINUX
    )
    assert fit.processes == 3  # 50,000 / (20,000 - 64) per process
    assert fit.target_processes == 3  # with 10% headroom for SO_REUSEPORT's uneven spread
    sources = fit.scenario.source_addresses()
    # 3 shards of 16,667 connections, at most half of 28,232 ports per source: 2 each.
    assert sources == [f"127.0.0.{n}" for n in range(1, 7)]
    text = "\n".join(fit.notices)
    assert "3 client processes" in text and "3 target processes" in text
    assert "6 loopback source addresses" in text and "28,232" in text


def test_a_process_count_given_too_small_is_refused_with_the_count_that_fits() -> None:
    big = scenario("target: builtin:echo\nconnections: 50000\nduration: 1s\n")
    with pytest.raises(ConnectionLimitError) as caught:
        fit_run(big, 2, 3, processes_fixed=True, machine=LINUX)
    message = str(caught.value)
    assert "--processes 3" in message and "RLIMIT_NOFILE" in message
    assert "ulimit -Hn" in message and "LimitNOFILE" in message and "limits.conf" in message
    with pytest.raises(ConnectionLimitError) as caught:
        fit_run(big, 3, 2, target_processes_fixed=True, machine=LINUX)
    assert "--target-processes 3" in str(caught.value)


def test_a_builtin_target_without_so_reuseport_cannot_be_spread() -> None:
    windows_like = Machine(20_000, None, None, reuse_port=False)
    with pytest.raises(ConnectionLimitError, match="SO_REUSEPORT"):
        fit_run(
            scenario("target: builtin:echo\nconnections: 30000\nduration: 1s\n"),
            2,
            1,
            machine=windows_like,
        )


def test_counts_that_fit_are_left_alone() -> None:
    small = scenario("target: builtin:echo\nconnections: 19000\nduration: 1s\n")
    fit = fit_run(small, 1, 1, machine=LINUX)
    assert (fit.processes, fit.target_processes, fit.notices) == (1, 1, [])
    assert fit.scenario.source is None


# --- ports ----------------------------------------------------------------------------------


def test_ports_count_the_pairs_connections_really_use() -> None:
    ports = (32768, 60999)
    # Connection i pairs source i % 2 with target i % 2: two pairs, not four.
    check_ports(2 * 28_232, 2, 2, port_range=ports)
    with pytest.raises(ConnectionLimitError, match="lcm"):
        check_ports(2 * 28_232 + 1, 2, 2, port_range=ports)
    check_ports(6 * 28_232, 2, 3, port_range=ports)  # lcm(2, 3) = 6 pairs


def test_a_remote_target_past_one_source_address_is_refused_with_the_ways_out() -> None:
    remote = scenario("target: 192.0.2.10:80\nconnections: 30000\nduration: 1s\n")
    with pytest.raises(ConnectionLimitError) as caught:
        fit_run(remote, 2, machine=LINUX)
    message = str(caught.value)
    assert "32768-60999" in message and "28,232" in message
    assert "ip_local_port_range" in message and "source:" in message


def test_given_source_addresses_that_are_too_few_are_refused() -> None:
    given = scenario(
        "target: 127.0.0.1:9\nsource: 127.0.0.1-127.0.0.2\nconnections: 60000\nduration: 1s\n"
    )
    with pytest.raises(ConnectionLimitError, match="2 source address"):
        fit_run(given, 4, machine=LINUX)


# --- churn: TIME_WAIT ----------------------------------------------------------------------

CHURN = """
target: {target}
close: {close}
load:
  model: open
  connections: 100
  requests_per_connection: 1
  phases: [{{duration: 10s, rate: 1000}}]
"""


def test_fin_churn_whose_time_wait_exceeds_one_address_is_spread_and_rst_needs_nothing() -> None:
    machine = Machine(20_000, (32768, 60999), 24 * GIB, time_wait_s=60.0)
    fin = fit_run(scenario(CHURN.format(target="127.0.0.1:9", close="fin")), 1, machine=machine)
    # 1,000 closes/s x 60 s = 60,000 ports in TIME_WAIT + 100 held: 5 addresses of 14,116.
    assert fin.scenario.source_addresses() == [f"127.0.0.{n}" for n in range(1, 6)]
    assert "60,000 in TIME_WAIT" in fin.notices[0]
    rst = fit_run(scenario(CHURN.format(target="127.0.0.1:9", close="rst")), 1, machine=machine)
    assert rst.scenario.source is None and rst.notices == []
    with pytest.raises(ConnectionLimitError, match="close: rst"):  # a remote target: refused
        fit_run(scenario(CHURN.format(target="192.0.2.10:80", close="fin")), 1, machine=machine)


def _localhost_is_ipv4_loopback_only() -> bool:
    try:
        infos = socket.getaddrinfo("localhost", None, type=socket.SOCK_STREAM)
    except OSError:
        return False
    return {sockaddr[0] for *_, sockaddr in infos} <= {"127.0.0.1"}


@pytest.mark.skipif(
    not _localhost_is_ipv4_loopback_only(),
    reason="localhost does not resolve to 127.0.0.1 alone here (an IPv6 address too, or none)",
)
def test_a_loopback_host_name_is_spread_like_its_address() -> None:
    machine = Machine(20_000, (32768, 60999), 24 * GIB, time_wait_s=60.0)
    named = fit_run(scenario(CHURN.format(target="localhost:9", close="fin")), 1, machine=machine)
    assert named.scenario.source_addresses() == [f"127.0.0.{n}" for n in range(1, 6)]
    assert named.scenario.targets == ["localhost:9"]  # the target as it was written


def test_a_name_that_does_not_resolve_is_not_loopback() -> None:
    machine = Machine(20_000, (32768, 60999), 24 * GIB, time_wait_s=60.0)
    with pytest.raises(ConnectionLimitError, match="close: rst"):
        fit_run(
            scenario(CHURN.format(target="no-such-host.invalid:80", close="fin")),
            1,
            machine=machine,
        )


CLOSED_CHURN = """
target: 127.0.0.1:9
load:
  connections: {connections}
  requests_per_connection: 1
  phases:
{phases}"""

#: Closed-model churn per phase: each phase's connections at most once per its own think
#: time (a phase without one at CLOSED_CHURN_PER_PROCESS a process); the busiest counts.
CHURN_PHASES = {
    "a thinking phase and one that does not: the one that does not sets the rate": (
        10,
        "    - {duration: 1s, think_time: 1s}\n    - {duration: 1s}\n",
        CLOSED_CHURN_PER_PROCESS,
    ),
    "the busiest phase: its own connections over its own think time": (
        1000,
        "    - {duration: 1s, think_time: 1s}\n"  # 1,000 connections / 1 s
        "    - {duration: 1s, connections: 10, think_time: 2ms}\n",  # 10 / 2 ms = 5,000/s
        5000,
    ),
    "idle phases close nothing": (
        100,
        "    - {duration: 1s, idle: true}\n    - {duration: 1s, think_time: 100ms}\n",
        1000,
    ),
}


@pytest.mark.parametrize(
    ("connections", "phases", "closes_per_s"), CHURN_PHASES.values(), ids=CHURN_PHASES.keys()
)
def test_closed_churn_rate_uses_each_phases_think_time(
    connections: int, phases: str, closes_per_s: float
) -> None:
    text = CLOSED_CHURN.format(connections=connections, phases=phases)
    plan = LoadPlan.from_scenario(scenario(text))
    assert churn_rate(plan, processes=1) == pytest.approx(closes_per_s)


# --- memory ---------------------------------------------------------------------------------


def test_memory_past_mem_available_is_refused_with_the_numbers() -> None:
    small = Machine(20_000, (32768, 60999), 2 * GIB)
    buffered = scenario("target: builtin:echo\nconnections: 40000\nduration: 1s\n")
    with pytest.raises(ConnectionLimitError) as caught:
        fit_run(buffered, 1, machine=small)
    message = str(caught.value)
    assert "MemAvailable is 2,048 MiB" in message and "64 KiB receive buffer" in message
    assert "zero-byte" in message
    zero = buffered.model_copy(update={"receive": "zero-byte"})
    fit_run(zero, 1, machine=small)  # no 64 KiB buffer per connection: fits
    assert estimate_memory(zero, 2, 2) < estimate_memory(buffered, 2, 2)


# --- real runs ------------------------------------------------------------------------------


@contextmanager
def recording_echo_server() -> Iterator[tuple[int, list[str]]]:
    """A plain echo server (selectors, one thread) that records each peer's address."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4096)
    listener.setblocking(False)
    peers: list[str] = []
    stop = threading.Event()

    def serve() -> None:
        selector = selectors.DefaultSelector()
        selector.register(listener, selectors.EVENT_READ)
        while not stop.is_set():
            for key, _ in selector.select(0.05):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                if sock is listener:
                    while True:
                        try:
                            conn, peer = listener.accept()
                        except BlockingIOError:
                            break
                        peers.append(peer[0])
                        conn.setblocking(True)  # small echoes: a send never blocks long
                        selector.register(conn, selectors.EVENT_READ)
                    continue
                try:
                    data = sock.recv(65536)
                except OSError:
                    data = b""
                if data:
                    sock.sendall(data)
                else:
                    selector.unregister(sock)
                    sock.close()
        for key in list(selector.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], peers
    finally:
        stop.set()
        thread.join(5)


@linux_only
def test_two_processes_spread_over_several_source_addresses_seen_by_the_server() -> None:
    # A 100-port range (as if ip_local_port_range were narrow) makes 300 connections need
    # source addresses: 2 shards x 150 connections, 50 ports each = 3 addresses a shard.
    narrow = Machine(20_000, (40000, 40099), 24 * GIB)
    with recording_echo_server() as (port, peers):
        base = scenario(f"target: 127.0.0.1:{port}\nconnections: 300\nduration: 1.5s\n")
        fit = fit_run(base, 2, machine=narrow)
        expected = [f"127.0.0.{n}" for n in range(1, 7)]
        assert fit.processes == 2 and fit.scenario.source_addresses() == expected
        result = run(fit.scenario, processes=fit.processes)
    assert result.summary.errors == {}, result.summary.errors
    assert result.summary.requests > 0 and result.environment.processes == 2
    assert len(peers) == 300
    counts = {address: peers.count(address) for address in expected}
    assert set(peers) == set(expected), counts  # every address used, no other
    assert all(count == 50 for count in counts.values()), counts  # 150 a shard over 3


def _time_wait_count(port: int) -> int:
    """TIME_WAIT sockets (state 06) with ``port`` at either end, IPv4 and IPv6."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, remote, state = fields[1], fields[2], fields[3]
            ports = {int(local.rsplit(":", 1)[1], 16), int(remote.rsplit(":", 1)[1], 16)}
            if state == "06" and port in ports:
                count += 1
    return count


def _churn(port: int, close: str) -> Scenario:
    return scenario(
        f"target: 127.0.0.1:{port}\nclose: {close}\nload:\n  connections: 20\n"
        "  requests_per_connection: 1\n  phases: [{duration: 1s}]\n"
    )


@linux_only
def test_churn_with_close_rst_leaves_no_time_wait() -> None:
    with builtin_target("echo") as (host, port):
        assert ipaddress.ip_address(host).is_loopback
        result = run(_churn(port, "rst"))
        assert result.summary.errors == {}, result.summary.errors  # no EADDRNOTAVAIL either
        assert result.summary.connects > 200  # churned: many connections, one request each
        assert result.summary.connect_latency_us.count == result.summary.connects
        assert _time_wait_count(port) == 0
        # The control: the same churn closing with FIN leaves the closed ports in TIME_WAIT
        # (60 s), so the count above could have failed.
        fin = run(_churn(port, "fin"))
        assert fin.summary.errors == {}, fin.summary.errors
        assert _time_wait_count(port) > 100
