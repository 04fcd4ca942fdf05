"""IOCP facts the shared contract suite does not pin down.

These run on Windows, and on Linux CI under Wine through ``scripts/windows-python``
(where they are not skipped). The first test runs on every other OS.
"""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Iterator

import pytest

from loadgen.engine import BackendUnavailable, ErrorKind, select_backend
from loadgen.engine.base import FLAG_READABLE

from .conftest import Reaper


@pytest.mark.skipif(sys.platform == "win32", reason="checks the error off Windows")
def test_iocp_off_windows_says_why() -> None:
    with pytest.raises(BackendUnavailable, match="IOCP needs Windows"):
        select_backend("iocp")


pytestmark_windows = pytest.mark.skipif(
    sys.platform != "win32", reason="IOCP needs Windows (Linux CI runs these under Wine)"
)


@pytest.fixture
def iocp() -> Iterator[Reaper]:
    engine = select_backend("iocp")
    try:
        yield Reaper(engine)
    finally:
        engine.shutdown()


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.settimeout(10)
    yield server
    server.close()


def _pair(reaper: Reaper, listener: socket.socket) -> tuple[int, socket.socket]:
    handle = reaper.engine.tcp_socket()
    token = reaper.token()
    reaper.engine.connect(handle, listener.getsockname(), token)
    assert reaper.take(token)[1] == 0
    peer, _ = listener.accept()
    peer.settimeout(10)
    return handle, peer


@pytestmark_windows
def test_immediate_success_is_not_reported_twice(iocp: Reaper, listener: socket.socket) -> None:
    """FILE_SKIP_COMPLETION_PORT_ON_SUCCESS: a receive that finds data completes once.

    If the kernel queued a packet anyway, it would land on the next operation posted with
    the same OVERLAPPED slot and complete that one with stale data.
    """
    engine = iocp.engine
    handle, peer = _pair(iocp, listener)
    peer.sendall(b"first")
    time.sleep(0.2)  # let the bytes reach our receive queue
    buf = bytearray(64)
    first = iocp.token()
    engine.recv(handle, buf, first)
    assert iocp.take(first)[1] == 5
    second = iocp.token()
    engine.recv(handle, buf, second)  # same slot, same OVERLAPPED address
    iocp.poll(0.3)
    assert second not in iocp.done, "a stale packet completed the next receive"
    peer.sendall(b"second!")
    assert iocp.take(second)[1] == 7
    assert buf[:7] == b"second!"
    engine.close(handle)
    peer.close()


@pytestmark_windows
def test_posted_receive_bytes_are_counted(iocp: Reaper, listener: socket.socket) -> None:
    engine = iocp.engine
    handle, peer = _pair(iocp, listener)
    posted = engine.posted_recv_bytes  # type: ignore[attr-defined]  # IOCP-only
    token = iocp.token()
    engine.recv(handle, bytearray(65536), token)
    assert posted() == 65536
    peer.sendall(b"x")
    assert iocp.take(token)[1] == 1
    assert posted() == 0
    token = iocp.token()
    engine.recv_zero(handle, token)  # a zero-byte receive holds no buffer
    assert posted() == 0
    peer.sendall(b"y")
    assert iocp.take(token)[1:] == (0, FLAG_READABLE)
    engine.close(handle)
    peer.close()


@pytestmark_windows
def test_closing_a_listener_fails_its_pending_accept(iocp: Reaper) -> None:
    engine = iocp.engine
    listen_handle, _ = engine.listen_socket("127.0.0.1", 0, 16)
    token = iocp.token()
    engine.accept(listen_handle, token)
    iocp.poll(0.05)
    engine.close(listen_handle)
    _, result, _ = iocp.take(token)
    assert result < 0
    assert engine.error_kind(-result) is ErrorKind.CANCELLED
    assert engine.pending() == 0


