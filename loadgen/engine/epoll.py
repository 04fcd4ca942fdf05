"""The portable backend: completion semantics emulated on top of ``select.epoll``.

epoll reports *readiness*; the contract promises *completions*. The emulation:

* Every socket is registered once, edge-triggered, for ``EPOLLIN | EPOLLOUT | EPOLLRDHUP``.
  One ``epoll_ctl`` per socket lifetime, none per operation.
* Each socket remembers whether it may be readable / writable. A flag is cleared only after
  the kernel said ``EAGAIN`` (or a receive returned less than it asked for, which on a TCP
  stream means the queue was emptied, unless the peer has hung up: its FIN or error stays
  to be read and its edge does not come again), and with edge triggering any data or space
  that arrives after that point raises a fresh event. So an operation posted while its flag is
  set is tried at once, and one posted while it is clear waits for the event.
* An operation that finishes at once (a send into an empty socket buffer, a receive on a
  socket that already has data) is queued and returned by the next ``wait()``, like IOCP's
  FILE_SKIP_COMPLETION_PORT_ON_SUCCESS path.
* ``recv_zero`` peeks one byte (``MSG_PEEK``): data or EOF completes it, ``EAGAIN`` leaves it
  pending. The peek is repeated on the event because an edge may be stale (queued before
  the caller drained the socket), and a zero-byte receive must not complete early.
* ``EPOLLRDHUP`` tells a peer FIN apart from data, so ``recv_zero`` sets ``FLAG_HANGUP``.
"""

from __future__ import annotations

import contextlib
import errno
import select
import socket
import struct
from collections.abc import Iterable
from typing import ClassVar

from loadgen.engine.base import (
    DEFAULT_MAX_COMPLETIONS,
    FLAG_HANGUP,
    FLAG_READABLE,
    Buffer,
    Completion,
    ErrorKind,
    NoBufferFeatures,
    check_close_many,
    posix_end_error,
    posix_error_kind,
)

_EPOLL_FLAGS = select.EPOLLIN | select.EPOLLOUT | select.EPOLLRDHUP | select.EPOLLET
_READ_EVENTS = select.EPOLLIN | select.EPOLLRDHUP | select.EPOLLHUP | select.EPOLLERR
_WRITE_EVENTS = select.EPOLLOUT | select.EPOLLHUP | select.EPOLLERR
_HANGUP_EVENTS = select.EPOLLRDHUP | select.EPOLLHUP | select.EPOLLERR
_LINGER_ABORT = struct.pack("ii", 1, 0)  # l_onoff=1, l_linger=0: close sends RST
_PEEK_FLAGS = socket.MSG_PEEK | socket.MSG_DONTWAIT
_IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)  # linux/in.h

# Operation kinds (small ints: compared in the hot path).
_RECV, _RECV_ZERO, _ACCEPT = 1, 2, 3
_SEND, _CONNECT = 4, 5


class _Sock:
    """Per-socket state: at most one read-side and one write-side operation pending."""

    __slots__ = (
        "hangup",
        "read_buf",
        "read_op",
        "read_token",
        "readable",
        "sock",
        "writable",
        "write_buf",
        "write_op",
        "write_quiet",
        "write_token",
    )

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.read_op = 0
        self.read_token = 0
        self.read_buf: Buffer | None = None
        self.write_op = 0
        self.write_token = 0
        self.write_buf: Buffer | bytes | None = None
        self.write_quiet = False  # send_quiet: report a failure only, finish short sends
        # Optimistic until the kernel says EAGAIN: a fresh socket costs one wasted try.
        self.readable = True
        self.writable = True
        # The peer hung up (an event said so): a FIN or error stays readable after any data,
        # and its edge will not come again, so a short read must not clear ``readable``.
        self.hangup = False


