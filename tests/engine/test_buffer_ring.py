"""Provided-buffer rings and registered receive buffers, against the real kernel.

The ring cases run where the backend has the feature (io_uring on Linux 6.1+) and skip
with the reason elsewhere; every backend must say truthfully whether it has them, and one
without them (epoll, IOCP under Wine) must refuse with a message naming itself.
"""

from __future__ import annotations

import errno
import socket
import time
from collections.abc import Iterator

import pytest

from loadgen.engine import Backend
from loadgen.engine.base import RING_BID_SHIFT, RING_BUFFER, RING_MORE

from .conftest import AVAILABLE, Reaper


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(128)
    server.settimeout(10)
    yield server
    server.close()


def _needs_ring(engine: Backend) -> None:
    if not engine.supports_buffer_ring:
        pytest.skip(f"the {engine.name} backend has no provided-buffer ring (io_uring only)")


def _needs_fixed(engine: Backend) -> None:
    if not engine.supports_fixed_buffers:
        pytest.skip(f"the {engine.name} backend cannot register buffers (io_uring only)")


def _pairs(reaper: Reaper, listener: socket.socket, n: int) -> list[tuple[int, socket.socket]]:
    engine = reaper.engine
    pairs = []
    for _ in range(n):
        handle = engine.tcp_socket()
        token = reaper.token()
        engine.connect(handle, listener.getsockname(), token)
        assert reaper.take(token)[1] == 0
        peer, _ = listener.accept()
        peer.settimeout(10)
        pairs.append((handle, peer))
    return pairs


def _vm_pin_bytes() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmPin:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmPin in /proc/self/status")


def test_every_backend_says_whether_it_has_the_features(backend: Backend) -> None:
    if backend.name == "io_uring":
        assert backend.supports_fixed_buffers
        return
    # epoll and IOCP (also under Wine): no ring, no registered buffers, and a clear no.
    assert backend.supports_buffer_ring is False
    assert backend.supports_fixed_buffers is False
    with pytest.raises(NotImplementedError, match=f"{backend.name} backend.*buffer-ring"):
        backend.setup_buffer_ring(16, 4096)
    with pytest.raises(NotImplementedError, match=f"{backend.name} backend.*io_uring"):
        backend.recv_ring(0, 1)
    with pytest.raises(NotImplementedError, match=f"{backend.name} backend.*register"):
        backend.register_buffers(4, 4096)


# A ring far smaller than the data: 8 buffers of 256 B for 32 connections x 4,000 B.
RING_COUNT, RING_SIZE = 8, 256
CONNECTIONS, PAYLOAD = 32, 4000


def _payload(index: int) -> bytes:
    return bytes((index * 7 + i) % 251 for i in range(PAYLOAD))


def test_many_connections_share_a_small_ring_through_exhaustion(
    reaper: Reaper, listener: socket.socket
) -> None:
    engine = reaper.engine
    _needs_ring(engine)
    engine.setup_buffer_ring(RING_COUNT, RING_SIZE)
    assert engine.posted_recv_bytes() == RING_COUNT * RING_SIZE
    pairs = _pairs(reaper, listener, CONNECTIONS)
    by_token: dict[int, int] = {}
    for index, (handle, _peer) in enumerate(pairs):
        token = reaper.token()
        by_token[token] = index
        engine.recv_ring(handle, token)
    # Everything is sent (and the peers closed) before a single completion is reaped: the
    # ring runs dry at once and receives end with ENOBUFS; the data waits in the sockets.
    for index, (_handle, peer) in enumerate(pairs):
        peer.sendall(_payload(index))
        peer.shutdown(socket.SHUT_WR)
    received = [bytearray() for _ in pairs]
    ended = [False] * CONNECTIONS
    enobufs = 0
    most_lent = 0
    deadline = time.monotonic() + 20
    while not all(ended):
        assert time.monotonic() < deadline, f"stuck: {sum(map(len, received))} B received"
        lent = []
        for token, result, flags in engine.wait(0.1):
            index = by_token[token]
            if result > 0:
                assert flags & RING_BUFFER
                bid = flags >> RING_BID_SHIFT
                assert 0 <= bid < RING_COUNT
                assert result <= RING_SIZE
                received[index] += engine.ring_bytes(bid, result)
                lent.append(bid)
            if flags & RING_MORE:
                continue
            if result == 0:
                ended[index] = True  # EOF: the peer's FIN, after all its data
            elif result == -errno.ENOBUFS or result > 0:
                enobufs += result < 0
                del by_token[token]
                token = reaper.token()
                by_token[token] = index
                engine.recv_ring(pairs[index][0], token)  # re-armed; buffers go back below
            else:
                raise AssertionError(f"connection {index}: error {result}")
        most_lent = max(most_lent, len(lent))
        assert engine.posted_recv_bytes() == (RING_COUNT - len(lent)) * RING_SIZE
        for bid in lent:
            engine.release_ring_buffer(bid)
    for index, data in enumerate(received):
        assert bytes(data) == _payload(index), f"connection {index} got other bytes"
    assert enobufs > 0, "the ring never ran dry: the test did not exercise exhaustion"
    assert most_lent <= RING_COUNT
    assert engine.pending() == 0
    assert engine.posted_recv_bytes() == RING_COUNT * RING_SIZE  # every buffer is back
    for handle, peer in pairs:
        engine.close(handle)
        peer.close()


