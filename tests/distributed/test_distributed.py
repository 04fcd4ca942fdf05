"""Distributed runs on a real Dask LocalCluster of worker processes (each offering the
``loadgen`` resource), against the built-in echo target.

Every run here is the real path: the coordinator submits one task per worker, each task
starts a host process, which spawns its shard processes; so a run costs a few seconds of
interpreter start-ups besides its own duration. Few tests, each checking several things.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from loadgen.cli.app import app
from loadgen.config.scenario import Scenario, parse_scenario
from loadgen.result.model import SCHEMA_VERSION, LatencySummary, RunResult
from loadgen.run.progress import Snapshot
from loadgen.stats.histogram import HdrHistogram
from tests.hdr_values import values_of

distributed = pytest.importorskip(
    "distributed", reason="the 'distributed' extra is not installed (the test extra has it)"
)
from loadgen.distributed.coordinator import (  # noqa: E402 (after the importorskip)
    ClusterError,
    run_cluster,
    run_cluster_hosts,
)

WORKERS = 3


def _scenario(text: str, target: str = "builtin:echo") -> Scenario:
    return parse_scenario(f"name: dist\ntarget: {target}\n" + text)


@contextmanager
def _cluster(workers: int, resource: int = 1) -> Iterator[tuple[Any, Any]]:
    cluster = distributed.LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        resources={"loadgen": resource} if resource else None,
        dashboard_address=None,
        worker_dashboard_address=None,  # (a restarted worker would look for a port)
        silence_logs=40,  # logging.ERROR: a killed worker is expected in one test
    )
    client = distributed.Client(cluster, set_as_default=False)
    try:
        yield cluster, client
    finally:
        client.close()
        cluster.close()


@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[Any, Any]]:
    with _cluster(WORKERS) as pair:
        yield pair


def test_three_hosts_merge_exactly(cluster: tuple[Any, Any], echo_target: str) -> None:
    local, _client = cluster
    scenario = _scenario(
        "message_size: 128B\n"
        "load: {model: closed, connections: 30, think_time: 2ms, phases: [{duration: 3s}]}\n"
        "thresholds:\n  - p99 < 10s\n  - requests > 100\n",
        echo_target,
    )
    outcome = run_cluster_hosts(scenario, local.scheduler_address, processes=1)
    result, hosts = outcome.result, outcome.host_results
    summary = result.summary
    assert result.stop_reason == "completed" and not result.partial
    assert sorted(hosts) == [0, 1, 2]
    assert all(host.summary.requests > 0 for host in hosts.values())
    assert summary.errors == {}
    # The merged request count is the sum of the hosts', so is every interval's.
    assert summary.requests == sum(host.summary.requests for host in hosts.values())
    assert summary.requests == sum(i.requests for i in result.intervals)
    assert summary.connections == 30 and summary.connects == 30
    # Percentiles of the merge are those of one histogram fed every host's values.
    fed = HdrHistogram()
    for host in hosts.values():
        fed.record_many(values_of(host.histogram("latency")))
    assert fed == result.histogram("latency")
    assert LatencySummary.from_histogram(fed) == summary.latency_us
    # Thresholds were judged on the merged result.
    verdicts = {verdict.metric: verdict for verdict in result.thresholds}
    assert verdicts["p99"].passed and verdicts["requests"].passed
    assert verdicts["requests"].value == summary.requests
    # The cluster: every host, its share, offset and lateness; the start skew, small.
    assert result.cluster is not None
    assert result.cluster.scheduler == local.scheduler_address
    assert [host.index for host in result.cluster.hosts] == [0, 1, 2]
    assert [host.requests for host in result.cluster.hosts] == [
        hosts[n].summary.requests for n in range(3)
    ]
    for host in result.cluster.hosts:
        assert host.lost is None and host.processes == 1
        assert host.weight == pytest.approx(1 / 3, abs=1e-5)
        assert host.clock_offset_ms is not None and host.offset_uncertainty_ms is not None
        # One machine, one clock: the estimate is within its own error bound (+1 ms slack).
        assert abs(host.clock_offset_ms) <= host.offset_uncertainty_ms + 1.0
        assert host.start_late_ms is not None and host.start_late_ms >= 0
    assert result.cluster.start_skew_ms is not None
    assert 0 <= result.cluster.start_skew_ms < 250  # generous: a loaded 2-core machine
    assert result.environment.processes == 3
    assert result.generator.start_late_ms == max(h.start_late_ms or 0 for h in result.cluster.hosts)
    # The JSON keeps it all.
    again = RunResult.from_dict(json.loads(result.to_json()))
    assert again.cluster == result.cluster


def test_cli_run_on_a_cluster_writes_the_merged_result(
    cluster: tuple[Any, Any], tmp_path: Path
) -> None:
    local, _client = cluster
    out = tmp_path / "run.json"
    outcome = CliRunner().invoke(
        app,
        [
            "run",
            str(Path(__file__).resolve().parents[2] / "scenarios" / "quickstart.yaml"),
            "--cluster",
            local.scheduler_address,
            "--hosts",
            "2",
            "--processes",
            "1",
            "--duration",
            "2s",
            "--json",
            str(out),
            "--quiet",
        ],
    )
    assert outcome.exit_code == 0, outcome.output
    data = json.loads(out.read_text())
    assert data["schema_version"] == SCHEMA_VERSION
    assert [host["processes"] for host in data["cluster"]["hosts"]] == [1, 1]
    assert data["summary"]["requests"] == sum(h["requests"] for h in data["cluster"]["hosts"])


def test_cli_capacity_on_a_cluster_runs_every_step_there(
    cluster: tuple[Any, Any], tmp_path: Path
) -> None:
    """``loadgen capacity --cluster`` passes the cluster through to every step's run."""
    local, _client = cluster
    scenario = tmp_path / "capacity.yaml"
    scenario.write_text("name: dist-capacity\ntarget: builtin:echo\nconnections: 1\nduration: 1s\n")
    out = tmp_path / "capacity.json"
    outcome = CliRunner().invoke(
        app,
        [
            "capacity", str(scenario), "--cluster", local.scheduler_address, "--hosts", "2",
            "--processes", "1", "--slo", "p50 < 1s", "--start", "100/s", "--max", "200/s",
            "--warmup", "1s", "--step-duration", "1s", "--confirm", "0", "--json", str(out),
        ],
    )  # fmt: skip
    data = json.loads(out.read_text())
    assert data["kind"] == "loadgen.capacity"
    # On a machine this busy the generator may not keep even 100/s on schedule: then the
    # search says so (exit 3), and every step it ran still ran on the cluster.
    status = data["outcome"]["status"]
    assert (status, outcome.exit_code) in (("above max", 0), ("generator limited", 3)), (
        outcome.output
    )
    if status == "above max":
        assert [step["offered"] for step in data["steps"]] == [100, 200]
    assert data["steps"]
    for step in data["steps"]:
        hosts = step["result"]["cluster"]["hosts"]
        assert [host["processes"] for host in hosts] == [1, 1]
        assert step["result"]["scenario"]["load"]["model"] == "open"


