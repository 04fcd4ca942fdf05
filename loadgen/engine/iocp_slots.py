"""The IOCP backend's operation slots: the memory the kernel owns while an operation runs.

Each operation slot (``Op``) is one pinned bytearray laid out as
``[OVERLAPPED | WSABUF | flags | bytes | sockaddr | AcceptEx out]``: the OVERLAPPED first,
so the slot's address *is* the OVERLAPPED address a completion packet carries. A socket
(``Sock``) has one read-side and one write-side slot; a listener asked to accept also has an
``AcceptPool`` of slots that keep AcceptEx posted. Socket addresses are built here too, in
Windows' layout (AF_INET6 is 23 there, not the host's value).
"""

from __future__ import annotations

import ctypes
import socket
import struct
from collections import deque
from typing import Final

from loadgen.engine import win32
from loadgen.engine.base import Buffer

# Operation kinds (small ints: compared in the hot path). 0 means the slot is idle.
RECV, RECV_ZERO, ACCEPT = 1, 2, 3
SEND, CONNECT = 4, 5
#: A send whose success is dropped, not reported (``send_quiet``).
SEND_QUIET = 6


# --- one operation slot: [OVERLAPPED | WSABUF | flags | bytes | sockaddr | AcceptEx out] ---
_OV_SIZE: Final = ctypes.sizeof(win32.OVERLAPPED)  # 32
WSABUF_AT: Final = _OV_SIZE
FLAGS_AT: Final = WSABUF_AT + ctypes.sizeof(win32.WSABUF)  # DWORD flags for WSARecv
BYTES_AT: Final = FLAGS_AT + 4  # DWORD bytes transferred when an op finishes at once
SOCKADDR_AT: Final = BYTES_AT + 4  # sockaddr_in6 fits (28, padded to 32)
ACCEPT_OUT_AT: Final = SOCKADDR_AT + 32  # AcceptEx: local + remote address, 44 each
BLOCK_SIZE: Final = ACCEPT_OUT_AT + 2 * win32.ACCEPTEX_ADDRESS_LEN
_ZERO_HEAD: Final = bytes(BYTES_AT + 4)  # OVERLAPPED, WSABUF and the two DWORDs
_WSABUF: Final = struct.Struct("<I4xQ")  # len u32 (+4 padding), buf pointer
DWORD: Final = struct.Struct("<I")
ENTRY: Final = struct.Struct("<QQQI4x")  # OVERLAPPED_ENTRY: key, overlapped, status, bytes
ENTRY_SIZE: Final = ctypes.sizeof(win32.OVERLAPPED_ENTRY)
_SOCKADDR_IN: Final = struct.Struct("<H2s4s8x")  # family (host order), port (net), addr
_SOCKADDR_IN6: Final = struct.Struct("<H2sI16sI")  # family, port, flowinfo, addr, scope_id
POINTER: Final = struct.Struct("<Q")


def address_of(buf: Buffer | bytes) -> tuple[object | None, int, int]:
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


class Op:
    """One operation slot: its OVERLAPPED and everything the kernel may touch."""

    __slots__ = (
        "address",
        "anchor",
        "block",
        "block_anchor",
        "kind",
        "length",
        "sock",
        "token",
    )

    def __init__(self, sock: Sock) -> None:
        self.block = bytearray(BLOCK_SIZE)
        self.block_anchor = ctypes.c_char.from_buffer(self.block)  # pins the block
        self.address = ctypes.addressof(self.block_anchor)  # == the OVERLAPPED's address
        self.sock = sock
        self.kind = 0
        self.token = 0
        self.anchor: object | None = None  # pins the caller's buffer
        self.length = 0

    def start(self, kind: int, token: int, anchor: object | None, address: int, n: int) -> None:
        block = self.block
        block[: len(_ZERO_HEAD)] = _ZERO_HEAD
        _WSABUF.pack_into(block, WSABUF_AT, n, address)
        self.kind = kind
        self.token = token
        self.anchor = anchor
        self.length = n


class Sock:
    """A socket owned by the engine: one read-side and one write-side slot (and, once it
    is a listener that was asked to accept, its accept pool)."""

    __slots__ = ("bound", "family", "handle", "pool", "read", "skip", "write")

    def __init__(self, handle: int, family: int, skip: bool) -> None:
        self.handle = handle
        self.family = family  # the Windows AF_* value
        self.skip = skip  # FILE_SKIP_COMPLETION_PORT_ON_SUCCESS is set
        self.bound = False
        self.read = Op(self)
        self.write = Op(self)
        self.pool: AcceptPool | None = None


class AcceptPool:
    """A listener's posted AcceptEx slots and the caller's side of accepting.

    The caller still has at most one ``accept`` pending (``token``); the slots stay posted
    whether or not it has. An accepted socket nobody asked for yet waits in ``ready``. A
    slot whose AcceptEx failed at once (no socket, no buffers) stays idle until the next
    ``accept``/completion tries again; its code (``failure``) is what a caller waiting with
    no slot posted is told, so it is never left waiting on nothing.
    """

    __slots__ = ("failure", "ops", "ready", "token")

    def __init__(self, listener: Sock, size: int) -> None:
        self.ops = [Op(listener) for _ in range(size)]
        self.ready: deque[int] = deque()  # accepted handles, in the order they came
        self.token = -1  # the caller's pending accept (-1: none)
        self.failure = 0


# --- socket addresses ----------------------------------------------------------------------
def win_family(family: int) -> int:
    """The host's ``socket.AF_*`` (what callers pass) as the Windows value."""
    if family == socket.AF_INET6:
        return win32.AddressFamily.AF_INET6
    if family == socket.AF_INET:
        return win32.AddressFamily.AF_INET
    raise ValueError(f"unsupported address family {family}")


def sockaddr(family: int, address: tuple[str, int]) -> bytes:
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


def parse_sockaddr(raw: bytes) -> tuple[str, int]:
    family = DWORD.unpack_from(raw[:2] + b"\0\0")[0]
    if family == win32.AddressFamily.AF_INET6:
        _, port, _, packed, _ = _SOCKADDR_IN6.unpack_from(raw)
        return socket.inet_ntop(socket.AF_INET6, packed), int.from_bytes(port, "big")
    _, port, packed = _SOCKADDR_IN.unpack_from(raw)
    return socket.inet_ntop(socket.AF_INET, packed), int.from_bytes(port, "big")
