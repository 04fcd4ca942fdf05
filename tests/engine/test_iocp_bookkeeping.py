"""The IOCP backend's bookkeeping where handles, pools and shutdown meet.

Real sockets on Windows CPython (under Wine on Linux CI, through ``tests/test_wine.py``).
Where only real Windows would show a fault (a socket option applied to the wrong socket
fails silently there), the engine's calls are watched instead: the engine still does the
real work, the test only records which socket each option went to.
"""

from __future__ import annotations

import socket
import struct
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from loadgen.engine import ErrorKind, select_backend
from loadgen.engine.base import Backend

from .conftest import Reaper

pytestmark = pytest.mark.skipif(
    sys.platform != "win32", reason="IOCP needs Windows (Linux CI runs these under Wine)"
)

SO_UPDATE_ACCEPT_CONTEXT = 0x700B
SO_UPDATE_CONNECT_CONTEXT = 0x7010
ACCEPT_KIND = 3  # iocp_slots.ACCEPT
STATUS_PENDING = 0x103  # what the kernel keeps in OVERLAPPED.Internal until it completes


def _wait_for(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    """Wait for something the kernel does without reading any completion."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


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
    server.listen(64)
    server.settimeout(10)
    yield server
    server.close()


class OptionLog:
    """Records (handle, option) of every setsockopt the engine makes, then makes it."""

    def __init__(self, engine: Backend) -> None:
        self.calls: list[tuple[int, int]] = []
        winsock = engine._winsock  # type: ignore[attr-defined]
        real = winsock.set_option

        def set_option(handle: int, level: int, option: int, value: bytes) -> int:
            self.calls.append((handle, option))
            result: int = real(handle, level, option, value)
            return result

        winsock.set_option = set_option

    def to(self, handle: int, option: int) -> int:
        return self.calls.count((handle, option))

    def count(self, option: int) -> int:
        return sum(made == option for _, made in self.calls)


def _accept_ops(engine: Backend) -> list[Any]:
    return [op for op in engine._inflight.values() if op.kind == ACCEPT_KIND]  # type: ignore[attr-defined]


def _accepted_in_kernel(engine: Backend) -> int:
    """AcceptEx that have finished (their OVERLAPPED's Internal is no longer
    STATUS_PENDING) but whose packets nobody has read yet."""
    return sum(
        struct.unpack_from("<Q", op.block)[0] != STATUS_PENDING for op in _accept_ops(engine)
    )


def test_late_connect_completion_leaves_a_reused_handle_alone(
    iocp: Reaper, listener: socket.socket
) -> None:
    """A ConnectEx that finished, whose socket was closed before its packet was read, must
    not make SO_UPDATE_CONNECT_CONTEXT on the new socket that got the same handle value."""
    engine = iocp.engine
    log = OptionLog(engine)
    for _attempt in range(20):  # until a late completion arrives as a success
        old = engine.tcp_socket()
        token = iocp.token()
        engine.connect(old, listener.getsockname(), token)
        listener.accept()[0].close()  # the connection exists: ConnectEx has its result
        engine.close(old)
        new = engine.tcp_socket()
        if new != old:
            engine.close(new)
            pytest.skip(f"handle values are not reused at once here ({old} -> {new})")
        _, result, _ = iocp.take(token)
        engine.close(new)
        if result == 0:
            break
    else:
        pytest.skip("every late connect came back cancelled: nothing to check here")
    assert log.to(new, SO_UPDATE_CONNECT_CONTEXT) == 0, log.calls


def test_late_accept_completion_is_not_given_a_reused_listener_handle(iocp: Reaper) -> None:
    """An AcceptEx that finished after its listener closed: the accepted socket is closed,
    never updated with (or registered beside) the new socket now holding the handle."""
    engine = iocp.engine
    log = OptionLog(engine)
    listen_handle, address = engine.listen_socket("127.0.0.1", 0, 16)
    token = iocp.token()
    engine.accept(listen_handle, token)
    client = socket.create_connection(address, timeout=10)
    _wait_for(lambda: _accepted_in_kernel(engine) == 1)  # accepted, its packet not read
    engine.close(listen_handle)
    reused = engine.tcp_socket()
    if reused != listen_handle:
        engine.close(reused)
        client.close()
        pytest.skip(f"handle values are not reused at once here ({listen_handle} -> {reused})")
    iocp.until(lambda: not _accept_ops(engine))  # every AcceptEx came back
    assert log.count(SO_UPDATE_ACCEPT_CONTEXT) == 0  # not with the reused handle, not at all
    assert set(engine._socks) == {reused}  # type: ignore[attr-defined]
    _, result, _ = iocp.done.pop(token)
    assert result < 0 and engine.error_kind(-result) is ErrorKind.CANCELLED
    engine.close(reused)
    client.close()


def test_an_accept_finishing_during_shutdown_is_not_kept(iocp: Reaper) -> None:
    engine = iocp.engine
    listen_handle, address = engine.listen_socket("127.0.0.1", 0, 16)
    engine.accept(listen_handle, iocp.token())
    clients = [socket.create_connection(address, timeout=10) for _ in range(3)]
    _wait_for(lambda: _accepted_in_kernel(engine) >= 1)  # packets not read before shutdown
    engine.shutdown()
    assert engine._socks == {}  # type: ignore[attr-defined]
    for client in clients:
        client.close()


def test_a_failed_extension_lookup_leaves_nothing_behind(
    iocp: Reaper, listener: socket.socket
) -> None:
    """The ConnectEx/AcceptEx lookup failing leaves the slot free and no socket made."""
    engine = iocp.engine
    winsock = engine._winsock  # type: ignore[attr-defined]
    made: list[int] = []
    real_new, real_lookup = winsock.new_socket, winsock.extension

    def new_socket(family: int) -> object:
        state = real_new(family)
        made.append(state.handle)
        return state

    def failing_lookup(handle: int, family: int, guid: str) -> int:
        raise OSError(None, "no such extension", None, 10045)

    handle = engine.tcp_socket()
    listen_handle, _ = engine.listen_socket("127.0.0.1", 0, 16)
    winsock.new_socket, winsock.extension = new_socket, failing_lookup
    with pytest.raises(OSError):
        engine.connect(handle, listener.getsockname(), iocp.token())
    with pytest.raises(OSError):
        engine.accept(listen_handle, iocp.token())
    winsock.new_socket, winsock.extension = real_new, real_lookup
    assert made == [], "a socket was made for an AcceptEx that never started"
    assert engine.pending() == 0
    token = iocp.token()
    engine.connect(handle, listener.getsockname(), token)  # the slot is free again
    assert iocp.take(token)[1] == 0
    engine.close(handle)
    engine.close(listen_handle)


def test_a_listener_keeps_its_accept_pool_posted(iocp: Reaper) -> None:
    engine = iocp.engine
    engine.accept_pool = 8  # type: ignore[attr-defined]
    listen_handle, address = engine.listen_socket("127.0.0.1", 0, 16)
    token = iocp.token()
    engine.accept(listen_handle, token)
    assert len(_accept_ops(engine)) == 8
    assert engine.pending() == 1  # the caller's one accept; the pool is the engine's own
    client = socket.create_connection(address, timeout=10)
    accepted = iocp.take(token)[1]
    assert accepted > 0
    iocp.until(lambda: len(_accept_ops(engine)) == 8)  # the used slot is posted again
    for handle in (accepted, listen_handle):
        engine.close(handle)
    client.close()


def test_default_accept_pool_holds_a_burst(iocp: Reaper) -> None:
    """300 clients connect at once; each accepted socket is handed over exactly once."""
    engine = iocp.engine
    listen_handle, address = engine.listen_socket("127.0.0.1", 0, 4096)
    token = iocp.token()
    engine.accept(listen_handle, token)
    assert len(_accept_ops(engine)) == 64
    clients = []
    for _ in range(300):
        client = socket.socket()
        client.setblocking(False)
        client.connect_ex(address)
        clients.append(client)
    accepted: list[int] = []

    def next_accept() -> bool:
        nonlocal token
        while token in iocp.done:
            result = iocp.done.pop(token)[1]
            assert result > 0, f"accept failed: {result}"
            accepted.append(result)
            token = iocp.token()
            engine.accept(listen_handle, token)
        return len(accepted) == len(clients)

    iocp.until(next_accept, timeout_s=60)
    assert len(set(accepted)) == len(clients)
    for handle in accepted:
        engine.close(handle)
    engine.close(listen_handle)
    for client in clients:
        client.close()


def test_closing_a_listener_closes_what_it_accepted_unasked(iocp: Reaper) -> None:
    engine = iocp.engine
    listen_handle, address = engine.listen_socket("127.0.0.1", 0, 16)
    token = iocp.token()
    engine.accept(listen_handle, token)
    clients = [socket.create_connection(address, timeout=10) for _ in range(3)]
    first = iocp.take(token)[1]
    assert first > 0
    # The other two are accepted by the pool without being asked for: wait for the pool.
    iocp.until(lambda: len(engine._socks) == 4)  # type: ignore[attr-defined]
    engine.close(listen_handle)
    assert set(engine._socks) == {first}  # type: ignore[attr-defined]
    engine.close(first)
    for client in clients:
        client.close()


def test_cancel_ends_the_callers_accept_and_keeps_the_pool(iocp: Reaper) -> None:
    engine = iocp.engine
    listen_handle, address = engine.listen_socket("127.0.0.1", 0, 16)
    token = iocp.token()
    engine.accept(listen_handle, token)
    engine.cancel(listen_handle, token)
    _, result, _ = iocp.take(token)
    assert engine.error_kind(-result) is ErrorKind.CANCELLED
    assert len(_accept_ops(engine)) == 64
    token = iocp.token()
    engine.accept(listen_handle, token)
    client = socket.create_connection(address, timeout=10)
    handle = iocp.take(token)[1]
    assert handle > 0
    engine.close(handle)
    engine.close(listen_handle)
    client.close()


def test_listen_asks_for_its_backlog_with_somaxconn_hint(iocp: Reaper) -> None:
    from loadgen.engine.iocp_sockets import somaxconn_hint

    assert somaxconn_hint(4096) == -4096
    assert somaxconn_hint(16) == -200  # the hint's floor
    assert somaxconn_hint(1_000_000) == -65535
    engine = iocp.engine
    backlogs: list[int] = []
    real = engine._ws2  # type: ignore[attr-defined]

    class Ws2:
        def __getattr__(self, name: str) -> object:
            return getattr(real, name)

        def listen(self, handle: int, backlog: int) -> int:
            backlogs.append(backlog)
            result: int = real.listen(handle, backlog)
            return result

    engine._ws2 = Ws2()  # type: ignore[attr-defined]
    try:
        handle, _ = engine.listen_socket("127.0.0.1", 0, 4096)
    finally:
        engine._ws2 = real  # type: ignore[attr-defined]
    assert backlogs == [-4096]
    engine.close(handle)


def test_client_sockets_defer_their_port_to_connect(iocp: Reaper, listener: socket.socket) -> None:
    """SO_REUSE_UNICASTPORT before ConnectEx's bind and before a source-address bind; not
    on a listener, which needs a port of its own."""
    engine = iocp.engine
    log = OptionLog(engine)
    unbound = engine.tcp_socket()
    token = iocp.token()
    engine.connect(unbound, listener.getsockname(), token)
    assert iocp.take(token)[1] == 0
    sourced = engine.tcp_socket()
    engine.bind(sourced, ("127.0.0.1", 0))
    listen_handle, _ = engine.listen_socket("127.0.0.1", 0, 16)
    reuse = 0x3007
    assert log.to(unbound, reuse) == 1 and log.to(sourced, reuse) == 1
    assert log.to(listen_handle, reuse) == 0
    assert engine.reuse_unicast_port is not None  # type: ignore[attr-defined]
    for handle in (unbound, sourced, listen_handle):
        engine.close(handle)
