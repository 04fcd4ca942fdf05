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
through the port). Here each operation slot is one ``_Op``: a bytearray holding its
OVERLAPPED, WSABUF, flag/byte-count DWORDs and socket-address space, plus a reference to
the caller's buffer. A pending ``_Op`` sits in ``_inflight`` keyed by its OVERLAPPED
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
"""

from __future__ import annotations

import ctypes
import math
import socket
import struct
import sys
import time
from enum import IntEnum
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
)
from loadgen.engine.win32 import WinError

# Operation kinds (small ints: compared in the hot path). 0 means the slot is idle.
_RECV, _RECV_ZERO, _ACCEPT = 1, 2, 3
_SEND, _CONNECT = 4, 5


class CompletionKey(IntEnum):
    """The key every socket is tied to the port with; other keys are not ours."""

    SOCKET = 1


# --- one operation slot: [OVERLAPPED | WSABUF | flags | bytes | sockaddr | AcceptEx out] ---
_OV_SIZE: Final = ctypes.sizeof(win32.OVERLAPPED)  # 32
_WSABUF_AT: Final = _OV_SIZE
_FLAGS_AT: Final = _WSABUF_AT + ctypes.sizeof(win32.WSABUF)  # DWORD flags for WSARecv
_BYTES_AT: Final = _FLAGS_AT + 4  # DWORD bytes transferred when an op finishes at once
_SOCKADDR_AT: Final = _BYTES_AT + 4  # sockaddr_in6 fits (28, padded to 32)
_ACCEPT_OUT_AT: Final = _SOCKADDR_AT + 32  # AcceptEx: local + remote address, 44 each
_BLOCK_SIZE: Final = _ACCEPT_OUT_AT + 2 * win32.ACCEPTEX_ADDRESS_LEN
_ZERO_HEAD: Final = bytes(_BYTES_AT + 4)  # OVERLAPPED, WSABUF and the two DWORDs
_WSABUF: Final = struct.Struct("<I4xQ")  # len u32 (+4 padding), buf pointer
_DWORD: Final = struct.Struct("<I")
_ENTRY: Final = struct.Struct("<QQQI4x")  # OVERLAPPED_ENTRY: key, overlapped, status, bytes
_ENTRY_SIZE: Final = ctypes.sizeof(win32.OVERLAPPED_ENTRY)
_SOCKADDR_IN: Final = struct.Struct("<H2s4s8x")  # family (host order), port (net), addr
_SOCKADDR_IN6: Final = struct.Struct("<H2sI16sI")  # family, port, flowinfo, addr, scope_id
_POINTER: Final = struct.Struct("<Q")

#: One GetQueuedCompletionStatusEx call blocks at most this long, so Ctrl+C (which Python
#: handles only between bytecodes) is seen within half a second of an infinite wait.
_WAIT_SLICE_MS: Final = 500
#: shutdown() waits this long for the kernel to hand back cancelled operations.
_DRAIN_S: Final = 5.0

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
}


def _address_of(buf: Buffer | bytes) -> tuple[object | None, int, int]:
    """Pin ``buf`` and return (anchor keeping it pinned, address, length in bytes).

    ``c_char.from_buffer`` exports the buffer, so a bytearray cannot be resized or freed
    while the anchor lives. A read-only buffer is copied (the kernel only reads it).
    """
    n = buf.nbytes if type(buf) is memoryview else len(buf)
    if n == 0:
        return None, 0, 0
    anchor: ctypes.c_char | ctypes.Array[ctypes.c_char]
    try:
        anchor = ctypes.c_char.from_buffer(buf)
    except TypeError:  # read-only (bytes, memoryview of bytes)
        anchor = (ctypes.c_char * n).from_buffer_copy(buf)
    return anchor, ctypes.addressof(anchor), n


class _Op:
    """One operation slot: its OVERLAPPED and everything the kernel may touch."""

    __slots__ = (
        "accept_handle",
        "address",
        "anchor",
        "block",
        "block_anchor",
        "kind",
        "length",
        "sock",
        "token",
    )

    def __init__(self, sock: _Sock) -> None:
        self.block = bytearray(_BLOCK_SIZE)
        self.block_anchor = ctypes.c_char.from_buffer(self.block)  # pins the block
        self.address = ctypes.addressof(self.block_anchor)  # == the OVERLAPPED's address
        self.sock = sock
        self.kind = 0
        self.token = 0
        self.anchor: object | None = None  # pins the caller's buffer
        self.length = 0
        self.accept_handle = 0

    def start(self, kind: int, token: int, anchor: object | None, address: int, n: int) -> None:
        block = self.block
        block[: len(_ZERO_HEAD)] = _ZERO_HEAD
        _WSABUF.pack_into(block, _WSABUF_AT, n, address)
        self.kind = kind
        self.token = token
        self.anchor = anchor
        self.length = n


class _Sock:
    """A socket owned by the engine: one read-side and one write-side slot."""

    __slots__ = ("bound", "family", "handle", "read", "skip", "write")

    def __init__(self, handle: int, family: int, skip: bool) -> None:
        self.handle = handle
        self.family = family  # the Windows AF_* value
        self.skip = skip  # FILE_SKIP_COMPLETION_PORT_ON_SUCCESS is set
        self.bound = False
        self.read = _Op(self)
        self.write = _Op(self)


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
        self._socks: dict[int, _Sock] = {}
        self._inflight: dict[int, _Op] = {}
        self._ready: list[Completion] = []
        self._pending = 0
        self._posted_recv_bytes = 0
        self._extensions: dict[tuple[int, str], int] = {}
        self._ifs: dict[int, bool] = {}
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

    # --- sockets -----------------------------------------------------------------------
    def _new_socket(self, family: int) -> _Sock:
        ws2 = self._ws2
        handle = ws2.WSASocketW(
            family,
            win32.SocketType.SOCK_STREAM,
            win32.IpProtocol.IPPROTO_TCP,
            None,
            0,
            win32.WsaFlag.WSA_FLAG_OVERLAPPED | win32.WsaFlag.WSA_FLAG_NO_HANDLE_INHERIT,
        )
        if handle == win32.INVALID_SOCKET:
            win32.raise_winerror(what="WSASocketW")
        try:
            if (
                self._k32.CreateIoCompletionPort(handle, self._port, CompletionKey.SOCKET, 0)
                is None
            ):
                win32.raise_winerror(what="CreateIoCompletionPort(socket)")
            skip = self._skip_is_safe(handle, family)
            if skip and not self._k32.SetFileCompletionNotificationModes(
                handle,
                win32.CompletionMode.FILE_SKIP_COMPLETION_PORT_ON_SUCCESS
                | win32.CompletionMode.FILE_SKIP_SET_EVENT_ON_HANDLE,
            ):
                win32.raise_winerror(what="SetFileCompletionNotificationModes")
            one = ctypes.c_uint32(1)
            if ws2.ioctlsocket(handle, win32.Ioctl.FIONBIO, ctypes.byref(one)):
                win32.raise_winerror(what="ioctlsocket(FIONBIO)")
        except BaseException:
            ws2.closesocket(handle)
            raise
        return _Sock(handle, family, skip)

    def _skip_is_safe(self, handle: int, family: int) -> bool:
        """XP1_IFS_HANDLES of the socket's provider, asked once per family."""
        known = self._ifs.get(family)
        if known is None:
            info = (ctypes.c_char * win32.WSAPROTOCOL_INFOW_SIZE)()
            size = ctypes.c_int(ctypes.sizeof(info))
            rc = self._ws2.getsockopt(
                handle,
                win32.SocketLevel.SOL_SOCKET,
                win32.SocketOption.SO_PROTOCOL_INFOW,
                info,
                ctypes.byref(size),
            )
            # dwServiceFlags1 is the structure's first DWORD.
            known = rc == 0 and bool(_DWORD.unpack_from(info)[0] & win32.XP1_IFS_HANDLES)
            self._ifs[family] = known
        return known

    def _set_option(self, handle: int, level: int, option: int, value: bytes) -> int:
        return self._ws2.setsockopt(handle, level, option, value, len(value))

    def tcp_socket(self, family: int = socket.AF_INET) -> int:
        state = self._new_socket(_win_family(family))
        self._set_option(
            state.handle, win32.SocketLevel.IPPROTO_TCP, win32.SocketOption.TCP_NODELAY, b"\1\0\0\0"
        )
        self._socks[state.handle] = state
        return state.handle

    def _state(self, handle: int) -> _Sock:
        state = self._socks.get(handle)
        if state is None:
            raise ValueError(f"socket {handle} is not open in this engine")
        return state

    def bind(self, handle: int, address: tuple[str, int]) -> None:
        state = self._state(handle)
        name = _sockaddr(state.family, address)
        if self._ws2.bind(handle, name, len(name)):
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
        state = self._new_socket(family)
        self._socks[state.handle] = state
        try:
            self.bind(state.handle, (host, port))
            if self._ws2.listen(state.handle, backlog):
                win32.raise_winerror(what="listen")
            bound = self._local_address(state.handle)
        except BaseException:
            self.close(state.handle)
            raise
        return state.handle, bound

    def _local_address(self, handle: int) -> tuple[str, int]:
        name = (ctypes.c_char * ctypes.sizeof(win32.sockaddr_in6))()
        size = ctypes.c_int(ctypes.sizeof(name))
        if self._ws2.getsockname(handle, name, ctypes.byref(size)):
            win32.raise_winerror(what="getsockname")
        return _parse_sockaddr(bytes(name))

    def close(self, handle: int, *, abort: bool = False) -> None:
        state = self._socks.pop(handle, None)
        if state is None:
            raise ValueError(f"socket {handle} is not open in this engine")
        if abort:
            linger = bytes(win32.LINGER(1, 0))  # l_onoff=1, l_linger=0: closesocket sends RST
            self._set_option(
                handle, win32.SocketLevel.SOL_SOCKET, win32.SocketOption.SO_LINGER, linger
            )
        # Pending operations are cancelled by the kernel and still come back through the
        # port (ERROR_OPERATION_ABORTED); their slots stay in _inflight until then.
        self._ws2.closesocket(handle)

    # --- starting operations -----------------------------------------------------------
    def _begin(self, op: _Op, ok: bool) -> None:
        """Account for an operation just started; ``ok`` is True if it finished at once."""
        self._pending += 1
        if ok and op.sock.skip:
            self._finish(op, 0, _DWORD.unpack_from(op.block, _BYTES_AT)[0])
            return
        if not ok:
            code = self._last_error()
            if code != win32.WSA_IO_PENDING:
                self._finish(op, code, 0)  # failed at once: no packet will come
                return
        # Pending, or finished at once without the skip mode: a packet will come.
        self._inflight[op.address] = op
        if op.kind == _RECV:
            self._posted_recv_bytes += op.length

    def _read_slot(self, handle: int) -> _Op:
        op = self._state(handle).read
        if op.kind:
            raise RuntimeError(f"socket {handle} already has a read-side operation pending")
        return op

    def _write_slot(self, handle: int) -> _Op:
        op = self._state(handle).write
        if op.kind:
            raise RuntimeError(f"socket {handle} already has a write-side operation pending")
        return op

    def _extension(self, handle: int, family: int, guid_text: str) -> int:
        """Address of ConnectEx/AcceptEx for this provider (asked once per family)."""
        key = (family, guid_text)
        pointer = self._extensions.get(key)
        if pointer is None:
            guid = win32.GUID.from_string(guid_text)
            out = ctypes.c_void_p()
            returned = win32.DWORD()
            if (
                self._ws2.WSAIoctl(
                    handle,
                    win32.Ioctl.SIO_GET_EXTENSION_FUNCTION_POINTER,
                    ctypes.byref(guid),
                    ctypes.sizeof(guid),
                    ctypes.byref(out),
                    ctypes.sizeof(out),
                    ctypes.byref(returned),
                    None,
                    None,
                )
                or not out.value
            ):
                win32.raise_winerror(what=f"WSAIoctl(SIO_GET_EXTENSION_FUNCTION_POINTER {guid})")
            pointer = self._extensions[key] = out.value
        return pointer

    def connect(self, handle: int, address: tuple[str, int], token: int) -> None:
        op = self._write_slot(handle)
        state = op.sock
        if not state.bound:
            # ConnectEx refuses an unbound socket (WSAEINVAL): take any local address.
            any_host = "::" if state.family == win32.AddressFamily.AF_INET6 else "0.0.0.0"
            self.bind(handle, (any_host, 0))
        name = _sockaddr(state.family, address)
        op.start(_CONNECT, token, None, 0, 0)
        op.block[_SOCKADDR_AT : _SOCKADDR_AT + len(name)] = name
        connect_ex = win32.LPFN_CONNECTEX(
            self._extension(handle, state.family, win32.WSAID_CONNECTEX)
        )
        ok = connect_ex(handle, op.address + _SOCKADDR_AT, len(name), None, 0, None, op.address)
        self._begin(op, bool(ok))

    def accept(self, listen_handle: int, token: int) -> None:
        op = self._read_slot(listen_handle)
        listener = op.sock
        accepted = self._new_socket(listener.family)
        op.start(_ACCEPT, token, accepted, 0, 0)
        op.accept_handle = accepted.handle
        accept_ex = win32.LPFN_ACCEPTEX(
            self._extension(listen_handle, listener.family, win32.WSAID_ACCEPTEX)
        )
        ok = accept_ex(
            listen_handle,
            accepted.handle,
            op.address + _ACCEPT_OUT_AT,
            0,  # receive no data with the connection: complete as soon as it is accepted
            win32.ACCEPTEX_ADDRESS_LEN,
            win32.ACCEPTEX_ADDRESS_LEN,
            op.address + _BYTES_AT,
            op.address,
        )
        self._begin(op, bool(ok))

    def send(self, handle: int, data: Buffer | bytes, token: int) -> None:
        op = self._write_slot(handle)
        anchor, address, n = _address_of(data)
        op.start(_SEND, token, anchor, address, n)
        base = op.address
        rc = self._ws2.WSASend(handle, base + _WSABUF_AT, 1, base + _BYTES_AT, 0, base, None)
        self._begin(op, rc == 0)

    def recv(self, handle: int, buf: Buffer, token: int) -> None:
        op = self._read_slot(handle)
        anchor, address, n = _address_of(buf)
        op.start(_RECV, token, anchor, address, n)
        base = op.address
        rc = self._ws2.WSARecv(
            handle, base + _WSABUF_AT, 1, base + _BYTES_AT, base + _FLAGS_AT, base, None
        )
        self._begin(op, rc == 0)

    def recv_zero(self, handle: int, token: int) -> None:
        op = self._read_slot(handle)
        op.start(_RECV_ZERO, token, None, 0, 0)  # one WSABUF of length 0: no buffer
        base = op.address
        rc = self._ws2.WSARecv(
            handle, base + _WSABUF_AT, 1, base + _BYTES_AT, base + _FLAGS_AT, base, None
        )
        self._begin(op, rc == 0)

    def cancel(self, handle: int, token: int) -> None:
        state = self._socks.get(handle)
        if state is None:
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
            self._recv_now_anchor, self._recv_now_address, self._recv_now_len = _address_of(buf)
            self._recv_now_buf = buf
        n = self._ws2.recv(handle, self._recv_now_address, self._recv_now_len, 0)
        return n if n >= 0 else -self._last_error()

    # --- completing ----------------------------------------------------------------------
    def _finish(self, op: _Op, code: int, nbytes: int) -> None:
        """Turn a finished slot into a completion; ``code`` 0 is success."""
        kind = op.kind
        flags = 0
        if code:
            result = -code
            if kind == _ACCEPT:
                self._ws2.closesocket(op.accept_handle)
        elif kind in (_RECV, _SEND):
            result = nbytes
        elif kind == _RECV_ZERO:
            result = 0
            flags = FLAG_READABLE
        elif kind == _CONNECT:
            result = 0
            if op.sock.handle in self._socks:
                self._set_option(
                    op.sock.handle,
                    win32.SocketLevel.SOL_SOCKET,
                    win32.SocketOption.SO_UPDATE_CONNECT_CONTEXT,
                    b"",
                )
        else:  # _ACCEPT
            result = self._accepted(op)
        self._ready.append((op.token, result, flags))
        self._pending -= 1
        op.kind = 0
        op.anchor = None

    def _accepted(self, op: _Op) -> int:
        accepted = op.anchor
        assert isinstance(accepted, _Sock)
        handle = accepted.handle
        listener = _POINTER.pack(op.sock.handle)
        level = win32.SocketLevel.SOL_SOCKET
        if self._set_option(handle, level, win32.SocketOption.SO_UPDATE_ACCEPT_CONTEXT, listener):
            code = self._last_error()
            self._ws2.closesocket(handle)
            return -code
        self._set_option(
            handle, win32.SocketLevel.IPPROTO_TCP, win32.SocketOption.TCP_NODELAY, b"\1\0\0\0"
        )
        self._socks[handle] = accepted
        return handle

    def _dequeue(self, room: int, timeout_ms: int) -> int:
        """One GetQueuedCompletionStatusEx call; returns how many packets it removed."""
        if len(self._entries) < room * _ENTRY_SIZE:
            self._entries = bytearray(room * _ENTRY_SIZE)
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
        removed: int = _DWORD.unpack_from(self._removed)[0]
        inflight = self._inflight
        view = memoryview(self._entries)[: removed * _ENTRY_SIZE]
        for key, overlapped, status, nbytes in _ENTRY.iter_unpack(view):
            op = inflight.pop(overlapped, None)
            if op is None or key != CompletionKey.SOCKET:
                continue
            if op.kind == _RECV:
                self._posted_recv_bytes -= op.length
            status &= 0xFFFFFFFF  # an NTSTATUS in a pointer-sized field
            if status & 0x80000000:  # NT_ERROR / NT_WARNING: failed
                code = self._nt.RtlNtStatusToDosError(status - (1 << 32))
                self._finish(op, code or WinError.ERROR_OPERATION_ABORTED, 0)
            else:
                self._finish(op, 0, nbytes)
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
                deadline = None if timeout_s is None else time.monotonic() + timeout_s
                while not self._ready:
                    if deadline is None:
                        slice_ms = _WAIT_SLICE_MS
                    else:
                        remaining = deadline - time.monotonic()
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


