"""The CLI as a Windows user meets it: ``doctor`` tells Windows' own facts, ``run`` in a
process of its own with its output piped (cp1252 there), stopped with Ctrl-Break.

These run on Windows CPython (on Linux CI under Wine, through ``tests/test_wine.py``);
``test_console_stream_spells_ascii_for_a_legacy_encoding`` runs everywhere.
"""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from loadgen.cli.app import app
from loadgen.cli.common import make_console

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "scenarios" / "quickstart.yaml"
windows = pytest.mark.skipif(
    sys.platform != "win32", reason="Windows CPython (Linux CI runs this under Wine)"
)


def test_console_stream_spells_ascii_for_a_legacy_encoding(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    text = "51.3\u00b5s \u2013 \u221e"  # micro sign, en dash, infinity
    for encoding, expected in (("cp1252", b"51.3us - inf"), ("utf-8", text.encode())):
        raw = io.BytesIO()
        stream = io.TextIOWrapper(raw, encoding=encoding, newline="\n")
        monkeypatch.setattr(sys, "stdout", stream)
        make_console(width=80).print(text, highlight=False)
        stream.flush()
        assert raw.getvalue() == expected + b"\n", encoding


@windows
def test_doctor_reports_windows_facts_not_the_linux_hosts() -> None:
    outcome = CliRunner().invoke(app, ["doctor", "--json"])
    assert outcome.exit_code == 0, outcome.output
    report = json.loads(outcome.output)
    assert report["clock"]["implementation"] == "QueryPerformanceCounter()"
    assert report["clock"]["resolution_ns"] <= 100 and report["clock"]["fine_enough"]
    ports = report["ephemeral_ports"]
    assert ports is None or ports["source"].startswith("netsh"), ports
    assert report["somaxconn"] is None and report["io_uring_disabled"] is None  # Linux's /proc
    facts = report["windows"]
    assert facts["timer_resolution_ms"]["finest"] <= facts["timer_resolution_ms"]["current"]
    assert facts["reuse_unicast_port"] is not None and facts["ifs_handles"] is not None
    notes = " | ".join(report["notes"])
    if ports is None:
        assert "dynamic port range could not be read" in notes
    assert "28,232" not in notes  # Linux's default range, read through Wine's Z:\proc


@pytest.fixture(scope="module")
def broken_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    """``loadgen run`` in its own process, stdout and stderr pipes, Ctrl-Break (SIGBREAK)
    raised in it one second into the run: (the finished process, its JSON)."""
    out = tmp_path_factory.mktemp("break") / "result.json"
    script = textwrap.dedent(
        f"""
        import signal, sys, threading
        import loadgen.run.measure as measure
        from loadgen.cli.app import main

        start = measure.sleep_until
        def sleep_until(start_ns):  # the run starts now: Ctrl-Break a second in
            threading.Timer(1.0, signal.raise_signal, (signal.SIGBREAK,)).start()
            start(start_ns)
        measure.sleep_until = sleep_until
        sys.argv = ["loadgen", "run", {str(QUICKSTART)!r}, "--backend", "iocp",
                    "-d", "30s", "--json", {str(out)!r}]
        main()
        """
    )
    completed = subprocess.run(
        [sys.executable, "-c", script],
        stdin=subprocess.PIPE,
        capture_output=True,
        timeout=300,
        check=False,
        cwd=ROOT,
    )
    return completed, out


@windows
def test_ctrl_break_ends_a_run_like_ctrl_c(broken_run: tuple[Any, Path]) -> None:
    completed, out = broken_run
    assert completed.returncode == 130, completed.stderr.decode(errors="replace")[-2000:]
    data = json.loads(out.read_text())
    assert data["partial"] is True and data["stop_reason"] == "interrupted (SIGBREAK)"
    assert data["stop"] == {"kind": "interrupted", "detail": "SIGBREAK"}


@windows
def test_piped_output_spells_microseconds_us(broken_run: tuple[Any, Path]) -> None:
    """A piped stdout is cp1252 here: no 0xB5 byte (the micro sign there), "us" instead;
    the run's summary, and a latency below a millisecond through the same console."""
    completed, _ = broken_run
    stdout: bytes = completed.stdout
    assert b"latency" in stdout and b"\xb5" not in stdout, stdout[-2000:]
    script = (
        "from loadgen.cli.common import console\n"
        "from loadgen.report.console import render_summary\n"
        "from tests.report.builders import make_result\n"
        "render_summary(make_result(), console)\n"
    )
    printed = subprocess.run(
        [sys.executable, "-c", script],
        stdin=subprocess.PIPE,
        capture_output=True,
        timeout=120,
        check=True,
        cwd=ROOT,
    ).stdout
    assert printed.decode("ascii").count("us") >= 6, printed  # min ... p99.9 of one row


def test_serve_with_a_small_accept_pool_answers_a_burst() -> None:
    """``loadgen serve --accept-pool 4`` (IOCP: four AcceptEx posted; elsewhere accepted
    from the backlog): 200 clients connecting at once are all accepted and echoed."""
    command = [sys.executable, "-m", "loadgen", "serve", "echo", "--accept-pool", "4"]
    server = subprocess.Popen(
        [*command, "--stop-on-stdin-eof"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    clients: list[socket.socket] = []
    try:
        assert server.stdout is not None
        line = server.stdout.readline().decode().strip()
        assert line.startswith("listening on "), line + server.stderr.read().decode()  # type: ignore[union-attr]
        host, port = line.removeprefix("listening on ").rsplit(":", 1)
        for _ in range(200):
            client = socket.socket()
            client.setblocking(False)
            client.connect_ex((host, int(port)))
            clients.append(client)
        for index, client in enumerate(clients):
            client.setblocking(True)
            client.settimeout(30)
            message = b"%d" % index
            client.sendall(message)
            assert client.recv(64) == message
    finally:
        for client in clients:
            client.close()
        assert server.stdin is not None
        server.stdin.close()
        server.wait(60)
        for stream in (server.stdout, server.stderr):
            if stream is not None:
                stream.close()
