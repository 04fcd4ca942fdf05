"""The Windows backend: I/O completion ports through ctypes.

How IOCP fits together
----------------------
A completion port is a kernel queue of finished I/O. Every socket is tied to the port once
(``CreateIoCompletionPort(socket, port, key)``); after that each *overlapped* operation on
it (``WSARecv``, ``WSASend``, ``ConnectEx``, ``AcceptEx``) is started with a pointer to an
``OVERLAPPED`` structure and returns at once: either it finished already, or it fails with
``WSA_IO_PENDING`` and runs in the kernel (AFD, the socket driver, owns an IRP for it). When
it ends, the kernel writes the status and byte count into that ``OVERLAPPED`` and queues a
packet ``(completion key, OVERLAPPED address, status, bytes)`` on the port.
``GetQueuedCompletionStatusEx`` removes up to N packets in one call; the OVERLAPPED address
is the only thing that says which operation a packet belongs to.

So the OVERLAPPED and every buffer the operation reads or writes belong to the kernel from
the call until its packet is dequeued, even after ``CancelIoEx`` or ``closesocket`` (both
only *ask* for the operation to end; it still completes, with ERROR_OPERATION_ABORTED,
through the port). Here each operation slot is one ``Op``: a bytearray holding its
OVERLAPPED, WSABUF, flag/byte-count DWORDs and socket-address space, plus a reference to
the caller's buffer. A pending ``Op`` sits in ``_inflight`` keyed by its OVERLAPPED
address and nothing drops it before its packet comes back; ``shutdown`` drains the port,
and deliberately leaks whatever the kernel still owns rather than free it.

``FILE_SKIP_COMPLETION_PORT_ON_SUCCESS`` (set per socket when the provider's handles are
real kernel handles, XP1_IFS_HANDLES) stops the kernel from queueing a packet for an
operation that succeeds at once, such as a receive on a socket that already has data.
Such an operation is finished on the spot and its completion queued in Python, returned by
the next ``wait()``. Without the flag the packet still comes, so the slot stays in flight.

Other facts this module relies on:

* ``ConnectEx``/``AcceptEx`` are reached through ``WSAIoctl(SIO_GET_EXTENSION_FUNCTION_
  POINTER)``. ConnectEx needs a bound socket; afterwards ``SO_UPDATE_CONNECT_CONTEXT``
  makes the socket a normal connected one (getpeername, shutdown). AcceptEx takes a
  socket made in advance and, after it completes, ``SO_UPDATE_ACCEPT_CONTEXT`` with the
  listener's handle.
* A failed packet carries an NTSTATUS; ``RtlNtStatusToDosError`` turns it into a Win32 code
  (connection refused 1225, reset 64, aborted 1236, cancelled 995). Calls that fail at
  once report Winsock codes (10061, 10054, ...). Both kinds map to the portable
  ``ErrorKind`` in ``error_kind``.
* Zero-byte receive: ``WSARecv`` with one zero-length WSABUF stays pending until the socket
  has data or the peer closed; it locks no buffer pages. Every socket is also in
  non-blocking mode (``FIONBIO``), which overlapped calls ignore, so ``recv_now`` can drain
  with plain ``recv`` until WSAEWOULDBLOCK - the libuv pattern.
* Handles are SOCKET values (UINT_PTR); ``accept`` completes with the new socket's handle.
  A closed socket's handle value is reused at once (116 -> 116 under Wine): a completion is
  matched to the socket object that started it, never to the handle number it names.
* Scale: a listener keeps ``accept_pool`` AcceptEx posted (64 by default; a full backlog
  answers with a reset, and a plain ``listen`` backlog is capped near 200, so it is given as
  ``SOMAXCONN_HINT``); client sockets bound to port 0 set ``SO_REUSE_UNICASTPORT``, so they
  do not each take one of the machine's 16,384 dynamic ports at bind (``iocp_sockets``).
"""

from __future__ import annotations

import ctypes
import math
import socket
import sys
import time
from collections.abc import Iterable
from typing import ClassVar, Final