@pytestmark_windows
def test_ipv6_loopback_connect_and_accept(iocp: Reaper) -> None:
    engine = iocp.engine
    try:
        listen_handle, address = engine.listen_socket("::1", 0, 16)
    except OSError as exc:
        pytest.skip(f"no IPv6 loopback here: {exc}")
    assert address[0] == "::1" and address[1] > 0
    accept_token = iocp.token()
    engine.accept(listen_handle, accept_token)
    client = engine.tcp_socket(socket.AF_INET6)
    token = iocp.token()
    engine.connect(client, address, token)
    assert iocp.take(token)[1] == 0
    server = iocp.take(accept_token)[1]
    assert server > 0
    token = iocp.token()
    engine.send(server, bytearray(b"v6"), token)
    assert iocp.take(token)[1] == 2
    scratch = bytearray(8)
    token = iocp.token()
    engine.recv(client, scratch, token)
    assert iocp.take(token)[1] == 2 and scratch[:2] == b"v6"
    for handle in (client, server, listen_handle):
        engine.close(handle)


@pytestmark_windows
def test_send_accepts_read_only_bytes(iocp: Reaper, listener: socket.socket) -> None:
    engine = iocp.engine
    handle, peer = _pair(iocp, listener)
    token = iocp.token()
    engine.send(handle, memoryview(b"read-only"), token)
    assert iocp.take(token)[1] == 9
    assert peer.recv(64) == b"read-only"
    engine.close(handle)
    peer.close()


@pytestmark_windows
def test_abortive_close_resets_the_peer(iocp: Reaper) -> None:
    """close(abort=True) sends RST: the peer's pending receive fails with a reset.

    The peer's receive is posted before the reset arrives on purpose: Wine 8 reports a
    reset only to a receive already pending (its server consumes the Linux socket error
    while polling, so a receive posted afterwards reads EOF), while Windows reports
    WSAECONNRESET either way.
    """
    engine = iocp.engine
    listen_handle, address = engine.listen_socket("127.0.0.1", 0, 16)
    accept_token = iocp.token()
    engine.accept(listen_handle, accept_token)
    client = engine.tcp_socket()
    token = iocp.token()
    engine.connect(client, address, token)
    assert iocp.take(token)[1] == 0
    server = iocp.take(accept_token)[1]
    token = iocp.token()
    engine.recv(server, bytearray(64), token)
    iocp.poll(0.05)
    engine.close(client, abort=True)
    _, result, _ = iocp.take(token)
    assert result < 0 and engine.error_kind(-result) is ErrorKind.RESET
    engine.close(server)
    engine.close(listen_handle)


@pytestmark_windows
def test_error_kinds_cover_win32_and_winsock_codes(iocp: Reaper) -> None:
    kind = iocp.engine.error_kind
    assert kind(10061) is kind(1225) is ErrorKind.REFUSED
    assert {kind(10054), kind(64), kind(10053), kind(1236)} == {ErrorKind.RESET}
    assert kind(995) is ErrorKind.CANCELLED
    assert kind(10060) is kind(121) is ErrorKind.TIMEOUT
    # Out of buffers or pool: what a buffered receive runs into at scale, counted as itself.
    assert {kind(10055), kind(1450), kind(1453)} == {ErrorKind.NO_BUFFERS}
    assert {kind(1231), kind(1232), kind(1234), kind(10051), kind(10065)} == {ErrorKind.UNREACHABLE}
    assert kind(10049) is kind(10048) is ErrorKind.ADDRESS_UNAVAILABLE
    assert kind(10022) is ErrorKind.OTHER
    assert iocp.engine.would_block(10035)


@pytestmark_windows
def test_shutdown_with_operations_pending_drains_the_port(
    iocp: Reaper, listener: socket.socket
) -> None:
    from loadgen.engine import iocp as iocp_module

    engine = iocp.engine
    handles = []
    peers = []
    for _ in range(20):
        handle, peer = _pair(iocp, listener)
        engine.recv(handle, bytearray(1024), iocp.token())
        handles.append(handle)
        peers.append(peer)
    before = len(iocp_module._ABANDONED)
    engine.shutdown()
    assert len(iocp_module._ABANDONED) == before, "the kernel kept operations after close"
    for peer in peers:
        peer.close()
