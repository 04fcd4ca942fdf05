"""The backend contract: the same cases on every backend available here.

Peers are plain stdlib sockets (or the engine's own accepted sockets), so each case tests
the backend against the real kernel, never against a stand-in.
"""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from loadgen.engine import Backend, BackendUnavailable, ErrorKind, select_backend
from loadgen.engine.base import FLAG_READABLE

from .conftest import AVAILABLE, Reaper


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(128)
    server.settimeout(10)
    yield server
    server.close()


def _connected_pair(reaper: Reaper, listener: socket.socket) -> tuple[int, socket.socket]:
    engine = reaper.engine
    handle = engine.tcp_socket()
    token = reaper.token()
    engine.connect(handle, listener.getsockname(), token)
    assert reaper.take(token)[1] == 0
    peer, _ = listener.accept()
    peer.settimeout(10)
    return handle, peer


def _free_port() -> int:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port: int = probe.getsockname()[1]
    probe.close()
    return port


def _error_kind(engine: Backend, result: int) -> ErrorKind:
    assert result < 0, f"expected an error completion, got result {result}"
    return engine.error_kind(-result)


def test_unknown_backend_lists_choices() -> None:
    with pytest.raises(BackendUnavailable, match="choose one of: auto, iocp, io_uring, epoll"):
        select_backend("kqueue")


def test_connect_ok(reaper: Reaper, listener: socket.socket) -> None:
    handle, peer = _connected_pair(reaper, listener)
    assert reaper.engine.pending() == 0
    reaper.engine.close(handle)
    assert peer.recv(1) == b""  # our close reached the peer as a FIN
    peer.close()


def test_connect_refused(reaper: Reaper) -> None:
    engine = reaper.engine
    handle = engine.tcp_socket()
    token = reaper.token()
    engine.connect(handle, ("127.0.0.1", _free_port()), token)
    _, result, _ = reaper.take(token)
    assert _error_kind(engine, result) is ErrorKind.REFUSED
    engine.close(handle)


def test_send_and_receive_with_partial_reads(reaper: Reaper, listener: socket.socket) -> None:
    engine = reaper.engine
    handle, peer = _connected_pair(reaper, listener)
    payload = os.urandom(300_000)  # larger than the socket buffers: partial sends happen
    sent = 0
    while sent < len(payload):
        token = reaper.token()
        engine.send(handle, memoryview(bytearray(payload[sent : sent + 65536])), token)
        _, n, _ = reaper.take(token)
        assert n > 0
        if sent == 0:
            peer.setblocking(False)
        sent += n
        _drain_some(peer)
    peer.settimeout(10)
    received = bytearray(_drained)
    _drained.clear()
    while len(received) < len(payload):
        received += peer.recv(1 << 20)
    assert bytes(received) == payload

    peer.sendall(payload)
    buf = bytearray(4096)
    got = bytearray()
    while len(got) < len(payload):
        token = reaper.token()
        engine.recv(handle, buf, token)
        _, n, _ = reaper.take(token)
        assert 0 < n <= len(buf)
        got += buf[:n]
    assert bytes(got) == payload
    engine.close(handle)
    peer.close()


_drained = bytearray()


def _drain_some(peer: socket.socket) -> None:
    """Read what the peer has right now so the engine's sends can progress."""
    try:
        while True:
            chunk = peer.recv(1 << 20)
            if not chunk:
                return
            _drained.extend(chunk)
    except BlockingIOError:
        return


def test_zero_byte_receive_completes_only_when_data_arrives(
    reaper: Reaper, listener: socket.socket
) -> None:
    engine = reaper.engine
    handle, peer = _connected_pair(reaper, listener)
    token = reaper.token()
    engine.recv_zero(handle, token)
    reaper.poll(0.3)
    assert token not in reaper.done, "zero-byte receive completed with no data"
    assert engine.pending() == 1

    peer.sendall(b"x" * 5000)
    _, result, flags = reaper.take(token)
    assert result == 0
    assert flags & FLAG_READABLE
    scratch = bytearray(1024)
    got = 0
    while True:
        n = engine.recv_now(handle, scratch)
        if n < 0:
            assert engine.would_block(-n)
            if got == 5000:
                break
            time.sleep(0.01)
            continue
        assert n > 0
        got += n
    assert got == 5000
    engine.close(handle)
    peer.close()


def test_zero_byte_receive_then_eof(reaper: Reaper, listener: socket.socket) -> None:
    engine = reaper.engine
    handle, peer = _connected_pair(reaper, listener)
    token = reaper.token()
    engine.recv_zero(handle, token)
    peer.close()
    _, result, flags = reaper.take(token)
    assert result == 0 and flags & FLAG_READABLE
    assert engine.recv_now(handle, bytearray(16)) == 0  # draining tells EOF apart
    engine.close(handle)


