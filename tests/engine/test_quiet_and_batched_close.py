"""Quiet sends (``send_quiet``) and batched closes (``close_many``) on every backend.

Peers are plain stdlib sockets on loopback; each case runs against the real kernel.
"""

from __future__ import annotations

import os
import socket
import struct
import threading
import time
from collections.abc import Iterator

import pytest

from loadgen.engine import ErrorKind

from .conftest import Reaper


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4096)
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


def _recv_exactly(peer: socket.socket, n: int) -> bytes:
    got = bytearray()
    while len(got) < n:
        chunk = peer.recv(n - len(got))
        assert chunk, f"EOF after {len(got)} of {n} bytes"
        got += chunk
    return bytes(got)


def test_a_quiet_send_delivers_its_bytes_and_completes_nothing(
    reaper: Reaper, listener: socket.socket
) -> None:
    engine = reaper.engine
    handle, peer = _connected_pair(reaper, listener)
    request = bytearray(b"q" * 64)
    for round_trip in range(3):
        send_token, recv_token = reaper.token(), reaper.token()
        engine.send_quiet(handle, request, send_token)
        reaper.poll(0)  # io_uring issues operations in wait()
        assert _recv_exactly(peer, 64) == bytes(request)
        peer.sendall(b"r" * 64)  # the response: it proves the request went out
        buf = bytearray(64)
        engine.recv(handle, buf, recv_token)
        assert reaper.take(recv_token)[1] == 64, round_trip
        assert send_token not in reaper.done  # no completion for the quiet send
    reaper.poll(0.05)
    assert all(token % 2 == 0 for token in reaper.done), reaper.done  # still none
    engine.close(handle)
    peer.close()


def test_a_quiet_send_larger_than_the_socket_buffers_is_sent_whole(
    reaper: Reaper, listener: socket.socket
) -> None:
    # Far more than the send and receive buffers hold: the kernel takes it in pieces, and
    # the backend must send every piece without reporting the short sends.
    engine = reaper.engine
    handle, peer = _connected_pair(reaper, listener)
    payload = bytearray(os.urandom(8 << 20))
    received = bytearray()

    def read_all() -> None:
        while len(received) < len(payload):
            chunk = peer.recv(1 << 20)
            if not chunk:
                return
            received.extend(chunk)

    reader = threading.Thread(target=read_all)
    reader.start()
    token = reaper.token()
    engine.send_quiet(handle, payload, token)
    while reader.is_alive():  # the engine's loop runs while the peer reads
        reaper.poll(0.05)
        reader.join(0.0)
    reader.join()
    assert len(received) == len(payload) and received == payload
    reaper.poll(0.05)
    assert token not in reaper.done
    engine.close(handle)
    peer.close()


def test_a_failed_quiet_send_completes_with_its_error(
    reaper: Reaper, listener: socket.socket
) -> None:
    engine = reaper.engine
    handle, peer = _connected_pair(reaper, listener)
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    peer.close()  # RST: a send now fails
    recv_token = reaper.token()
    engine.recv(handle, bytearray(64), recv_token)
    reaper.take(recv_token)  # the reset (or EOF) has arrived
    # The first send after a reset may still be taken by the kernel; keep sending quietly
    # until one fails, as a client's next request would.
    for _ in range(20):
        token = reaper.token()
        engine.send_quiet(handle, bytearray(64), token)
        reaper.poll(0.2)
        if token in reaper.done:
            break
    else:
        raise AssertionError(f"no quiet send to a reset peer failed: {reaper.done}")
    _, result, _ = reaper.done.pop(token)
    assert result < 0
    assert engine.error_kind(-result) in (ErrorKind.RESET, ErrorKind.OTHER)
    engine.close(handle)


def test_close_many_closes_every_socket_and_completes_each_pending_operation(
    reaper: Reaper, listener: socket.socket
) -> None:
    engine = reaper.engine
    pairs = [_connected_pair(reaper, listener) for _ in range(20)]
    tokens = []
    for handle, _ in pairs:
        token = reaper.token()
        engine.recv(handle, bytearray(64), token)
        tokens.append(token)
    quiet_token = reaper.token()
    engine.send_quiet(pairs[0][0], bytearray(64), quiet_token)
    reaper.poll(0.05)
    engine.close_many([handle for handle, _ in pairs])
    reaper.until(lambda: all(token in reaper.done for token in tokens))
    for token in tokens:
        result = reaper.done.pop(token)[1]
        assert result <= 0  # cancelled, or EOF-like: once each
    assert _recv_exactly(pairs[0][1], 64) == bytes(64)  # the quiet send went out first
    for _, peer in pairs:
        assert peer.recv(1) == b""  # FIN: the socket is closed
        peer.close()
    reaper.until(lambda: engine.pending() == 0)
    reaper.poll(0.05)
    assert quiet_token not in reaper.done  # a quiet send is never reported after close


def test_close_many_refuses_unknown_or_repeated_handles_before_closing_any(
    reaper: Reaper, listener: socket.socket
) -> None:
    engine = reaper.engine
    handle, peer = _connected_pair(reaper, listener)
    closed = engine.tcp_socket()
    engine.close(closed)
    with pytest.raises(ValueError):
        engine.close_many([handle, closed])
    with pytest.raises(ValueError):
        engine.close_many([handle, handle])
    # Still open: it can send.
    token = reaper.token()
    engine.send(handle, bytearray(b"x"), token)
    assert reaper.take(token)[1] == 1
    assert peer.recv(1) == b"x"
    engine.close_many([handle])
    assert peer.recv(1) == b""
    peer.close()


def test_a_cancelled_quiet_send_leaves_the_next_plain_send_reported(
    reaper: Reaper, listener: socket.socket
) -> None:
    # The peer reads nothing, so a quiet send far larger than the socket buffers stays
    # pending; cancelling it ends it, reported once (an error, or on io_uring the bytes
    # that went out: fewer than asked), and the socket's next plain send completes as usual.
    engine = reaper.engine
    handle, peer = _connected_pair(reaper, listener)
    quiet_token = reaper.token()
    engine.send_quiet(handle, bytearray(16 << 20), quiet_token)
    reaper.poll(0.1)
    engine.cancel(handle, quiet_token)
    result = reaper.take(quiet_token)[1]
    assert result < (16 << 20)
    if result < 0:
        assert engine.error_kind(-result) is ErrorKind.CANCELLED
    peer.setblocking(False)
    token = reaper.token()
    engine.send(handle, bytearray(b"x"), token)
    deadline = time.monotonic() + 10
    while token not in reaper.done and time.monotonic() < deadline:
        try:  # the peer drains what the quiet send left queued
            peer.recv(1 << 20)
        except BlockingIOError:
            reaper.poll(0.05)
    assert reaper.done.pop(token, None) == (token, 1, 0)
    assert quiet_token not in reaper.done
    engine.close(handle)
    peer.close()
