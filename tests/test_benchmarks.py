"""The benchmark scripts keep working: smoke runs, each checking the JSON result it writes.

Speed itself is never asserted here (the machine may be shared); the checks are that every
client that can run here ran, did real requests against the real target, and that the
result file has the documented shape (benchmarks/results/README.md).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

#: Each benchmark's smoke run starts its peers and targets: ``slow`` (CI's second pass).
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "benchmarks"

linux_only = pytest.mark.skipif(
    sys.platform != "linux", reason="the benchmarks pin cores and read /proc (Linux)"
)


def _run(
    script: str, args: list[str], tmp_path: Path, benchmark: str | None = None
) -> tuple[str, dict[str, Any]]:
    """Run a benchmark script writing into tmp_path; its stdout and its one JSON result
    (named after ``benchmark``, by default the script)."""
    benchmark = benchmark or script.removesuffix(".py")
    command = [sys.executable, str(BENCHMARKS / script), *args, "--results-dir", str(tmp_path)]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    written = list(tmp_path.glob(f"*-{benchmark}.json"))
    assert len(written) == 1, written
    assert re.fullmatch(r"\d{8}T\d{6}Z-\w+\.json", written[0].name)
    assert f"results: {written[0]}" in completed.stdout
    document = json.loads(written[0].read_text())
    assert document["schema_version"] == 1
    assert document["benchmark"] == benchmark
    assert document["command"][:2] == ["python", f"benchmarks/{script}"]
    assert len(document["machine"]["load_average"]) == 3
    assert len(document["load_average_at_start"]) == 3
    return completed.stdout, document


def _peer_present(name: str) -> bool:
    present = (
        importlib.util.find_spec("locust") is not None
        if name == "locust"
        else bool(shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin"))
    )
    if not present and os.environ.get("CI"):
        pytest.fail(
            f"{name} is missing under CI: .ci/run installs it (wrk, nginx, redis-server with "
            "redis-benchmark from redis-tools: apt; locust: pip)"
        )
    return present


@linux_only
@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler for the echo server")
def test_echo_benchmark_runs_every_client_and_writes_its_result(tmp_path: Path) -> None:
    args = ["--rounds", "1", "--seconds", "0.5", "--connections", "50", "--max-processes", "2"]
    out, document = _run("echo.py", args, tmp_path)
    assert "server: C epoll echo server" in out
    clients = ["loadgen-io_uring", "loadgen-epoll", "asyncio", "raw-epoll"]
    for client in clients:
        rate = re.search(rf"^  {re.escape(client)} +([\d,]+)", out, re.MULTILINE)
        assert rate is not None, out
        assert int(rate[1].replace(",", "")) > 0
    assert "loadgen-io_uring / asyncio:" in out and "loadgen-epoll / raw-epoll:" in out
    assert document["clients"] == clients
    assert sorted(run["client"] for run in document["runs"]) == sorted(clients)
    assert all(run["trips"] > 0 and run["cpu_s"] > 0 for run in document["runs"])
    for client in clients:
        assert document["medians"][client]["trips_per_s"]["n"] == 1
    assert set(document["ratios"]) == {
        f"{ours}/{peer}" for ours in clients[:2] for peer in clients[2:]
    }
    # the process sweep: loadgen run --processes 1 and 2 against the same C server
    sweep = document["process_sweep"]
    assert sweep["processes"] == [1, 2]
    assert sorted(run["processes"] for run in sweep["runs"]) == [1, 2]
    for run in sweep["runs"]:
        assert run["requests"] > 0 and run["generator_cpu_s"] > 0, run
        assert run["server_cpu_s"] >= 0 and isinstance(run["saturated"], bool)
        assert f"--processes {run['processes']}" in " ".join(run["command"])
    assert sweep["ratios_to_1"]["1"]["trips_per_s"] == 1.0
    assert sweep["ratios_to_1"]["2"]["trips_per_s"] > 0
    assert "process sweep: loadgen run --processes P" in out
    assert re.search(r"^  P=2: the C server (was|\(one thread\) was) ", out, re.MULTILINE), out


@linux_only
@pytest.mark.slow
def test_http_peers_runs_every_client_it_can_against_nginx(tmp_path: Path) -> None:
    has_nginx = _peer_present("nginx")
    expected = ["loadgen"] + [peer for peer in ("wrk", "locust") if _peer_present(peer)]
    args = ["--rounds", "1", "--seconds", "2", "--connections", "4"]
    out, document = _run("http_peers.py", args, tmp_path)

    assert document["server"]["kind"] == ("nginx" if has_nginx else "builtin")
    assert sorted(document["clients"]) == sorted(expected)
    assert set(document["skipped"]) == {"wrk", "locust"} - set(expected)
    assert {"vegeta", "k6", "tcpkali", "wrk2"} <= set(document["not_compared"])
    if len(os.sched_getaffinity(0)) >= 2:
        assert document["pinning"]["server_core"] != document["pinning"]["client_core"]
        assert "pinned" in out
    runs = {run["client"]: run for run in document["runs"]}
    assert sorted(runs) == sorted(expected)
    for name, run in runs.items():
        assert run["tool"]["requests"] > 0, (name, run)
        assert run["tool"]["errors"] == 0, (name, run)
        assert run["process"]["cpu_s"] > 0
        if has_nginx:  # nginx counted this client's requests and kept its connections
            assert run["window"] is not None, (name, run)
            assert run["window"]["requests"] > 0 and run["window"]["client_cpu_s"] >= 0
            assert run["connections_accepted"] >= 4, (name, run)
    assert runs["loadgen"]["tool"]["p50_us"] > 0 and runs["loadgen"]["tool"]["p99_us"] > 0
    if "wrk" in runs:
        assert runs["wrk"]["tool"]["p50_us"] > 0 and runs["wrk"]["tool"]["p99_us"] > 0
    for name in expected:
        assert set(document["medians"][name]) == set(document["metrics"])
        assert document["medians"][name]["tool_rps"]["n"] == 1
        assert name in document["versions"] and name in document["latency_notes"]
    assert set(document["ratios"]) == {f"loadgen/{peer}" for peer in expected[1:]}
    for peer in expected[1:]:
        assert f"loadgen/{peer}:" in out
        assert document["ratios"][f"loadgen/{peer}"]["tool_rps"] > 0
    floor = document["floor"]  # the 1-connection latency floor, loadgen against wrk
    if "wrk" not in runs:
        assert floor is None
        return
    assert floor["connections"] == 1 and floor["p50_ratio_loadgen_to_wrk"] > 0
    assert sorted(run["client"] for run in floor["runs"]) == ["loadgen", "wrk"]
    for run in floor["runs"]:
        assert run["tool"]["errors"] == 0 and run["tool"]["p50_us"] > 0, run
        if has_nginx:
            assert run["connections_accepted"] >= 1, run
    assert "loadgen/wrk p50:" in out


@linux_only
@pytest.mark.slow
def test_http_peers_over_tls_runs_loadgen_and_wrk_on_https(tmp_path: Path) -> None:
    if not _peer_present("nginx"):
        pytest.skip("--tls needs nginx: install the Debian package 'nginx'")
    expected = ["loadgen"] + (["wrk"] if _peer_present("wrk") else [])
    args = ["--tls", "--rounds", "1", "--seconds", "2", "--connections", "4"]
    args += ["--clients", ",".join(expected)]
    out, document = _run("http_peers.py", args, tmp_path, benchmark="https_peers")
    assert "TLS 1.3" in document["server"]["label"] and "GET https://127.0.0.1:" in out
    assert "loadgen verifies the certificate" in document["config"]["tls"]
    runs = {run["client"]: run for run in document["runs"]}
    assert sorted(runs) == sorted(expected)
    for name, run in runs.items():
        assert run["tool"]["requests"] > 0 and run["tool"]["errors"] == 0, (name, run)
        assert run["window"] is not None and run["window"]["requests"] > 0, (name, run)
        assert run["connections_accepted"] >= 4, (name, run)  # counted on the plain listener
    if "wrk" in runs:
        assert document["ratios"]["loadgen/wrk"]["requests_per_cpu_s"] > 0


@linux_only
def test_tls_resumption_runs_both_variants(tmp_path: Path) -> None:
    if not _peer_present("nginx"):
        pytest.skip("the TLS server is nginx: install the Debian package 'nginx'")
    args = ["--rounds", "1", "--seconds", "1", "--connections", "2"]
    out, document = _run("tls_resumption.py", args, tmp_path)
    runs = {run["variant"]: run for run in document["runs"]}
    assert sorted(runs) == ["full", "resumed"]
    for run in runs.values():
        assert run["errors"] == {} and run["requests"] > 0, run
        assert run["handshakes"] >= run["requests"]  # a connection per request
    assert runs["full"]["resumed"] == 0 and runs["resumed"]["resumed"] > 0
    assert document["medians"]["resumed"]["requests_per_cpu_s"]["n"] == 1
    assert "medians (min-max):" in out


@linux_only
def test_http_peers_falls_back_to_the_builtin_target_and_says_so(tmp_path: Path) -> None:
    args = ["--rounds", "1", "--seconds", "1", "--connections", "2"]
    out, document = _run(
        "http_peers.py", [*args, "--server", "builtin", "--clients", "loadgen"], tmp_path
    )
    assert "server: loadgen's built-in HTTP target" in out
    assert "server-side request counts are not measurable here" in out
    assert document["server"]["kind"] == "builtin"
    (run,) = document["runs"]
    assert run["tool"]["requests"] > 0 and run["window"] is None
    assert document["medians"]["loadgen"]["server_rps"]["median"] is None
    assert document["medians"]["loadgen"]["tool_rps"]["median"] > 0


@linux_only
def test_redis_peers_runs_both_clients_on_each_case(tmp_path: Path) -> None:
    if not _peer_present("redis-server"):
        pytest.skip("redis-server not found: install the Debian package 'redis-server'")
    expected = ["loadgen"] + (["redis-benchmark"] if _peer_present("redis-benchmark") else [])
    args = ["--rounds", "1", "--seconds", "2", "--connections", "4", "--pipelines", "1,4"]
    out, document = _run("redis_peers.py", args, tmp_path)

    assert out.startswith("server: Redis server v=")
    assert document["clients"] == expected
    assert set(document["skipped"]) == {"redis-benchmark"} - set(expected)
    assert document["config"]["command"] == ["SET", "key:__rand_int__", "xxx"]
    assert set(document["cases"]) == {"SET -P 1", "SET -P 4"}
    if len(os.sched_getaffinity(0)) >= 2:
        assert document["pinning"]["server_core"] != document["pinning"]["client_core"]
    for case in document["cases"]:
        runs = {run["client"]: run for run in document["runs"] if run["case"] == case}
        assert sorted(runs) == sorted(expected), case
        for name, run in runs.items():
            assert run["tool"]["requests"] > 0 and run["tool"]["errors"] == 0, (name, run)
            if name == "loadgen":  # redis-server counted its commands over the steady window
                # (redis-benchmark's run is a request count: on a busy machine it can end
                # before a steady window forms, and its window is then null)
                assert run["window"] is not None and run["window"]["requests"] > 0, run
            assert run["tool"]["p50_us"] > 0 and run["tool"]["p99_us"] > 0, (name, run)
            assert run["connections_accepted"] >= 4, (name, run)
        assert isinstance(runs["loadgen"]["saturated"], bool)
        assert "--allow-saturated" in runs["loadgen"]["command"]
        assert set(document["ratios"][case]) == {f"loadgen/{peer}" for peer in expected[1:]}
        for peer in expected[1:]:
            assert document["ratios"][case][f"loadgen/{peer}"]["tool_rps"] > 0
            assert document["ratios"][case][f"loadgen/{peer}"]["target_rps"] == 0.7
        for name in expected:
            assert set(document["medians"][case][name]) == set(document["metrics"])
    assert out.count("loadgen/redis-benchmark:") == (2 if len(expected) == 2 else 0)


@linux_only
def test_cluster_benchmark_runs_both_ways_and_writes_its_result(tmp_path: Path) -> None:
    pytest.importorskip("distributed", reason="the 'distributed' extra is not installed")
    stdout, document = _run(
        "cluster.py", ["--rounds", "1", "--seconds", "1", "--hosts", "2"], tmp_path
    )
    runs = {run["variant"]: run for run in document["runs"]}
    assert sorted(runs) == ["cluster", "local"]
    for run in runs.values():
        assert run["requests"] > 0 and run["errors"] == 0 and run["processes"] == 2
    assert runs["cluster"]["start_skew_ms"] is not None and runs["local"]["start_skew_ms"] is None
    assert set(document["ratios"]) == {
        "cluster/local rps",
        "cluster/local p99_us",
        "cluster/local wall_s",
    }
    assert "cluster/local rps:" in stdout