def test_ring_buffers_are_given_back_exactly_once(reaper: Reaper, listener: socket.socket) -> None:
    engine = reaper.engine
    _needs_ring(engine)
    engine.setup_buffer_ring(4, 64)
    [(handle, peer)] = _pairs(reaper, listener, 1)
    token = reaper.token()
    engine.recv_ring(handle, token)
    with pytest.raises(RuntimeError, match="already pending"):
        engine.recv(handle, bytearray(8), reaper.token())  # one read-side operation at a time
    peer.sendall(b"hello")
    completions = []
    deadline = time.monotonic() + 10
    while not completions:
        assert time.monotonic() < deadline
        completions = engine.wait(0.1)
    [(got_token, result, flags)] = completions
    assert (got_token, result) == (token, 5)
    assert flags & RING_BUFFER and flags & RING_MORE  # lent a buffer, still armed
    bid = flags >> RING_BID_SHIFT
    assert engine.ring_bytes(bid, result) == b"hello"
    assert engine.posted_recv_bytes() == 3 * 64
    engine.release_ring_buffer(bid)
    assert engine.posted_recv_bytes() == 4 * 64
    with pytest.raises(ValueError, match="not lent out"):
        engine.release_ring_buffer(bid)
    with pytest.raises(ValueError, match="at most 64 bytes"):
        engine.ring_bytes(bid, 65)
    # Closing ends the armed receive: one last completion, cancelled, and nothing pending.
    engine.close(handle)
    _, result, flags = reaper.take(token)
    assert result < 0 and engine.error_kind(-result).value == "cancelled"
    assert not flags & RING_MORE
    assert engine.pending() == 0
    peer.close()


def test_one_shot_ring_receive_takes_at_most_max_bytes(
    reaper: Reaper, listener: socket.socket
) -> None:
    engine = reaper.engine
    _needs_ring(engine)
    engine.setup_buffer_ring(2, 1024)
    [(handle, peer)] = _pairs(reaper, listener, 1)
    peer.sendall(bytes(range(100)))
    token = reaper.token()
    engine.recv_ring(handle, token, multishot=False, max_bytes=10)
    _, result, flags = reaper.take(token)
    assert result == 10 and flags & RING_BUFFER and not flags & RING_MORE
    bid = flags >> RING_BID_SHIFT
    assert engine.ring_bytes(bid, result) == bytes(range(10))
    engine.release_ring_buffer(bid)
    with pytest.raises(ValueError, match="one-shot"):
        engine.recv_ring(handle, reaper.token(), max_bytes=10)
    engine.close(handle)
    peer.close()