# --- socket addresses ----------------------------------------------------------------------
def _win_family(family: int) -> int:
    """The host's ``socket.AF_*`` (what callers pass) as the Windows value."""
    if family == socket.AF_INET6:
        return win32.AddressFamily.AF_INET6
    if family == socket.AF_INET:
        return win32.AddressFamily.AF_INET
    raise ValueError(f"unsupported address family {family}")


def _sockaddr(family: int, address: tuple[str, int]) -> bytes:
    host, port = address[0], address[1]
    port_bytes = port.to_bytes(2, "big")
    if family == win32.AddressFamily.AF_INET6:
        packed = _resolve(socket.AF_INET6, host, port)
        return _SOCKADDR_IN6.pack(family, port_bytes, 0, packed, 0)
    return _SOCKADDR_IN.pack(family, port_bytes, _resolve(socket.AF_INET, host, port))


def _resolve(family: socket.AddressFamily, host: str, port: int) -> bytes:
    try:
        return socket.inet_pton(family, host)
    except OSError:
        info = socket.getaddrinfo(host, port, family, socket.SOCK_STREAM)
        return socket.inet_pton(family, str(info[0][4][0]))


def _parse_sockaddr(raw: bytes) -> tuple[str, int]:
    family = _DWORD.unpack_from(raw[:2] + b"\0\0")[0]
    if family == win32.AddressFamily.AF_INET6:
        _, port, _, packed, _ = _SOCKADDR_IN6.unpack_from(raw)
        return socket.inet_ntop(socket.AF_INET6, packed), int.from_bytes(port, "big")
    _, port, packed = _SOCKADDR_IN.unpack_from(raw)
    return socket.inet_ntop(socket.AF_INET, packed), int.from_bytes(port, "big")