def test_too_few_loadgen_workers_is_refused_before_traffic(cluster: tuple[Any, Any]) -> None:
    local, _client = cluster
    scenario = _scenario("connections: 10\nduration: 1s\n")
    with pytest.raises(ClusterError) as raised:
        run_cluster(scenario, local.scheduler_address, hosts=WORKERS + 1, processes=1)
    message = str(raised.value)
    assert f"has {WORKERS} worker(s) with the 'loadgen' resource" in message
    assert "--resources loadgen=1" in message


def test_mismatched_versions_are_refused_with_the_versions_listed(
    cluster: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    local, client = cluster
    # This coordinator claims another version; the workers report their real one.
    monkeypatch.setattr("loadgen.distributed.coordinator.__version__", "0.0.0-other")
    with pytest.raises(ClusterError) as raised:
        run_cluster(_scenario("connections: 10\nduration: 1s\n"), local.scheduler_address)
    message = str(raised.value)
    assert "this coordinator has 0.0.0-other" in message
    from loadgen import __version__

    for worker in client.scheduler_info(n_workers=-1)["workers"]:
        assert f"{worker} (" in message
    assert f"loadgen {__version__}" in message


def test_an_unreachable_scheduler_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    # Nothing listens: the connect is refused at once, and the client retries until its
    # timeout (10 s by default); a second is as clear an answer here.
    monkeypatch.setattr("loadgen.distributed.coordinator.CONNECT_TIMEOUT_S", 1.0)

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(
        ClusterError, match=f"cannot reach the Dask scheduler at tcp://127.0.0.1:{port}"
    ):
        run_cluster(_scenario("connections: 10\nduration: 1s\n"), f"tcp://127.0.0.1:{port}")


def _when_running(
    after_s: float, act: Callable[[], None]
) -> Callable[[Callable[[], Snapshot]], Any]:
    """A live-view hook that calls ``act`` once the run is ``after_s`` in, with traffic."""

    @contextmanager
    def watch(read: Callable[[], Snapshot]) -> Iterator[None]:
        done = threading.Event()

        def loop() -> None:
            while not done.wait(0.05):
                snapshot = read()
                if snapshot.elapsed_s >= after_s and snapshot.requests > 0:
                    act()
                    return

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()

    return watch


def test_a_killed_worker_gives_a_partial_result_naming_it(echo_target: str) -> None:
    with _cluster(WORKERS) as (local, client):
        victim = sorted(client.scheduler_info(n_workers=-1)["workers"])[1]  # host 1
        pid = client.run(os.getpid, workers=[victim])[victim]
        scenario = _scenario(
            "load: {model: closed, connections: 30, think_time: 2ms, phases: [{duration: 6s}]}\n",
            echo_target,
        )
        result = run_cluster(
            scenario,
            local.scheduler_address,
            processes=1,
            live=_when_running(2.5, lambda: os.kill(pid, signal.SIGKILL)),
        )
    assert result.partial
    assert result.stop_reason.startswith("failed: host 1 (")
    assert victim in result.stop_reason and "left the cluster" in result.stop_reason
    assert result.cluster is not None
    lost = result.cluster.lost_hosts
    assert [host.index for host in lost] == [1] and lost[0].worker == victim
    assert lost[0].requests is not None and lost[0].requests > 0  # its ticks were kept
    # What every host measured (the lost one: what it had reported) is in the merge.
    assert result.summary.requests == sum(h.requests or 0 for h in result.cluster.hosts)
    survivors = [host for host in result.cluster.hosts if host.lost is None]
    assert len(survivors) == 2 and all((h.requests or 0) > 0 for h in survivors)


def test_a_receive_feature_a_host_lacks_is_refused_before_traffic(
    cluster: tuple[Any, Any],
) -> None:
    local, _client = cluster
    scenario = _scenario("connections: 10\nduration: 1s\nreceive: buffer-ring\n")
    with pytest.raises(ClusterError) as raised:
        run_cluster(scenario, local.scheduler_address, backend="epoll", processes=1)
    message = str(raised.value)
    assert message.startswith("hosts cannot run this scenario: tcp://")
    assert message.count("receive: buffer-ring needs the io_uring backend") == WORKERS


def _shard_processes(worker_pid: int) -> list[Any]:
    """The shard processes under a worker: worker -> host process -> spawned shards."""
    import psutil

    return [
        child
        for child in psutil.Process(worker_pid).children(recursive=True)
        if "spawn_main" in " ".join(child.cmdline())
    ]


def test_a_failed_shard_on_one_host_names_the_host_and_the_shard(
    cluster: tuple[Any, Any],
    echo_target: str,
) -> None:
    local, client = cluster
    worker = sorted(client.scheduler_info(n_workers=-1)["workers"])[2]  # host 2
    worker_pid = client.run(os.getpid, workers=[worker])[worker]

    def kill_a_shard() -> None:
        shards = _shard_processes(worker_pid)
        assert len(shards) == 2, shards
        shards[0].kill()

    scenario = _scenario(
        "load: {model: closed, connections: 30, think_time: 2ms, phases: [{duration: 5s}]}\n",
        echo_target,
    )
    result = run_cluster(
        scenario,
        local.scheduler_address,
        hosts=3,
        processes=2,
        live=_when_running(1.5, kill_a_shard),
    )
    assert result.partial and result.stop_reason.startswith("failed: host 2 (")
    assert worker in result.stop_reason and "died: killed by SIGKILL" in result.stop_reason
    assert result.cluster is not None and not result.cluster.lost_hosts
    assert result.summary.duration_s < 4.5  # the other hosts were stopped too
    assert result.summary.requests == sum(h.requests or 0 for h in result.cluster.hosts)


def test_a_tls_cluster_runs_with_the_client_certificate_in_dask_config(echo_target: str) -> None:
    import dask
    from distributed.security import Security

    security = Security.temporary()  # a throw-away CA and certificate, in memory
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        resources={"loadgen": 1},
        security=security,
        protocol="tls://",
        dashboard_address=None,
        worker_dashboard_address=None,
        silence_logs=40,
    )
    scenario = _scenario(
        "load: {model: closed, connections: 10, think_time: 5ms, phases: [{duration: 2s}]}\n",
        echo_target,
    )
    try:
        address = cluster.scheduler_address
        assert address.startswith("tls://")
        with pytest.raises(ClusterError, match="for tls:// give this client its certificate"):
            run_cluster(scenario, address, processes=1)
        tls = {
            "distributed.comm.tls.ca-file": security.tls_ca_file,
            "distributed.comm.tls.client.cert": security.tls_client_cert,
            "distributed.comm.tls.client.key": security.tls_client_key,
        }
        with dask.config.set(tls):
            result = run_cluster(scenario, address, processes=1)
    finally:
        cluster.close()
    assert result.stop_reason == "completed" and result.summary.requests > 0
    assert result.cluster is not None and result.cluster.scheduler == address