def test_ring_setup_checks_its_arguments(backend: Backend) -> None:
    _needs_ring(backend)
    with pytest.raises(ValueError, match="power of two"):
        backend.setup_buffer_ring(3, 4096)
    with pytest.raises(ValueError, match="power of two"):
        backend.setup_buffer_ring(65536, 16)
    backend.setup_buffer_ring(2, 16)
    with pytest.raises(RuntimeError, match="already has a buffer ring"):
        backend.setup_buffer_ring(2, 16)


FIXED_COUNT, FIXED_SIZE = 64, 64 * 1024


def test_registered_buffers_receive_and_show_in_vm_pin(
    reaper: Reaper, listener: socket.socket
) -> None:
    engine = reaper.engine
    _needs_fixed(engine)
    pinned_before = _vm_pin_bytes()
    views = engine.register_buffers(FIXED_COUNT, FIXED_SIZE)
    pinned = _vm_pin_bytes() - pinned_before
    # Registration pins every page of the buffers at once (no data needed).
    assert FIXED_COUNT * FIXED_SIZE <= pinned <= FIXED_COUNT * FIXED_SIZE + (1 << 20)
    assert [len(view) for view in views] == [FIXED_SIZE] * FIXED_COUNT
    pairs = _pairs(reaper, listener, 8)
    tokens = []
    for index, (handle, _peer) in enumerate(pairs):
        token = reaper.token()
        engine.recv_fixed(handle, index * 8, token)  # any buffer, not only the i-th
        tokens.append(token)
    reaper.poll(0.05)
    assert engine.posted_recv_bytes() == 8 * FIXED_SIZE
    for index, (_handle, peer) in enumerate(pairs):
        peer.sendall(b"fixed %d" % index)
    for index, token in enumerate(tokens):
        _, result, _ = reaper.take(token)
        assert bytes(views[index * 8][:result]) == b"fixed %d" % index
    assert engine.posted_recv_bytes() == 0
    # A capped receive, then EOF reads as 0 like recv.
    handle, peer = pairs[0]
    peer.sendall(b"abcdef")
    token = reaper.token()
    engine.recv_fixed(handle, 3, token, nbytes=4)
    assert reaper.take(token)[1] == 4
    assert bytes(views[3][:4]) == b"abcd"
    with pytest.raises(ValueError, match="holds 65536 bytes"):
        engine.recv_fixed(handle, 3, reaper.token(), nbytes=FIXED_SIZE + 1)
    for handle, peer in pairs:
        engine.close(handle)
        peer.close()


def test_buffers_beyond_the_first_iovec_and_reused_sqe_slots(
    listener: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Registered buffers past the first iovec are addressed with a non-zero buf_index,
    which must not linger in the SQE slot for the next operation packed there (CONNECT
    and POLL_ADD refuse a non-zero buf_index). A tiny SQ ring reuses slots at once; the
    per-iovec limit (1 GiB in the kernel) is lowered so 8 buffers need 4 iovecs."""
    if "io_uring" not in AVAILABLE:
        pytest.skip("io_uring is not available here")
    from loadgen.engine import uring_abi
    from loadgen.engine.uring import UringBackend

    monkeypatch.setattr(uring_abi, "IORING_MAX_REG_BUFFER_BYTES", 2 * 4096)
    engine = UringBackend(sq_entries=4)
    try:
        reaper = Reaper(engine)
        views = engine.register_buffers(8, 4096)
        for round_ in range(3):
            pairs = _pairs(reaper, listener, 4)
            tokens = []
            for index, (handle, peer) in enumerate(pairs):
                token = reaper.token()
                engine.recv_fixed(handle, 7 - index, token)  # buf_index 3, 3, 2, 2
                tokens.append(token)
                peer.sendall(b"%d-%d" % (round_, index))
            for index, token in enumerate(tokens):
                _, result, _ = reaper.take(token)
                assert bytes(views[7 - index][:result]) == b"%d-%d" % (round_, index)
            for handle, peer in pairs:  # POLL_ADD in slots that held a buf_index
                token = reaper.token()
                engine.recv_zero(handle, token)
                peer.close()
                assert reaper.take(token)[1] == 0
                engine.close(handle)
    finally:
        engine.shutdown()
