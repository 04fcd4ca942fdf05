"""``loadgen serve http --capacity``: one worker, one request at a time, at its rate; and
the M/D/1 formula the capacity tests predict it with, against a simulated queue."""

from __future__ import annotations

import selectors
import socket
import time

import numpy as np
import pytest
from typer.testing import CliRunner

from loadgen.cli.app import app

from .conftest import capacity_server
from .mdl import capacity_for, latency_quantile

REQUEST = b"GET / HTTP/1.1\r\nHost: test\r\n\r\n"


def _answer_times(port: int, connections: int) -> list[float]:
    """Send one request on each of ``connections`` at once; when each answer arrived (s)."""
    sockets = [socket.create_connection(("127.0.0.1", port)) for _ in range(connections)]
    selector = selectors.DefaultSelector()
    received = {sock: b"" for sock in sockets}
    try:
        start = time.perf_counter()
        for sock in sockets:
            sock.sendall(REQUEST)
            selector.register(sock, selectors.EVENT_READ)
        times: list[float] = []
        deadline = start + 30
        while len(times) < connections and time.perf_counter() < deadline:
            for key, _ in selector.select(timeout=1.0):
                ready = key.fileobj
                assert isinstance(ready, socket.socket)
                sock = ready
                received[sock] += sock.recv(4096)
                if received[sock].endswith(b"\r\n\r\nok"):
                    times.append(time.perf_counter() - start)
                    selector.unregister(sock)
        return sorted(times)
    finally:
        for sock in sockets:
            sock.close()


def test_one_worker_answers_one_request_at_a_time_at_its_rate() -> None:
    service_s = 0.02  # --capacity 50/s
    with capacity_server("--capacity", "50/s") as port:
        times = _answer_times(port, 10)
    assert len(times) == 10
    # The k-th answer leaves k service times after the first request arrived, never sooner
    # (the worker's schedule is exact; only a late wake-up can make an answer later).
    for k, arrived in enumerate(times, start=1):
        assert arrived >= k * service_s - 0.001, times
    assert times[-1] < 10 * service_s + 2.0  # generous: a busy machine delays wake-ups


def test_without_capacity_every_request_is_answered_at_once() -> None:
    with capacity_server() as port:
        times = _answer_times(port, 10)
    assert len(times) == 10
    # together: one worker at 50/s would space the first and the last 9 x 20 ms apart
    assert times[-1] - times[0] < 9 * 0.02, times


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--capacity", "0/s"], "must be above 0/s"),
        (["--capacity", "fast"], "expected a rate"),
        (["--capacity", "100/s", "--processes", "2"], "cannot be split over --processes 2"),
    ],
)
def test_bad_capacity_is_refused(arguments: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["serve", "http", "--port", "0", *arguments])
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_mdl_formula_matches_a_simulated_queue() -> None:
    """Erlang's formula against 400,000 simulated requests (Lindley's recursion)."""
    service_s, rate = 0.002, 400.0  # rho = 0.8
    rng = np.random.default_rng(3)
    gaps = rng.exponential(1 / rate, 400_000)
    steps = service_s - gaps
    steps[0] = 0.0
    walk = np.cumsum(steps)
    waits = walk - np.minimum.accumulate(np.minimum(walk, 0.0))
    latency = waits + service_s
    for quantile in (0.5, 0.9, 0.99):
        simulated = float(np.quantile(latency, quantile))
        assert latency_quantile(quantile, rate, service_s) == pytest.approx(simulated, rel=0.03)
    # and the capacity for a bound is where that quantile meets it
    capacity = capacity_for(0.5, 0.010, service_s)
    assert latency_quantile(0.5, capacity, service_s) == pytest.approx(0.010, rel=1e-3)
    assert 455 < capacity < 465  # 5 service times at the median: rho = 0.922