def test_ctrl_c_stops_every_host_and_writes_the_partial_result(
    cluster: tuple[Any, Any], tmp_path: Path
) -> None:
    import re
    import subprocess
    import sys

    local, _client = cluster
    out = tmp_path / "partial.json"
    quickstart = Path(__file__).resolve().parents[2] / "scenarios" / "quickstart.yaml"
    command = [sys.executable, "-m", "loadgen", "run", str(quickstart), "-d", "20s", "-p", "1"]
    command += ["--cluster", local.scheduler_address, "--json", str(out)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    seen: list[str] = []
    for line in process.stdout:  # the plain live lines: interrupt once traffic flows
        seen.append(line)
        match = re.search(r"\] phase 1/1: ([\d,]+) requests", line)
        if match and int(match.group(1).replace(",", "")) > 0:
            process.send_signal(signal.SIGINT)
            break
    rest, _ = process.communicate(timeout=120)
    assert process.returncode == 130, "".join(seen) + rest
    data = json.loads(out.read_text())
    assert data["partial"] is True and data["stop_reason"] == "interrupted (SIGINT)"
    assert data["summary"]["requests"] > 0 and data["summary"]["duration_s"] < 15
    assert all(host["lost"] is None for host in data["cluster"]["hosts"])
    assert data["summary"]["requests"] == sum(h["requests"] for h in data["cluster"]["hosts"])


def test_hosts_are_ready_with_their_connections_open(
    cluster: tuple[Any, Any], echo_target: str
) -> None:
    """The two-phase start: shards connect before they report ready, so an open-model
    schedule finds its connections open from its first request (without the pre-connect,
    requests due in the first milliseconds wait for a connection: waited_for_connection).

    50 connections a host for 100 requests/s a host: each connection is asked for again
    after 0.5 s, so later in the run a request waits only behind responses slower than
    that (on a busy machine, 30 connections in all had waited behind 240 ms ones)."""
    local, _client = cluster
    scenario = _scenario(
        "load: {model: open, connections: 150, phases: [{duration: 2s, rate: 300}]}\n",
        echo_target,
    )
    result = run_cluster(scenario, local.scheduler_address, processes=1)
    summary = result.summary
    assert result.stop_reason == "completed"
    assert summary.waited_for_connection == 0 and summary.unsent == 0, summary
    assert summary.connects == 150 and summary.errors == {}
    # Every scheduled request was answered or is in flight at the end.
    assert summary.requests + summary.in_flight_at_end == 600


def _lower_descriptor_limit(limit: int) -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))  # this worker process only


