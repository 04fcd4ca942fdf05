"""The ``loadgen`` command, through typer's runner and as a real process."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from loadgen.cli.app import app
from loadgen.result.model import SCHEMA_VERSION
from tests.adversarial.servers import free_port
from tests.contention import valid_but_for_contention

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "scenarios" / "quickstart.yaml"
runner = CliRunner()

SUMMARY_KEYS = {
    "requests",
    "errors",
    "duration_s",
    "throughput_rps",
    "latency_us",
    "connect_latency_us",
}
LATENCY_KEYS = {"min", "mean", "p50", "p90", "p99", "p99_9", "max"}


def test_run_quickstart_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    result = runner.invoke(
        app,
        [
            "run",
            str(QUICKSTART),
            "--duration",
            "1s",
            "--set",
            "load.connections=50",
            "--json",
            str(out),
            "--processes",
            "1",  # the default depends on the machine's cores
        ],
    )
    assert result.exit_code == 0, result.output
    assert "throughput" in result.output and f"result: {out}" in result.output
    data = json.loads(out.read_text())
    assert data["schema_version"] == SCHEMA_VERSION
    assert data["scenario"]["name"] == "quickstart"
    assert data["scenario"]["load"]["connections"] == 50
    assert data["scenario"]["load"]["phases"][0]["duration"] == 1.0
    assert valid_but_for_contention(data["self_check"]), data["self_check"]
    assert set(data["environment"]) >= {
        "backend",
        "recv_mode",
        "os",
        "python",
        "loadgen_version",
        "processes",
        "clock",
        "clock_resolution_ns",
    }
    assert data["environment"]["processes"] == 1
    summary = data["summary"]
    assert set(summary) >= SUMMARY_KEYS
    assert set(summary["latency_us"]) >= LATENCY_KEYS
    assert set(summary["connect_latency_us"]) >= LATENCY_KEYS
    assert summary["requests"] > 0 and summary["errors"] == {}
    assert summary["throughput_rps"] == pytest.approx(
        summary["requests"] / summary["duration_s"], rel=1e-3
    )
    assert set(data["histograms"]) == {"latency", "connect_latency"}
    assert data["partial"] is False


def test_default_result_path_is_under_reports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, echo_target: str
) -> None:
    monkeypatch.chdir(tmp_path)
    arguments = ["run", str(QUICKSTART), "-d", "300ms", "-q", "-p", "1"]
    result = runner.invoke(app, [*arguments, "--set", f"target={echo_target}"])
    assert result.exit_code == 0, result.output
    written = list((tmp_path / "reports").glob("quickstart-*Z.json"))
    assert len(written) == 1


def test_unknown_backend_lists_the_available_ones() -> None:
    result = runner.invoke(app, ["run", str(QUICKSTART), "--backend", "kqueue"])
    assert result.exit_code == 2
    assert "choose one of: auto, iocp, io_uring, epoll" in result.output


@pytest.mark.skipif(sys.platform == "win32", reason="checks the Linux-side refusal of iocp")
def test_iocp_off_windows_is_a_clear_error() -> None:
    result = runner.invoke(app, ["run", str(QUICKSTART), "--backend", "iocp"])
    assert result.exit_code == 2
    assert "IOCP needs Windows" in result.output


def test_bad_scenario_exits_2_naming_line_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ntarget: builtin:echo\nconnections: 5\nduration: 1s\nrecieve: x\n")
    result = runner.invoke(app, ["run", str(bad)])
    assert result.exit_code == 2
    assert f"{bad}:5: recieve: unknown key; did you mean 'receive'?" in result.output


def test_refused_target_writes_json_and_exits_1(tmp_path: Path) -> None:
    out = tmp_path / "refused.json"
    arguments = ["run", str(QUICKSTART), "-d", "500ms", "-p", "1", "--json", str(out)]
    arguments += ["--set", f"target=127.0.0.1:{free_port()}"]
    result = runner.invoke(app, arguments)
    # No request succeeded: a failure, said in red, whatever the thresholds say.
    assert result.exit_code == 1, result.output
    assert "NO REQUEST SUCCEEDED: no response arrived (refused" in result.output
    data = json.loads(out.read_text())
    assert data["summary"]["requests"] == 0
    assert data["summary"]["errors"]["refused"] > 0
    # ... unless failures are what the run studies.
    studied = runner.invoke(app, [*arguments, "--set", "expect_failures=true"])
    assert studied.exit_code == 0, studied.output
    assert "NO REQUEST SUCCEEDED" not in studied.output


def test_validate() -> None:
    result = runner.invoke(app, ["validate", str(QUICKSTART)])
    assert result.exit_code == 0 and "ok" in result.output
    result = runner.invoke(app, ["validate", str(QUICKSTART), "--set", "load.connections=0"])
    assert result.exit_code == 2
    assert "--set load.connections: load.connections: must be at least 1, got 0" in (result.output)


def test_doctor_json() -> None:
    result = runner.invoke(app, ["doctor", "--json"])
    assert result.exit_code == 0
    report = json.loads(result.output)
    assert report["backends"]["epoll"]["available"] is (sys.platform == "linux")
    if sys.platform == "linux":
        assert report["rlimit_nofile"]["hard"] >= report["rlimit_nofile"]["soft"] > 0
        assert report["ephemeral_ports"]["count"] > 1000
        assert 0 < report["max_connections_per_process"] <= report["rlimit_nofile"]["hard"]
    text = runner.invoke(app, ["doctor"])
    assert text.exit_code == 0 and "connections / process" in text.output


def test_serve_echo_as_a_process() -> None:
    server = subprocess.Popen(
        [sys.executable, "-m", "loadgen", "serve", "echo", "--port", "0", "--stop-on-stdin-eof"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None and server.stdin is not None
        line = server.stdout.readline().strip()
        assert line.startswith("listening on 127.0.0.1:")
        port = int(line.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
            client.sendall(b"ping" * 1000)
            echoed = b""
            while len(echoed) < 4000:
                echoed += client.recv(65536)
            assert echoed == b"ping" * 1000
        server.stdin.close()  # how a parent run stops its built-in target
        assert server.wait(10) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


@pytest.mark.skipif(sys.platform == "win32", reason="sends SIGINT, which is POSIX-only")
def test_serve_echo_stops_on_ctrl_c() -> None:
    server = subprocess.Popen(
        [sys.executable, "-m", "loadgen", "serve", "echo", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None
    assert server.stdout.readline().startswith("listening on ")
    server.send_signal(signal.SIGINT)
    assert server.wait(10) == 0


def _interrupt_once_traffic_flows(
    process: subprocess.Popen[str], interrupt: Callable[[], None]
) -> str:
    """Read the run's plain live lines (its stdout is a pipe) until one counts requests,
    then interrupt it; what it printed up to then."""
    assert process.stdout is not None
    seen: list[str] = []
    for line in process.stdout:
        seen.append(line)
        match = re.search(r"\] phase 1/1: ([\d,]+) requests", line)
        if match and int(match.group(1).replace(",", "")) > 0:
            interrupt()
            break
    return "".join(seen)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child is POSIX-only")
def test_ctrl_c_writes_a_partial_result(tmp_path: Path) -> None:
    out = tmp_path / "partial.json"
    # 20 s: a plain live line every 2 s; the first with traffic is the cue to press Ctrl-C.
    process = subprocess.Popen(
        [sys.executable, "-m", "loadgen", "run", str(QUICKSTART), "-d", "20s", "--json", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen = _interrupt_once_traffic_flows(process, lambda: process.send_signal(signal.SIGINT))
    stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, seen + stdout + stderr
    data = json.loads(out.read_text())
    assert data["partial"] is True
    assert data["stop_reason"] == "interrupted (SIGINT)"
    assert data["summary"]["requests"] > 0
    assert data["summary"]["duration_s"] < 15


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a process group is POSIX-only")
def test_ctrl_c_with_processes_writes_the_merged_partial_result(tmp_path: Path) -> None:
    out = tmp_path / "partial.json"
    command = [sys.executable, "-m", "loadgen", "run", str(QUICKSTART), "-d", "20s", "-p", "2"]
    process = subprocess.Popen(
        [*command, "--json", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: Ctrl-C reaches every process of it
    )
    seen = _interrupt_once_traffic_flows(process, lambda: os.killpg(process.pid, signal.SIGINT))
    stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, seen + stdout + stderr
    data = json.loads(out.read_text())
    assert data["partial"] is True
    assert data["stop_reason"] == "interrupted (SIGINT)"
    assert data["environment"]["processes"] == 2
    assert data["summary"]["requests"] > 0
    assert data["summary"]["requests"] == sum(i["requests"] for i in data["intervals"])


def test_failed_threshold_exits_99_after_writing_json(tmp_path: Path, echo_target: str) -> None:
    out = tmp_path / "t.json"
    arguments = ["run", str(QUICKSTART), "-d", "300ms", "-p", "1", "--json", str(out)]
    arguments += ["--set", f"target={echo_target}"]
    failing = runner.invoke(app, [*arguments, "--set", "thresholds=['p50 < 1ns', 'p99 < 10s']"])
    assert failing.exit_code == 99, failing.output
    verdicts = json.loads(out.read_text())["thresholds"]
    assert [(v["expression"], v["passed"]) for v in verdicts] == [
        ("p50 < 1ns", False),
        ("p99 < 10s", True),
    ]
    passing = runner.invoke(app, [*arguments, "--set", "thresholds=['p99 < 10s']"])
    assert passing.exit_code == 0, passing.output


def test_misspelled_threshold_metric_is_a_usage_error() -> None:
    result = runner.invoke(app, ["validate", str(QUICKSTART), "--set", "thresholds=['pp99 < 1s']"])
    assert result.exit_code == 2
    assert "unknown metric 'pp99'; did you mean 'p99'?" in result.output
