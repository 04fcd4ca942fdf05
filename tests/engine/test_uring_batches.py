"""io_uring: work batched into few ``io_uring_enter`` calls, counted on the real ring.

* ``close_many`` queues one ASYNC_CANCEL per socket and submits them together;
* ``SlotPool.close_all`` (the end of every run) closes through it;
* ``send_quiet`` sets IOSQE_CQE_SKIP_SUCCESS: the kernel posts no CQE for a success.
"""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Callable, Iterator

import pytest

from loadgen.engine import BackendUnavailable
from loadgen.engine.uring import UringBackend
from loadgen.load.client_config import ClientConfig
from loadgen.load.recorder import Recorder
from loadgen.load.requests import LoadClient


def _why_no_uring() -> str | None:
    if not sys.platform.startswith("linux"):
        return "io_uring is Linux-only"
    try:
        UringBackend(sq_entries=2, cq_entries=4).shutdown()
    except BackendUnavailable as exc:
        return str(exc)
    return None


_NO_URING = _why_no_uring()
pytestmark = pytest.mark.skipif(_NO_URING is not None, reason=f"io_uring: {_NO_URING}")

#: Sockets closed at once: thousands, as a shard ends its run with (RLIMIT_NOFILE here is
#: 20,000; each socket is one fd, the listener's side is never accepted).
SOCKETS = 3000


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    # Backlog above SOCKETS (somaxconn is 4,096 by default): every connect completes in
    # the kernel without an accept.
    server = socket.create_server(("127.0.0.1", 0), backlog=4096)
    yield server
    server.close()


class EnterCounter:
    """Counts the engine's ``io_uring_enter`` calls (its ``_enter`` wrapped)."""

    def __init__(self, engine: UringBackend) -> None:
        engine.wait(0)  # enables the ring: _enter is the plain syscall from now on
        self.calls = 0
        real: Callable[..., int] = engine._enter

        def counting(*args: int) -> int:
            self.calls += 1
            return real(*args)

        engine._enter = counting


def _connect_all(engine: UringBackend, address: tuple[str, int]) -> list[int]:
    handles = [engine.tcp_socket() for _ in range(SOCKETS)]
    for token, handle in enumerate(handles):
        engine.connect(handle, address, token)
    done: list[int] = []
    deadline = time.monotonic() + 30
    while len(done) < SOCKETS and time.monotonic() < deadline:
        done += [result for _, result, _ in engine.wait(0.1, 4096)]
    assert len(done) == SOCKETS and not any(done), done[:10]
    return handles


def test_close_many_cancels_thousands_of_sockets_in_one_enter(listener: socket.socket) -> None:
    engine = UringBackend()
    try:
        handles = _connect_all(engine, listener.getsockname())
        for token, handle in enumerate(handles, start=SOCKETS):
            engine.recv_zero(handle, token)  # something pending on every socket
        engine.wait(0)  # submitted: each socket now has a request the close must cancel
        counter = EnterCounter(engine)
        engine.close_many(handles)
        # 3,000 cancels fit the 4,096-entry SQ ring: one enter; a close each made 3,000.
        assert counter.calls == 1
        cancelled = 0
        deadline = time.monotonic() + 30
        while engine.pending() and time.monotonic() < deadline:
            cancelled += len(engine.wait(0.1, 4096))
        assert cancelled == SOCKETS and engine.pending() == 0
    finally:
        engine.shutdown()


def test_close_many_beyond_the_sq_ring_submits_once_per_ring(listener: socket.socket) -> None:
    engine = UringBackend(sq_entries=1024)
    try:
        handles = _connect_all(engine, listener.getsockname())
        for token, handle in enumerate(handles, start=SOCKETS):
            engine.recv_zero(handle, token)
            if token % 1000 == 0:
                engine.wait(0)  # keep the small SQ ring from filling while posting
        engine.wait(0)
        counter = EnterCounter(engine)
        engine.close_many(handles)
        assert counter.calls <= -(-SOCKETS // 1024) + 1  # a full ring submits early
        deadline = time.monotonic() + 30
        while engine.pending() and time.monotonic() < deadline:
            engine.wait(0.1, 4096)
        assert engine.pending() == 0
    finally:
        engine.shutdown()


def test_a_run_ends_with_its_sockets_closed_in_a_few_enters(listener: socket.socket) -> None:
    engine = UringBackend()
    try:
        config = ClientConfig([listener.getsockname()], SOCKETS, 64, "buffered", 64, 30.0, 5.0)
        client = LoadClient(engine, config, Recorder(time.perf_counter_ns()))
        client.preconnect()  # every connection open with its receive posted
        assert client.open_connections == SOCKETS
        counter = EnterCounter(engine)
        client.close_all(grace_s=30.0)
        assert engine.pending() == 0
        # One enter for the cancels, then the waits that reap them (a handful of batches).
        assert counter.calls <= 20, counter.calls
    finally:
        engine.shutdown()


def test_a_successful_quiet_send_posts_no_cqe(listener: socket.socket) -> None:
    engine = UringBackend(sq_entries=8, cq_entries=16)
    try:
        handle = engine.tcp_socket()
        engine.connect(handle, listener.getsockname(), 1)
        assert engine.wait(5) == [(1, 0, 0)]
        peer, _ = listener.accept()
        cq_tail_before = engine._cq_ktail[0]
        engine.send_quiet(handle, bytearray(b"q" * 64), 2)
        assert engine.wait(0) == []
        peer.settimeout(10)
        assert peer.recv(64) == b"q" * 64
        assert engine.wait(0) == []
        assert engine._cq_ktail[0] == cq_tail_before  # the kernel posted nothing
        engine.close(handle)
        peer.close()
    finally:
        engine.shutdown()


@pytest.mark.parametrize("abort", [False, True])
def test_close_many_ends_each_connection_before_it_returns(
    listener: socket.socket, abort: bool
) -> None:
    # As close() does: the cancelled requests let go of their files in close_many's one
    # enter, so every peer sees its FIN (or RST) with no wait() after it.
    engine = UringBackend()
    try:
        handles = [engine.tcp_socket() for _ in range(50)]
        for token, handle in enumerate(handles):
            engine.connect(handle, listener.getsockname(), token)
        connected = []
        while len(connected) < len(handles):
            connected += engine.wait(5)
        peers = [listener.accept()[0] for _ in handles]
        for token, handle in enumerate(handles, start=len(handles)):
            engine.recv(handle, bytearray(64), token)
        assert engine.wait(0) == []
        engine.close_many(handles, abort=abort)
        for peer in peers:
            peer.settimeout(5)
            if abort:
                with pytest.raises(ConnectionResetError):
                    peer.recv(1)
            else:
                assert peer.recv(1) == b""
            peer.close()
    finally:
        engine.shutdown()