def test_peer_close_vs_reset(reaper: Reaper, listener: socket.socket) -> None:
    engine = reaper.engine
    buf = bytearray(64)

    closed, peer = _connected_pair(reaper, listener)
    token = reaper.token()
    engine.recv(closed, buf, token)
    peer.close()  # FIN
    assert reaper.take(token)[1] == 0

    reset, peer = _connected_pair(reaper, listener)
    token = reaper.token()
    engine.recv(reset, buf, token)
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    peer.close()  # RST
    _, result, _ = reaper.take(token)
    assert _error_kind(engine, result) is ErrorKind.RESET
    engine.close(closed)
    engine.close(reset)


def _read_until_not_eagain(engine: Backend, handle: int) -> int:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        n = engine.recv_now(handle, bytearray(16))
        if n >= 0 or not engine.would_block(-n):
            return n
        time.sleep(0.01)
    raise AssertionError("the socket never became readable")


def test_end_error_tells_an_orderly_close_from_a_taken_reset(
    reaper: Reaper, listener: socket.socket
) -> None:
    engine = reaper.engine
    closed, peer = _connected_pair(reaper, listener)
    peer.close()  # FIN
    assert _read_until_not_eagain(engine, closed) == 0
    assert engine.end_error(closed) == 0

    reset, peer = _connected_pair(reaper, listener)
    token = reaper.token()
    engine.recv(reset, bytearray(16), token)  # posted before the reset, as Wine 8 needs
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    peer.close()  # RST
    _, result, _ = reaper.take(token)
    assert _error_kind(engine, result) is ErrorKind.RESET  # this receive took the error
    if sys.platform != "win32":  # Windows reports the reset again; Linux only the end
        assert engine.recv_now(reset, bytearray(16)) == 0
        assert engine.error_kind(engine.end_error(reset)) is ErrorKind.RESET
    engine.close(closed)
    engine.close(reset)


def test_cancel_pending_receive(reaper: Reaper, listener: socket.socket) -> None:
    engine = reaper.engine
    handle, peer = _connected_pair(reaper, listener)
    for post in (engine.recv, None):
        token = reaper.token()
        if post is None:
            engine.recv_zero(handle, token)
        else:
            post(handle, bytearray(64), token)
        reaper.poll(0.05)
        engine.cancel(handle, token)
        _, result, _ = reaper.take(token)
        assert _error_kind(engine, result) is ErrorKind.CANCELLED
        assert engine.pending() == 0
    # The socket still works after a cancel.
    peer.sendall(b"after")
    buf = bytearray(64)
    token = reaper.token()
    engine.recv(handle, buf, token)
    _, n, _ = reaper.take(token)
    assert buf[:n] == b"after"
    engine.close(handle)
    peer.close()


def test_close_with_operations_pending(reaper: Reaper, listener: socket.socket) -> None:
    engine = reaper.engine
    handle, peer = _connected_pair(reaper, listener)
    token = reaper.token()
    engine.recv(handle, bytearray(64), token)
    reaper.poll(0.05)
    engine.close(handle)
    _, result, _ = reaper.take(token)
    assert result < 0 or result == 0  # cancelled, or EOF-like: it must complete, once
    reaper.until(lambda: engine.pending() == 0)
    peer.close()


def test_accept_and_echo_between_engine_sockets(reaper: Reaper) -> None:
    engine = reaper.engine
    listen_handle, address = engine.listen_socket("127.0.0.1", 0, 128)
    accept_token = reaper.token()
    engine.accept(listen_handle, accept_token)
    client = engine.tcp_socket()
    connect_token = reaper.token()
    engine.connect(client, address, connect_token)
    assert reaper.take(connect_token)[1] == 0
    server = reaper.take(accept_token)[1]
    assert server >= 0

    message = bytearray(b"hello, engine")
    token = reaper.token()
    engine.send(client, message, token)
    assert reaper.take(token)[1] == len(message)
    buf = bytearray(64)
    token = reaper.token()
    engine.recv(server, buf, token)
    n = reaper.take(token)[1]
    assert buf[:n] == message
    for handle in (client, server, listen_handle):
        engine.close(handle)