class EpollBackend(NoBufferFeatures):
    """Completion engine over ``select.epoll`` (see module docstring)."""

    name: ClassVar[str] = "epoll"

    def __init__(self) -> None:
        self._epoll = select.epoll()
        self._socks: dict[int, _Sock] = {}
        self._ready: list[Completion] = []
        self._pending = 0
        self._posted_recv_bytes = 0  # buffers of pending ``recv`` operations

    # --- sockets -----------------------------------------------------------------------
    def _register(self, sock: socket.socket) -> int:
        sock.setblocking(False)
        fd = sock.fileno()
        self._socks[fd] = _Sock(sock)
        self._epoll.register(fd, _EPOLL_FLAGS)
        return fd

    def tcp_socket(self, family: int = socket.AF_INET) -> int:
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self._register(sock)

    def bind(self, handle: int, address: tuple[str, int]) -> None:
        sock = self._socks[handle].sock
        if address[1] == 0 and sock.family == socket.AF_INET:
            # Defer port choice to connect(): many source addresses can share the port range.
            sock.setsockopt(socket.IPPROTO_IP, _IP_BIND_ADDRESS_NO_PORT, 1)
        sock.bind(address)

    def listen_socket(
        self, host: str, port: int, backlog: int, *, reuse_port: bool = False
    ) -> tuple[int, tuple[str, int]]:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:  # several processes accept on one port; the kernel spreads connections
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(backlog)
        bound = sock.getsockname()
        return self._register(sock), (bound[0], bound[1])

    def close(self, handle: int, *, abort: bool = False) -> None:
        state = self._socks.pop(handle)
        if state.read_op:
            self._finish_read(state, -errno.ECANCELED)
        if state.write_op:
            if state.write_quiet:  # never reported after close (engine.base)
                self._end_quiet(state)
            else:
                self._finish_write(state, -errno.ECANCELED)
        self._epoll.unregister(handle)
        if abort:
            # An already-reset socket refuses SO_LINGER; closing is all that is left then.
            with contextlib.suppress(OSError):
                state.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ABORT)
        state.sock.close()

    # --- bookkeeping -------------------------------------------------------------------
    def _finish_read(self, state: _Sock, result: int, flags: int = 0) -> None:
        self._ready.append((state.read_token, result, flags))
        if state.read_op == _RECV:
            self._posted_recv_bytes -= len(state.read_buf)  # type: ignore[arg-type]
        state.read_op = 0
        state.read_buf = None
        self._pending -= 1

    def _finish_write(self, state: _Sock, result: int) -> None:
        self._ready.append((state.write_token, result, 0))
        state.write_op = 0
        state.write_buf = None
        state.write_quiet = False
        self._pending -= 1

    def close_many(self, handles: Iterable[int], *, abort: bool = False) -> None:
        # Nothing to batch: closing an epoll socket is no system call beyond its close.
        for handle in check_close_many(handles, self._socks):
            self.close(handle, abort=abort)

    def _end_quiet(self, state: _Sock) -> None:
        """A quiet send is over without a completion (sent in full, or its socket closed)."""
        state.write_op = 0
        state.write_buf = None
        state.write_quiet = False
        self._pending -= 1

    def _post_read(self, handle: int, op: int, buf: Buffer | None, token: int) -> _Sock:
        state = self._socks[handle]
        if state.read_op:
            raise RuntimeError(f"socket {handle} already has a read-side operation pending")
        state.read_op = op
        state.read_token = token
        state.read_buf = buf
        self._pending += 1
        return state

    def _post_write(self, handle: int, op: int, buf: Buffer | bytes | None, token: int) -> _Sock:
        state = self._socks[handle]
        if state.write_op:
            raise RuntimeError(f"socket {handle} already has a write-side operation pending")
        state.write_op = op
        state.write_token = token
        state.write_buf = buf
        self._pending += 1
        return state

    # --- operations --------------------------------------------------------------------
    def connect(self, handle: int, address: tuple[str, int], token: int) -> None:
        state = self._post_write(handle, _CONNECT, None, token)
        code = state.sock.connect_ex(address)
        if code == 0:
            self._finish_write(state, 0)
        elif code != errno.EINPROGRESS:
            self._finish_write(state, -code)
        else:
            state.writable = False

    def accept(self, listen_handle: int, token: int) -> None:
        state = self._post_read(listen_handle, _ACCEPT, None, token)
        if state.readable:
            self._do_read(state, 0)

    def send(self, handle: int, data: Buffer | bytes, token: int) -> None:
        state = self._post_write(handle, _SEND, data, token)
        if state.writable:
            self._do_send(state)

    def send_quiet(self, handle: int, data: Buffer | bytes, token: int) -> None:
        state = self._post_write(handle, _SEND, data, token)
        state.write_quiet = True
        if state.writable:
            self._do_send(state)

    def recv(self, handle: int, buf: Buffer, token: int) -> None:
        state = self._post_read(handle, _RECV, buf, token)
        self._posted_recv_bytes += len(buf)
        if state.readable:
            self._do_read(state, 0)

    def recv_zero(self, handle: int, token: int) -> None:
        state = self._post_read(handle, _RECV_ZERO, None, token)
        if state.readable:
            self._do_read(state, 0)

    def cancel(self, handle: int, token: int) -> None:
        state = self._socks.get(handle)
        if state is None:
            return
        if state.read_op and state.read_token == token:
            self._finish_read(state, -errno.ECANCELED)
        elif state.write_op and state.write_token == token:
            self._finish_write(state, -errno.ECANCELED)

    def end_error(self, handle: int) -> int:
        state = self._socks.get(handle)
        return 0 if state is None else posix_end_error(state.sock)

    def recv_now(self, handle: int, buf: Buffer) -> int:
        try:
            return self._socks[handle].sock.recv_into(buf)
        except BlockingIOError:
            return -errno.EAGAIN
        except OSError as exc:
            return -(exc.errno or errno.EIO)

    # --- performing operations when the socket is ready --------------------------------
    def _do_read(self, state: _Sock, events: int) -> None:
        op = state.read_op
        sock = state.sock
        try:
            if op == _RECV:
                buf = state.read_buf
                assert buf is not None
                n = sock.recv_into(buf)
                if 0 < n < len(buf) and not state.hangup:
                    state.readable = False  # a short read emptied the receive queue
                self._finish_read(state, n)
            elif op == _RECV_ZERO:
                peeked = sock.recv(1, _PEEK_FLAGS)
                hangup = not peeked or events & _HANGUP_EVENTS
                self._finish_read(state, 0, FLAG_READABLE | (FLAG_HANGUP if hangup else 0))
            else:  # _ACCEPT
                conn, _ = sock.accept()
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self._finish_read(state, self._register(conn))
        except BlockingIOError:
            state.readable = False
        except OSError as exc:
            self._finish_read(state, -(exc.errno or errno.EIO))

    def _do_send(self, state: _Sock) -> None:
        buf = state.write_buf
        assert buf is not None
        try:
            n = state.sock.send(buf, socket.MSG_NOSIGNAL)
        except BlockingIOError:
            state.writable = False
            return
        except OSError as exc:
            n = -(exc.errno or errno.EIO)
        if state.write_quiet and n >= 0:
            if n < len(buf):
                # Short: try the rest now (edge-triggered: write until EAGAIN); after EAGAIN
                # it goes when EPOLLOUT says the socket is writable again.
                state.write_buf = memoryview(buf)[n:]
                self._do_send(state)
            else:
                self._end_quiet(state)
            return
        self._finish_write(state, n)

    def _do_write(self, state: _Sock) -> None:
        if state.write_op == _SEND:
            self._do_send(state)
            return
        code = state.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        self._finish_write(state, -code if code else 0)

    # --- reaping -----------------------------------------------------------------------
    def wait(
        self, timeout_s: float | None, max_completions: int = DEFAULT_MAX_COMPLETIONS
    ) -> list[Completion]:
        ready = self._ready
        timeout = 0.0 if ready else (-1.0 if timeout_s is None else timeout_s)
        try:
            events = self._epoll.poll(timeout, max_completions)
        except InterruptedError:
            events = []
        socks = self._socks
        for fd, mask in events:
            state = socks.get(fd)
            if state is None:
                continue  # closed after the event was queued
            if mask & _READ_EVENTS:
                state.readable = True
                if mask & _HANGUP_EVENTS:
                    state.hangup = True
                if state.read_op:
                    self._do_read(state, mask)
            if mask & _WRITE_EVENTS:
                state.writable = True
                if state.write_op:
                    self._do_write(state)
        if len(ready) <= max_completions:
            self._ready = []
            return ready
        out = ready[:max_completions]
        del ready[:max_completions]
        return out

    def error_kind(self, code: int) -> ErrorKind:
        return posix_error_kind(code)

    def would_block(self, code: int) -> bool:
        return code in (errno.EAGAIN, errno.EWOULDBLOCK)

    def pending(self) -> int:
        return self._pending

    def posted_recv_bytes(self) -> int:
        return self._posted_recv_bytes

    def shutdown(self) -> None:
        for state in self._socks.values():
            state.sock.close()
        self._socks.clear()
        self._ready.clear()
        self._pending = 0
        self._posted_recv_bytes = 0
        self._epoll.close()