from loadgen.engine import win32
from loadgen.engine.base import (
    DEFAULT_MAX_COMPLETIONS,
    FLAG_READABLE,
    BackendUnavailable,
    Buffer,
    Completion,
    ErrorKind,
    NoBufferFeatures,
    check_close_many,
)
from loadgen.engine.iocp_slots import (
    ACCEPT,
    ACCEPT_OUT_AT,
    BYTES_AT,
    CONNECT,
    DWORD,
    ENTRY,
    ENTRY_SIZE,
    FLAGS_AT,
    POINTER,
    RECV,
    RECV_ZERO,
    SEND,
    SEND_QUIET,
    SOCKADDR_AT,
    WSABUF_AT,
    AcceptPool,
    Op,
    Sock,
    address_of,
    sockaddr,
    win_family,
)
from loadgen.engine.iocp_sockets import CompletionKey, Winsock, somaxconn_hint
from loadgen.engine.win32 import WinError

#: One GetQueuedCompletionStatusEx call blocks at most this long, so Ctrl+C (which Python
#: handles only between bytecodes) is seen within half a second of an infinite wait.
_WAIT_SLICE_MS: Final = 500
#: shutdown() waits this long for the kernel to hand back cancelled operations.
_DRAIN_S: Final = 5.0
#: AcceptEx operations kept posted per listening socket (``IocpBackend.accept_pool``). A
#: connect burst is then accepted by the kernel straight into sockets made in advance
#: instead of waiting in the backlog, whose overflow Windows answers with a reset (ctsTraffic
#: keeps 100). Each posted one holds a socket made in advance and an IRP in nonpaged pool
#: while it waits, so the pool is a fixed cost per listener; 64 is of ctsTraffic's order,
#: and a burst beyond it still has the backlog (SOMAXCONN_HINT) to wait in.
DEFAULT_ACCEPT_POOL: Final = 64

#: Operations the kernel still owned when shutdown gave up on them: kept alive for the
#: life of the process so a late completion never writes into freed memory.
_ABANDONED: list[object] = []

_ERROR_KINDS: Final[dict[int, ErrorKind]] = {
    WinError.WSAECONNREFUSED: ErrorKind.REFUSED,
    WinError.ERROR_CONNECTION_REFUSED: ErrorKind.REFUSED,
    WinError.WSAECONNRESET: ErrorKind.RESET,
    WinError.ERROR_NETNAME_DELETED: ErrorKind.RESET,
    WinError.WSAECONNABORTED: ErrorKind.RESET,
    WinError.ERROR_CONNECTION_ABORTED: ErrorKind.RESET,
    WinError.WSAESHUTDOWN: ErrorKind.RESET,  # the EPIPE of Winsock
    WinError.ERROR_OPERATION_ABORTED: ErrorKind.CANCELLED,
    WinError.WSAEINTR: ErrorKind.CANCELLED,
    WinError.WSAETIMEDOUT: ErrorKind.TIMEOUT,
    WinError.ERROR_SEM_TIMEOUT: ErrorKind.TIMEOUT,
    # Out of buffers: Winsock's code, and NTSTATUS INSUFFICIENT_RESOURCES / WORKING_SET_QUOTA
    # (pages of a posted buffer that could not be locked) / NO_MEMORY as Win32 codes.
    WinError.WSAENOBUFS: ErrorKind.NO_BUFFERS,
    WinError.ERROR_NO_SYSTEM_RESOURCES: ErrorKind.NO_BUFFERS,
    WinError.ERROR_WORKING_SET_QUOTA: ErrorKind.NO_BUFFERS,
    WinError.ERROR_NOT_ENOUGH_QUOTA: ErrorKind.NO_BUFFERS,
    WinError.ERROR_NOT_ENOUGH_MEMORY: ErrorKind.NO_BUFFERS,
    WinError.ERROR_OUTOFMEMORY: ErrorKind.NO_BUFFERS,
    WinError.WSAENETUNREACH: ErrorKind.UNREACHABLE,
    WinError.WSAEHOSTUNREACH: ErrorKind.UNREACHABLE,
    WinError.WSAENETDOWN: ErrorKind.UNREACHABLE,
    WinError.ERROR_NETWORK_UNREACHABLE: ErrorKind.UNREACHABLE,
    WinError.ERROR_HOST_UNREACHABLE: ErrorKind.UNREACHABLE,
    WinError.ERROR_PORT_UNREACHABLE: ErrorKind.UNREACHABLE,
    WinError.WSAEADDRNOTAVAIL: ErrorKind.ADDRESS_UNAVAILABLE,
    WinError.WSAEADDRINUSE: ErrorKind.ADDRESS_UNAVAILABLE,
}