def test_more_connections_than_a_host_can_hold_is_refused_before_traffic() -> None:
    with _cluster(1) as (local, client):
        client.run(_lower_descriptor_limit, 512)  # the worker's host processes inherit it
        scenario = _scenario(
            "load: {model: closed, connections: 2000, think_time: 1s, phases: [{duration: 2s}]}\n"
        )
        with pytest.raises(ClusterError) as raised:
            run_cluster(scenario, local.scheduler_address, processes=1)
    message = str(raised.value)
    assert message.startswith("hosts cannot run this scenario: tcp://127.0.0.1:")
    assert "2,000 connections need about" in message and "512 (hard)" in message


def test_losing_the_only_host_still_gives_the_partial_result_it_ticked(tmp_path: Path) -> None:
    with _cluster(1) as (local, client):
        (victim,) = client.scheduler_info(n_workers=-1)["workers"]
        pid = client.run(os.getpid, workers=[victim])[victim]
        scenario = _scenario(
            "load: {model: open, connections: 20, phases: [{duration: 8s, rate: 400/s}]}\n"
        )
        result = run_cluster(
            scenario,
            local.scheduler_address,
            processes=1,
            live=_when_running(2.5, lambda: os.kill(pid, signal.SIGKILL)),
        )
    assert result.partial
    assert result.stop_reason.startswith("failed: host 0 (") and victim in result.stop_reason
    assert result.cluster is not None and result.cluster.hosts[0].lost is not None
    ticked = result.cluster.hosts[0].requests
    assert ticked is not None and ticked > 0
    assert result.summary.requests == ticked == sum(i.requests for i in result.intervals)
    assert result.histogram("latency").total_count == ticked
    assert "latency_corrected" in result.histograms  # the open model's shape is kept
    assert result.environment.loadgen_version and result.environment.hostname
    # It survives the round trip through JSON a written result makes.
    result.write(tmp_path / "lost.json")
    again = RunResult.read(tmp_path / "lost.json")
    assert again.summary.requests == ticked and again.stop_reason == result.stop_reason
