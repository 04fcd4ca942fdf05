"""A distributed run across network namespaces: two "hosts" with network stacks of their own.

The LocalCluster tests (tests/distributed/test_distributed.py) run every worker on this
host's loopback.
Here each worker lives in its own network namespace (its own interfaces, addresses, routes,
loopback and socket tables), joined to this one by a veth pair, as separate machines on one
switch would be: the scheduler, the workers and the echo target talk over 10.77.x.x
addresses, the load crosses the veths, and nothing may assume loopback. The last worker also
runs in a time namespace whose CLOCK_MONOTONIC is an hour ahead (`unshare --time
--monotonic`), as another machine's monotonic clock is unrelated to ours: the start instant
must reach it through the wall clock and its measured offset, never as a monotonic reading.
(One kernel and one wall clock still: offsets come out near zero; delay emulation, tc netem,
is not in this kernel.)

Needs root (CAP_NET_ADMIN), iproute2 and util-linux's unshare with time namespaces (Linux
5.6+); where they are refused the test skips and says so.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from loadgen.config.scenario import parse_scenario
from loadgen.targets.process import builtin_target

pytest.importorskip(
    "distributed", reason="the 'distributed' extra is not installed (the test extra has it)"
)
from loadgen.distributed.coordinator import run_cluster_hosts

HOSTS = 2
SUBNET = "10.77"
#: The last worker's CLOCK_MONOTONIC runs this far ahead of ours (a time namespace).
MONOTONIC_SHIFT_S = 3600
MONOTONIC_AHEAD = ["unshare", "--time", "--monotonic", str(MONOTONIC_SHIFT_S), "--fork"]


def _ip(*arguments: str) -> None:
    subprocess.run(["ip", *arguments], check=True, capture_output=True, text=True)


def _namespaces_available() -> str | None:
    """Why network namespaces cannot be made here (None: they can)."""
    if shutil.which("ip") is None:
        return "iproute2's `ip` is not installed"
    probe = f"lgprobe{uuid.uuid4().hex[:6]}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"`ip netns add` was refused: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    shifted = subprocess.run(
        [*MONOTONIC_AHEAD, sys.executable, "-c", "import time; print(time.monotonic())"],
        capture_output=True,
        text=True,
    )
    if shifted.returncode != 0:
        return f"`unshare --time` was refused: {shifted.stderr.strip()}"
    if float(shifted.stdout) < time.monotonic() + MONOTONIC_SHIFT_S / 2:
        return "`unshare --time --monotonic` did not move CLOCK_MONOTONIC"
    return None


@pytest.fixture(scope="module")
def namespaces() -> Iterator[list[str]]:
    """``HOSTS`` namespaces, namespace n at SUBNET.n.2, this one at SUBNET.n.1 on its veth."""
    problem = _namespaces_available()
    if problem:
        pytest.skip(f"network namespaces are not available here: {problem}")
    tag = uuid.uuid4().hex[:4]
    names = [f"lg{tag}h{n}" for n in range(1, HOSTS + 1)]
    try:
        for n, name in enumerate(names, 1):
            outside, inside = f"lg{tag}o{n}", f"lg{tag}i{n}"
            _ip("netns", "add", name)
            _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
            _ip("link", "set", inside, "netns", name)
            _ip("addr", "add", f"{SUBNET}.{n}.1/24", "dev", outside)
            _ip("link", "set", outside, "up")
            _ip("-n", name, "addr", "add", f"{SUBNET}.{n}.2/24", "dev", inside)
            _ip("-n", name, "link", "set", inside, "up")
            _ip("-n", name, "link", "set", "lo", "up")
            _ip("-n", name, "route", "add", "default", "via", f"{SUBNET}.{n}.1")
        yield names
    finally:
        for n, name in enumerate(names, 1):
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
            subprocess.run(["ip", "link", "del", f"lg{tag}o{n}"], capture_output=True)


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("0.0.0.0", 0))
        return int(probe.getsockname()[1])


def _wait_for_workers(client: Any, count: int, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while len(client.scheduler_info(n_workers=-1)["workers"]) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"fewer than {count} workers joined within {timeout_s:.0f} s")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def cluster(namespaces: list[str]) -> Iterator[str]:
    """A scheduler here, one worker with the loadgen resource in each namespace."""
    import distributed

    port = _free_port()
    address = f"tcp://{SUBNET}.1.1:{port}"  # every namespace routes to it through its veth
    dask = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
    processes = [
        subprocess.Popen(
            [*dask, "--host", "0.0.0.0", "--port", str(port), "--no-dashboard"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    ]
    try:
        for n, name in enumerate(namespaces, 1):
            worker = [sys.executable, "-m", "distributed.cli.dask_worker", address]
            worker += ["--nworkers", "1", "--nthreads", "1", "--resources", "loadgen=1"]
            worker += ["--host", f"{SUBNET}.{n}.2", "--no-dashboard"]
            if n == len(namespaces):
                worker = [*MONOTONIC_AHEAD, *worker]
            processes.append(
                subprocess.Popen(
                    ["ip", "netns", "exec", name, *worker],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    env=dict(os.environ),
                )
            )
        client = distributed.Client(address, timeout=30, set_as_default=False)
        try:
            _wait_for_workers(client, len(namespaces))
        finally:
            client.close()
        yield address
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()


def test_hosts_in_their_own_network_namespaces_load_a_target_over_veth(cluster: str) -> None:
    import distributed

    with distributed.Client(cluster, timeout=30, set_as_default=False) as client:
        clocks = client.run(time.monotonic)
    ahead = sorted(clocks.values())[-1] - time.monotonic()
    assert ahead > MONOTONIC_SHIFT_S / 2, clocks  # one worker's monotonic clock is far ahead
    with builtin_target("echo", host="0.0.0.0") as (_host, port):
        scenario = parse_scenario(
            f"name: netns\ntarget: {SUBNET}.1.1:{port}\nmessage_size: 256B\n"
            "load: {model: closed, connections: 20, think_time: 2ms, "
            "phases: [{duration: 3s}]}\n"
        )
        outcome = run_cluster_hosts(scenario, cluster, processes=1)
    result = outcome.result
    assert result.stop_reason == "completed", result.stop_reason
    assert result.summary.errors == {}
    assert result.cluster is not None
    workers = sorted(host.worker.rsplit(":", 1)[0] for host in result.cluster.hosts)
    assert workers == [f"tcp://{SUBNET}.{n}.2" for n in range(1, HOSTS + 1)]
    assert all(outcome.host_results[h].summary.requests > 0 for h in range(HOSTS))
    assert result.summary.requests == sum(r.summary.requests for r in outcome.host_results.values())
    assert result.summary.connections == 20
    for host in result.cluster.hosts:
        assert host.clock_offset_ms is not None and host.offset_uncertainty_ms is not None
        assert abs(host.clock_offset_ms) <= host.offset_uncertainty_ms + 1.0  # one clock
    # Both began within moments of the shared instant, the one an hour ahead on CLOCK_MONOTONIC
    # too (a start handed over as a monotonic reading would have had it wait an hour).
    assert all(h.start_late_ms is not None and h.start_late_ms < 250 for h in result.cluster.hosts)
    assert result.cluster.start_skew_ms is not None and result.cluster.start_skew_ms < 250