class IocpBackend(NoBufferFeatures):
    """Completion engine over an I/O completion port (see the module docstring)."""

    name: ClassVar[str] = "iocp"

    def __init__(self) -> None:
        _require_windows()
        self._k32 = win32.kernel32()
        self._ws2 = win32.ws2_32()
        self._nt = win32.ntdll()
        self._last_error = win32.last_error_getter()
        data = win32.WSADATA()
        code = self._ws2.WSAStartup(win32.MAKEWORD_2_2, ctypes.byref(data))
        if code:
            raise BackendUnavailable(f"WSAStartup failed: {win32.describe(code)}")
        port = self._k32.CreateIoCompletionPort(win32.INVALID_HANDLE_VALUE, None, 0, 1)
        if not port:
            self._ws2.WSACleanup()
            win32.raise_winerror(what="CreateIoCompletionPort")
        self._port: int = port
        self._socks: dict[int, Sock] = {}
        self._inflight: dict[int, Op] = {}
        self._ready: list[Completion] = []
        self._pending = 0
        self._posted_recv_bytes = 0
        self._winsock = Winsock(self._ws2, self._k32, port)
        self._entries = bytearray()
        self._entries_address = 0
        self._entries_anchor: object | None = None
        self._removed = bytearray(4)
        self._removed_anchor = ctypes.c_char.from_buffer(self._removed)
        self._removed_address = ctypes.addressof(self._removed_anchor)
        self._recv_now_buf: Buffer | None = None
        self._recv_now_anchor: object | None = None
        self._recv_now_address = 0
        self._recv_now_len = 0
        self._closed = False
        #: AcceptEx operations kept posted per listener (see DEFAULT_ACCEPT_POOL); read when
        #: a listener is first asked to accept.
        self.accept_pool = DEFAULT_ACCEPT_POOL

    # --- sockets -----------------------------------------------------------------------
    def ifs_handles(self, family: int = socket.AF_INET) -> bool:
        """True when the TCP provider's sockets are real kernel handles (XP1_IFS_HANDLES),
        so operations that succeed at once skip the completion port."""
        state = self._winsock.new_socket(win_family(family))
        self._ws2.closesocket(state.handle)
        return state.skip

    @property
    def reuse_unicast_port(self) -> bool | None:
        """SO_REUSE_UNICASTPORT on client sockets: None until first tried, then whether
        this Windows has it (10 1703 and later)."""
        return self._winsock.reuse_unicast_port

    def tcp_socket(self, family: int = socket.AF_INET) -> int:
        state = self._winsock.new_socket(win_family(family))
        self._winsock.set_option(
            state.handle, win32.SocketLevel.IPPROTO_TCP, win32.SocketOption.TCP_NODELAY, b"\1\0\0\0"
        )
        self._socks[state.handle] = state
        return state.handle

    def _state(self, handle: int) -> Sock:
        state = self._socks.get(handle)
        if state is None:
            raise ValueError(f"socket {handle} is not open in this engine")
        return state

    def bind(self, handle: int, address: tuple[str, int]) -> None:
        state = self._state(handle)
        if address[1] == 0:
            self._winsock.defer_port(handle)
        self._bind(state, address)

    def _bind(self, state: Sock, address: tuple[str, int]) -> None:
        name = sockaddr(state.family, address)
        if self._ws2.bind(state.handle, name, len(name)):
            win32.raise_winerror(what=f"bind {address}")
        state.bound = True

    def listen_socket(
        self, host: str, port: int, backlog: int, *, reuse_port: bool = False
    ) -> tuple[int, tuple[str, int]]:
        if reuse_port:
            # Windows has no SO_REUSEPORT (SO_REUSEADDR there lets a socket steal a port in
            # use and spreads nothing): one process listens per port.
            raise OSError("SO_REUSEPORT does not exist on Windows: listen in one process")
        family = win32.AddressFamily.AF_INET6 if ":" in host else win32.AddressFamily.AF_INET
        # No SO_REUSEADDR: on Windows it lets another socket take over a port in use, and
        # Windows does not keep a closed listener's port the way Linux's TIME_WAIT does.
        state = self._winsock.new_socket(family)
        self._socks[state.handle] = state
        try:
            self._bind(state, (host, port))
            if self._ws2.listen(state.handle, somaxconn_hint(backlog)):
                win32.raise_winerror(what="listen")
            bound = self._winsock.local_address(state.handle)
        except BaseException:
            self.close(state.handle)
            raise
        return state.handle, bound

    def close(self, handle: int, *, abort: bool = False) -> None:
        state = self._socks.pop(handle, None)
        if state is None:
            raise ValueError(f"socket {handle} is not open in this engine")
        if abort:
            linger = bytes(win32.LINGER(1, 0))  # l_onoff=1, l_linger=0: closesocket sends RST
            self._winsock.set_option(
                handle, win32.SocketLevel.SOL_SOCKET, win32.SocketOption.SO_LINGER, linger
            )
        # Pending operations are cancelled by the kernel and still come back through the
        # port (ERROR_OPERATION_ABORTED); their slots stay in _inflight until then.
        self._ws2.closesocket(handle)
        pool = state.pool
        if pool is not None:  # a listener: its posted AcceptEx come back aborted
            self._end_accept(pool, -WinError.ERROR_OPERATION_ABORTED)
            while pool.ready:  # accepted, never asked for
                self.close(pool.ready.popleft(), abort=True)

    def close_many(self, handles: Iterable[int], *, abort: bool = False) -> None:
        # Nothing to batch: each closesocket is its own call, and the aborted operations
        # come back through the port in whatever batches GetQueuedCompletionStatusEx takes.
        for handle in check_close_many(handles, self._socks):
            self.close(handle, abort=abort)

    # --- starting operations -----------------------------------------------------------
    def _begin(self, op: Op, ok: bool) -> None:
        """Account for an operation just started; ``ok`` is True if it finished at once."""
        self._pending += 1
        if ok and op.sock.skip:
            self._finish(op, 0, DWORD.unpack_from(op.block, BYTES_AT)[0])
            return
        if not ok:
            code = self._last_error()
            if code != win32.WSA_IO_PENDING:
                self._finish(op, code, 0)  # failed at once: no packet will come
                return
        # Pending, or finished at once without the skip mode: a packet will come.
        self._inflight[op.address] = op
        if op.kind == RECV:
            self._posted_recv_bytes += op.length

    def _read_slot(self, handle: int) -> Op:
        op = self._state(handle).read
        if op.kind:
            raise RuntimeError(f"socket {handle} already has a read-side operation pending")
        return op

    def _write_slot(self, handle: int) -> Op:
        op = self._state(handle).write
        if op.kind:
            raise RuntimeError(f"socket {handle} already has a write-side operation pending")
        return op

    def connect(self, handle: int, address: tuple[str, int], token: int) -> None:
        op = self._write_slot(handle)
        state = op.sock
        if not state.bound:
            # ConnectEx refuses an unbound socket (WSAEINVAL): take any local address.
            any_host = "::" if state.family == win32.AddressFamily.AF_INET6 else "0.0.0.0"
            self.bind(handle, (any_host, 0))
        name = sockaddr(state.family, address)
        # Everything that can raise comes before op.start(): a failure leaves the slot free.
        connect_ex = win32.LPFN_CONNECTEX(
            self._winsock.extension(handle, state.family, win32.WSAID_CONNECTEX)
        )
        op.start(CONNECT, token, None, 0, 0)
        op.block[SOCKADDR_AT : SOCKADDR_AT + len(name)] = name
        ok = connect_ex(handle, op.address + SOCKADDR_AT, len(name), None, 0, None, op.address)
        self._begin(op, bool(ok))

    def accept(self, listen_handle: int, token: int) -> None:
        """Hand the next accepted socket to ``token``. The listener keeps ``accept_pool``
        AcceptEx posted from the first call on (see ``AcceptPool``)."""
        listener = self._state(listen_handle)
        # The lookup may raise: before any state changes, so nothing is left half made.
        self._winsock.extension(listen_handle, listener.family, win32.WSAID_ACCEPTEX)
        pool = listener.pool
        if pool is None:
            pool = listener.pool = AcceptPool(listener, max(1, self.accept_pool))
        elif pool.token >= 0:
            raise RuntimeError(f"socket {listen_handle} already has an accept pending")
        pool.token = token
        self._pending += 1
        self._post_accepts(pool)
        self._hand_over(pool)

    def _post_accepts(self, pool: AcceptPool) -> None:
        """Post AcceptEx on every idle slot of an open listener (each slot once a call: one
        that completes at once is posted again by the next call)."""
        for op in pool.ops:
            if op.kind or self._closed or self._socks.get(op.sock.handle) is not op.sock:
                continue
            listener = op.sock
            try:
                accepted = self._winsock.new_socket(listener.family)
            except OSError as exc:
                pool.failure = getattr(exc, "winerror", None) or WinError.WSAENOBUFS
                continue
            op.start(ACCEPT, 0, accepted, 0, 0)  # the anchor keeps the socket made for it
            accept_ex = win32.LPFN_ACCEPTEX(
                self._winsock.extension(listener.handle, listener.family, win32.WSAID_ACCEPTEX)
            )
            ok = accept_ex(
                listener.handle,
                accepted.handle,
                op.address + ACCEPT_OUT_AT,
                0,  # receive no data with the connection: complete as soon as it is accepted
                win32.ACCEPTEX_ADDRESS_LEN,
                win32.ACCEPTEX_ADDRESS_LEN,
                op.address + BYTES_AT,
                op.address,
            )
            if ok and listener.skip:
                self._accept_done(op, 0)  # accepted at once: no packet will come
            elif ok or self._last_error() == win32.WSA_IO_PENDING:
                self._inflight[op.address] = op
            else:
                pool.failure = self._last_error()
                self._ws2.closesocket(accepted.handle)
                op.kind = 0
                op.anchor = None

    def _accept_done(self, op: Op, code: int) -> None:
        """One AcceptEx of a pool finished (``code`` 0: accepted). The socket is kept only
        if the listener that posted it is still this engine's (its handle value may belong
        to a new socket by now, and shutdown may have cleared everything)."""
        accepted = op.anchor
        assert isinstance(accepted, Sock)
        op.kind = 0
        op.anchor = None
        listener = op.sock
        pool = listener.pool
        if code or pool is None or self._closed or self._socks.get(listener.handle) is not listener:
            self._ws2.closesocket(accepted.handle)
            return  # a connection that failed before it was accepted, or a closed listener
        result = self._accepted(listener, accepted)
        if result >= 0:
            pool.ready.append(result)
        else:
            pool.failure = -result

    def _hand_over(self, pool: AcceptPool) -> None:
        """Complete the caller's pending accept with the next accepted socket; or with the
        last failure when no slot is posted that could ever complete it."""
        if pool.token < 0:
            return
        if pool.ready:
            self._end_accept(pool, pool.ready.popleft())
        elif pool.failure and not any(op.kind for op in pool.ops):
            self._end_accept(pool, -pool.failure)
            pool.failure = 0

    def _end_accept(self, pool: AcceptPool, result: int) -> None:
        if pool.token >= 0:
            self._ready.append((pool.token, result, 0))
            self._pending -= 1
            pool.token = -1

    def send(self, handle: int, data: Buffer | bytes, token: int) -> None:
        self._send(handle, data, token, SEND)

    def send_quiet(self, handle: int, data: Buffer | bytes, token: int) -> None:
        # An overlapped WSASend on a stream socket completes when all of it is sent (or
        # fails), so only the completion's report is dropped (_finish).
        self._send(handle, data, token, SEND_QUIET)

    def _send(self, handle: int, data: Buffer | bytes, token: int, kind: int) -> None:
        op = self._write_slot(handle)
        anchor, address, n = address_of(data)
        op.start(kind, token, anchor, address, n)
        base = op.address
        rc = self._ws2.WSASend(handle, base + WSABUF_AT, 1, base + BYTES_AT, 0, base, None)
        self._begin(op, rc == 0)

    def recv(self, handle: int, buf: Buffer, token: int) -> None:
        op = self._read_slot(handle)
        anchor, address, n = address_of(buf)
        op.start(RECV, token, anchor, address, n)
        base = op.address
        rc = self._ws2.WSARecv(
            handle, base + WSABUF_AT, 1, base + BYTES_AT, base + FLAGS_AT, base, None
        )
        self._begin(op, rc == 0)

    def recv_zero(self, handle: int, token: int) -> None:
        op = self._read_slot(handle)
        op.start(RECV_ZERO, token, None, 0, 0)  # one WSABUF of length 0: no buffer
        base = op.address
        rc = self._ws2.WSARecv(
            handle, base + WSABUF_AT, 1, base + BYTES_AT, base + FLAGS_AT, base, None
        )
        self._begin(op, rc == 0)

    def cancel(self, handle: int, token: int) -> None:
        state = self._socks.get(handle)
        if state is None:
            return
        if state.pool is not None and state.pool.token == token:
            self._end_accept(state.pool, -WinError.ERROR_OPERATION_ABORTED)  # slots stay
            return
        for op in (state.read, state.write):
            if op.kind and op.token == token and op.address in self._inflight:
                # FALSE with ERROR_NOT_FOUND: it finished already and its packet is queued.
                self._k32.CancelIoEx(handle, op.address)

    # --- immediate -----------------------------------------------------------------------
    def end_error(self, handle: int) -> int:
        """SO_ERROR (Windows reports a reset on the receive itself, WSAECONNRESET)."""
        if handle not in self._socks:
            return 0
        value = ctypes.c_int(0)
        size = ctypes.c_int(ctypes.sizeof(value))
        rc = self._ws2.getsockopt(
            handle,
            win32.SocketLevel.SOL_SOCKET,
            win32.SocketOption.SO_ERROR,
            ctypes.byref(value),
            ctypes.byref(size),
        )
        return value.value if rc == 0 else 0

    def recv_now(self, handle: int, buf: Buffer) -> int:
        if buf is not self._recv_now_buf:  # the caller reuses one scratch buffer
            self._recv_now_anchor, self._recv_now_address, self._recv_now_len = address_of(buf)
            self._recv_now_buf = buf
        n = self._ws2.recv(handle, self._recv_now_address, self._recv_now_len, 0)
        return n if n >= 0 else -self._last_error()

    # --- completing ----------------------------------------------------------------------
    def _finish(self, op: Op, code: int, nbytes: int) -> None:
        """Turn a finished slot into a completion; ``code`` 0 is success."""
        kind = op.kind
        flags = 0
        if kind == SEND_QUIET and (
            (not code and nbytes == op.length) or self._socks.get(op.sock.handle) is not op.sock
        ):
            # Sent in full, or its socket closed since: a quiet send reports neither.
            self._pending -= 1
            op.kind = 0
            op.anchor = None
            return
        if code:
            result = -code
        elif kind in (RECV, SEND, SEND_QUIET):
            result = nbytes
        elif kind == RECV_ZERO:
            result = 0
            flags = FLAG_READABLE
        else:  # CONNECT
            result = 0
            # Only the socket that started it: after a close its handle value is reused at
            # once (116 -> 116 seen under Wine) by a socket this connect knows nothing of.
            if self._socks.get(op.sock.handle) is op.sock:
                self._winsock.set_option(
                    op.sock.handle,
                    win32.SocketLevel.SOL_SOCKET,
                    win32.SocketOption.SO_UPDATE_CONNECT_CONTEXT,
                    b"",
                )
        self._ready.append((op.token, result, flags))
        self._pending -= 1
        op.kind = 0
        op.anchor = None

    def _accepted(self, listener: Sock, accepted: Sock) -> int:
        """Make an AcceptEx socket a normal connected one and this engine's; its handle, or
        ``-code`` (the socket closed) when Windows refuses."""
        handle = accepted.handle
        level = win32.SocketLevel.SOL_SOCKET
        option = win32.SocketOption.SO_UPDATE_ACCEPT_CONTEXT
        if self._winsock.set_option(handle, level, option, POINTER.pack(listener.handle)):
            code = self._last_error()
            self._ws2.closesocket(handle)
            return -code
        self._winsock.set_option(
            handle, win32.SocketLevel.IPPROTO_TCP, win32.SocketOption.TCP_NODELAY, b"\1\0\0\0"
        )
        self._socks[handle] = accepted
        return handle

    def _dequeue(self, room: int, timeout_ms: int) -> int:
        """One GetQueuedCompletionStatusEx call; returns how many packets it removed."""
        if len(self._entries) < room * ENTRY_SIZE:
            self._entries = bytearray(room * ENTRY_SIZE)
            self._entries_anchor = ctypes.c_char.from_buffer(self._entries)
            self._entries_address = ctypes.addressof(self._entries_anchor)
        ok = self._k32.GetQueuedCompletionStatusEx(
            self._port, self._entries_address, room, self._removed_address, timeout_ms, 0
        )
        if not ok:
            code = self._last_error()
            if code == WinError.WAIT_TIMEOUT:
                return 0
            win32.raise_winerror(code, "GetQueuedCompletionStatusEx")
        removed: int = DWORD.unpack_from(self._removed)[0]
        inflight = self._inflight
        view = memoryview(self._entries)[: removed * ENTRY_SIZE]
        pools: list[AcceptPool] = []
        for key, overlapped, status, nbytes in ENTRY.iter_unpack(view):
            op = inflight.pop(overlapped, None)
            if op is None or key != CompletionKey.SOCKET:
                continue
            if op.kind == RECV:
                self._posted_recv_bytes -= op.length
            code = 0
            status &= 0xFFFFFFFF  # an NTSTATUS in a pointer-sized field
            if status & 0x80000000:  # NT_ERROR / NT_WARNING: failed
                code = self._nt.RtlNtStatusToDosError(status - (1 << 32))
                code = code or WinError.ERROR_OPERATION_ABORTED
            if op.kind == ACCEPT:
                self._accept_done(op, code)
                if op.sock.pool is not None and op.sock.pool not in pools:
                    pools.append(op.sock.pool)
            else:
                self._finish(op, code, nbytes)
        for pool in pools:  # post the slots again, then serve a caller who waits
            self._post_accepts(pool)
            self._hand_over(pool)
        return removed

    def wait(
        self, timeout_s: float | None, max_completions: int = DEFAULT_MAX_COMPLETIONS
    ) -> list[Completion]:
        ready = self._ready
        room = max_completions - len(ready)
        if room > 0:
            if ready or timeout_s == 0:
                self._dequeue(room, 0)
            else:
                # perf_counter: time.monotonic is GetTickCount64 on Windows CPython 3.12, whose
                # 15.6 ms steps would stretch a short wait by up to a tick.
                deadline = None if timeout_s is None else time.perf_counter() + timeout_s
                while not self._ready:
                    if deadline is None:
                        slice_ms = _WAIT_SLICE_MS
                    else:
                        remaining = deadline - time.perf_counter()
                        if remaining <= 0:
                            break
                        slice_ms = min(_WAIT_SLICE_MS, math.ceil(remaining * 1000))
                    self._dequeue(room, slice_ms)
            ready = self._ready
        if len(ready) <= max_completions:
            self._ready = []
            return ready
        out = ready[:max_completions]
        del ready[:max_completions]
        return out

    # --- questions -----------------------------------------------------------------------
    def error_kind(self, code: int) -> ErrorKind:
        return _ERROR_KINDS.get(code, ErrorKind.OTHER)

    def would_block(self, code: int) -> bool:
        return code == WinError.WSAEWOULDBLOCK

    def pending(self) -> int:
        return self._pending

    def posted_recv_bytes(self) -> int:
        """Bytes of receive buffers the kernel holds right now (pending buffered recvs)."""
        return self._posted_recv_bytes

    def shutdown(self) -> None:
        if self._closed:
            return
        self._closed = True
        for handle in list(self._socks):
            self._ws2.closesocket(handle)
        self._socks.clear()
        # Closing cancelled everything; wait for the kernel to hand each slot back.
        deadline = time.monotonic() + _DRAIN_S
        while self._inflight and time.monotonic() < deadline:
            self._dequeue(max(len(self._inflight), 1), 50)
        if self._inflight:
            _ABANDONED.extend(self._inflight.values())
            self._inflight.clear()
        self._k32.CloseHandle(self._port)
        self._ready.clear()
        self._pending = 0
        self._ws2.WSACleanup()


def _require_windows() -> None:
    # A function of its own, so type checkers on Linux still check the code after the call.
    if sys.platform != "win32":
        raise BackendUnavailable(
            f"IOCP needs Windows (this is {sys.platform}); on Linux, run the Windows "
            "suite under Wine with scripts/windows-python, or use --backend io_uring/epoll"
        )
