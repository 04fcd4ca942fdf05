"""An echo that arrives in two pieces is verified to its last byte.

The target here reads each whole message (its header says how long it is), sends back the
first half at once and the second half ``GAP_S`` later, so the client receives every echo
in two reads: the first completes ``INCOMPLETE``, the second completes the message. With
``corrupt_tail`` it flips the message's last byte, which only the second read carries: the
first half is intact, so only a check of the last piece can see it. Every receive mode
(buffered, zero-byte, buffer-ring) takes its own path through the client for these reads.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import selectors
import socket
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from loadgen.config.scenario import parse_scenario
from loadgen.engine import select_backend
from loadgen.protocols.echo import HEADER_BYTES
from loadgen.result.model import RunResult
from loadgen.run.api import run
from tests.engine.conftest import AVAILABLE

#: Between the two halves of an echo: long enough that the first half is read on its own
#: (the client reads within microseconds of it arriving), short enough for many echoes a run.
GAP_S = 0.02
_SIZE = struct.Struct("<I")  # the message size, at offset 12 of an echo message's header


def _ring_here() -> bool:
    if "io_uring" not in AVAILABLE:
        return False
    engine = select_backend("io_uring")
    try:
        return engine.supports_buffer_ring
    finally:
        engine.shutdown()


MODES = [
    (backend, mode)
    for backend in AVAILABLE
    for mode in ("buffered", "zero-byte", "buffer-ring")
    if mode != "buffer-ring" or (backend == "io_uring" and _ring_here())
]


def _serve(server: socket.socket, corrupt_tail: bool, stop: threading.Event) -> None:
    selector = selectors.DefaultSelector()
    selector.register(server, selectors.EVENT_READ)
    pending: dict[socket.socket, bytearray] = {}
    later: list[tuple[float, int, socket.socket, bytes]] = []  # (due, order, conn, bytes)
    order = itertools.count()
    while not stop.is_set():
        timeout = 0.05 if not later else max(0.0, min(0.05, later[0][0] - time.monotonic()))
        for key, _ in selector.select(timeout):
            if key.fileobj is server:
                conn, _ = server.accept()
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                pending[conn] = bytearray()
                selector.register(conn, selectors.EVENT_READ)
                continue
            conn = key.fileobj  # type: ignore[assignment]
            try:
                data = conn.recv(65536)
            except OSError:
                data = b""
            if not data:
                selector.unregister(conn)
                pending.pop(conn, None)
                conn.close()
                continue
            buffer = pending[conn]
            buffer += data
            while len(buffer) >= HEADER_BYTES:
                (size,) = _SIZE.unpack_from(buffer, 12)
                if len(buffer) < size:
                    break
                echo = bytearray(buffer[:size])
                del buffer[:size]
                if corrupt_tail:
                    echo[-1] ^= 0xFF
                half = size // 2
                conn.sendall(echo[:half])
                heapq.heappush(later, (time.monotonic() + GAP_S, next(order), conn, echo[half:]))
        while later and later[0][0] <= time.monotonic():
            _, _, conn, rest = heapq.heappop(later)
            if conn.fileno() >= 0:
                with contextlib.suppress(OSError):  # the client closed it (its verify error)
                    conn.sendall(rest)
    for conn in pending:
        conn.close()
    selector.close()


@contextmanager
def split_echo(corrupt_tail: bool) -> Iterator[str]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    stop = threading.Event()
    thread = threading.Thread(target=_serve, args=(server, corrupt_tail, stop), daemon=True)
    thread.start()
    try:
        host, port = server.getsockname()
        yield f"{host}:{port}"
    finally:
        stop.set()
        thread.join(5)
        server.close()


def _run(target: str, backend: str, receive: str) -> RunResult:
    scenario = parse_scenario(
        f"name: split\ntarget: {target}\nconnections: 4\nduration: 500ms\nmessage_size: 256B\n"
        f"receive: {receive}\ntimeouts: {{request: 2s}}\n"
    )
    return run(scenario, backend=backend)


@pytest.mark.parametrize(("backend", "receive"), MODES)
def test_a_split_echo_is_accepted_whole(backend: str, receive: str) -> None:
    with split_echo(corrupt_tail=False) as target:
        result = _run(target, backend, receive)
    summary = result.summary
    assert summary.errors == {}
    assert summary.requests > 4  # several echoes per connection, each in two reads
    # ... plus the first half of an echo still in flight at the end, on each connection.
    assert 0 <= summary.bytes_received - 256 * summary.requests <= 4 * 128
    # Each echo waited GAP_S for its second half: its latency shows that both were read.
    assert summary.latency_us.min is not None and summary.latency_us.min >= GAP_S * 1e6


@pytest.mark.parametrize(("backend", "receive"), MODES)
def test_a_corrupted_last_piece_is_a_verify_error(backend: str, receive: str) -> None:
    with split_echo(corrupt_tail=True) as target:
        result = _run(target, backend, receive)
    summary = result.summary
    assert summary.requests == 0  # no echo passed: each one's last byte was wrong
    assert set(summary.errors) == {"verify"}
    assert summary.errors["verify"] >= 4  # at least one echo per connection was checked