def _echo_many(engine: Backend, reaper: Reaper, count: int) -> None:
    """``count`` engine clients each send a distinct message to engine-accepted sockets."""
    listen_handle, address = engine.listen_socket("127.0.0.1", 0, 4096)
    accepted: list[int] = []
    accept_token = -1

    def post_accept() -> None:
        nonlocal accept_token
        accept_token = reaper.token()
        engine.accept(listen_handle, accept_token)

    post_accept()
    clients = [engine.tcp_socket() for _ in range(count)]
    connect_tokens = {}
    for handle in clients:
        token = reaper.token()
        connect_tokens[token] = handle
        engine.connect(handle, address, token)

    def progress() -> bool:
        while accept_token in reaper.done:
            result = reaper.done.pop(accept_token)[1]
            assert result >= 0, f"accept failed: {result}"
            accepted.append(result)
            post_accept()
        return len(accepted) == count and all(t in reaper.done for t in connect_tokens)

    reaper.until(progress, timeout_s=60)
    for token in connect_tokens:
        assert reaper.done.pop(token)[1] == 0

    # Each server socket echoes whatever it reads; each client checks its own message.
    server_bufs = {h: bytearray(64) for h in accepted}
    recv_tokens = {}
    for handle in accepted:
        token = reaper.token()
        recv_tokens[token] = handle
        engine.recv(handle, server_bufs[handle], token)
    messages = {h: bytearray(f"message {h:06d}".encode()) for h in clients}
    client_bufs = {h: bytearray(64) for h in clients}
    reply_tokens = {}
    for handle in clients:
        engine.send(handle, messages[handle], reaper.token())
        token = reaper.token()
        reply_tokens[token] = handle
        engine.recv(handle, client_bufs[handle], token)

    def echo_progress() -> bool:
        for token in [t for t in recv_tokens if t in reaper.done]:
            handle = recv_tokens.pop(token)
            n = reaper.done.pop(token)[1]
            assert n > 0
            engine.send(handle, memoryview(server_bufs[handle])[:n], reaper.token())
        return all(t in reaper.done for t in reply_tokens)

    reaper.until(echo_progress, timeout_s=60)
    for token, handle in reply_tokens.items():
        n = reaper.done[token][1]
        assert client_bufs[handle][:n] == messages[handle]
    for handle in [*clients, *accepted, listen_handle]:
        engine.close(handle)
    reaper.until(lambda: engine.pending() == 0)


def test_thousand_concurrent_connections_echo(reaper: Reaper) -> None:
    _echo_many(reaper.engine, reaper, 1000)


_HOLDER = r"""
import socket, sys, time
try:
    import resource
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
except ImportError:
    pass  # Windows: no descriptor limit to raise
expected = int(sys.argv[1])
server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen(4096)
server.settimeout(0.5)
print(server.getsockname()[1], flush=True)
held = []
deadline = time.monotonic() + 120
while len(held) < expected and time.monotonic() < deadline:
    try:
        held.append(server.accept()[0])
    except TimeoutError:
        pass
print(len(held), flush=True)
sys.stdin.read()  # hold every connection until the test closes our stdin
"""


def _raise_nofile_limit(needed: int) -> None:
    try:
        import resource
    except ImportError:
        return  # Windows: sockets are not bounded by a descriptor limit
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < needed:
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard} is below the {needed} this test needs")
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _held_connections() -> int:
    """10,000, except under Wine: its wineserver holds one Linux descriptor for every socket
    of every process in the prefix, so engine and holder sockets together (2 x count + ~300)
    must fit the 20,000 RLIMIT_NOFILE hard limit of these machines."""
    if sys.platform == "win32":
        from loadgen.engine.win32 import wine_version

        if wine_version() is not None:
            return 9_000
    return 10_000


@pytest.mark.slow
def test_ten_thousand_connections_held_open(reaper: Reaper) -> None:
    count = _held_connections()
    _raise_nofile_limit(count + 200)
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(count)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdin is not None
        port = int(holder.stdout.readline())
        engine = reaper.engine
        handles: list[int] = []
        tokens: set[int] = set()
        # Connect in waves so the listen backlog (somaxconn) never overflows into SYN retries.
        for _ in range(count // 1000):
            wave = set()
            for _ in range(1000):
                handle = engine.tcp_socket()
                handles.append(handle)
                token = reaper.token()
                wave.add(token)
                engine.connect(handle, ("127.0.0.1", port), token)
            reaper.until(lambda wave=wave: wave <= reaper.done.keys(), timeout_s=60)
            tokens |= wave
        failures = [reaper.done[t] for t in tokens if reaper.done[t][1] != 0]
        assert not failures, f"{len(failures)} connects failed, e.g. {failures[:3]}"
        assert int(holder.stdout.readline()) == count  # the peer holds every one of them
        assert engine.pending() == 0
        for handle in handles:
            engine.close(handle)
    finally:
        holder.kill()
        holder.wait()


def test_every_backend_is_tested_here() -> None:
    """io_uring must not silently drop out of the Linux suite (CI has it)."""
    if os.environ.get("LOADGEN_TEST_BACKENDS"):
        pytest.skip("LOADGEN_TEST_BACKENDS narrows the backends on purpose")
    if sys.platform.startswith("linux"):
        assert "epoll" in AVAILABLE
        if os.environ.get("CI"):
            assert "io_uring" in AVAILABLE, "io_uring unavailable in CI"
    elif sys.platform == "win32":
        assert AVAILABLE == ["iocp"]
