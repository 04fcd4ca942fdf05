"""The one small contract every engine backend implements.

The engine is a *completion* engine, shaped like Windows I/O completion ports and Linux
io_uring: the caller submits an operation on a socket together with an integer **token**,
and later ``wait()`` hands back a batch of completions ``(token, result, flags)``. Nothing
blocks in between and no callback is run: the caller maps the token back to its own state.

Rules shared by every backend (the contract suite in ``tests/engine`` checks each one):

* ``result >= 0`` is success. For ``recv``/``send`` it is a byte count (``recv`` returning
  0 means the peer closed: EOF). For ``connect`` it is 0. For ``accept`` it is the new
  socket's handle. For ``recv_zero`` it is 0 and ``flags`` tells what was seen.
* ``result < 0`` is ``-code`` where *code* is the OS's own error number (``errno`` on
  Linux, the WSA/Win32 code on Windows). ``Backend.error_kind(code)`` turns it into one
  of the portable kinds in ``ErrorKind``. Errors are never raised from inside the loop;
  only misuse of the API (unknown handle, a second read posted on one socket) raises.
* At most one *read-side* operation (``recv``, ``recv_zero``, ``accept``) and one
  *write-side* operation (``send``, ``connect``) may be pending per socket at a time.
* Buffers handed to ``recv`` and ``send`` belong to the kernel until the completion is
  returned: the caller must keep them alive and must not resize them. Buffers are
  writable bytes-like objects (``bytearray`` or a writable ``memoryview``).
* ``cancel(handle, token)`` asks for a pending operation to end early; it then completes
  with ``-ECANCELED`` (or the platform's equivalent, whose kind is ``cancelled``). A
  cancel that races with a normal completion may lose: the caller sees one completion
  for the token either way, never two.
* ``close(handle)`` releases the socket. Operations still pending on it complete (as
  cancelled, or with whatever they had finished) and are delivered by later ``wait()``
  calls; after that the token is never seen again.

Zero-byte receive: ``recv_zero`` posts a receive that owns no buffer and completes when the
socket has something to read *or* the peer has closed or reset. ``flags`` carries
``FLAG_READABLE`` and, when the backend can tell, ``FLAG_HANGUP``. The caller then drains
with ``recv_now`` (a non-blocking receive into a shared scratch buffer) until it returns
``-EAGAIN`` (EOF shows as ``0`` there), and posts the next ``recv_zero``. This is the
IOCP "zero-byte WSARecv" idiom: no receive buffer stays posted per connection.
"""

from __future__ import annotations

import errno
import socket
from enum import StrEnum
from typing import ClassVar, Protocol, runtime_checkable

# One completion: (token, result, flags). A plain tuple because the hot loop builds and
# unpacks hundreds of thousands of them per second; a dataclass costs ~5x more.
Completion = tuple[int, int, int]

# Buffers the kernel reads from / writes into.
Buffer = bytearray | memoryview

#: recv_zero saw the socket readable (data, or a FIN/RST waiting to be read).
FLAG_READABLE = 1
#: recv_zero saw the peer hang up (POLLRDHUP/POLLHUP); data may still be queued before it.
FLAG_HANGUP = 2

#: Completions handed back by one ``wait()`` unless the caller asks otherwise. Measured: an
#: unbounded batch at 5,000 connections stalled the loop; 256-1,024 keeps it responsive.
DEFAULT_MAX_COMPLETIONS = 512


class ErrorKind(StrEnum):
    """Portable error kinds counted in results."""

    REFUSED = "refused"
    RESET = "reset"
    TIMEOUT = "timeout"
    EOF = "eof"
    VERIFY = "verify"
    CANCELLED = "cancelled"
    OTHER = "other"


class BackendUnavailable(RuntimeError):
    """The backend cannot run on this machine; the message says why."""


_POSIX_ERROR_KINDS: dict[int, ErrorKind] = {
    errno.ECONNREFUSED: ErrorKind.REFUSED,
    errno.ECONNRESET: ErrorKind.RESET,
    errno.ECONNABORTED: ErrorKind.RESET,
    errno.EPIPE: ErrorKind.RESET,
    errno.ETIMEDOUT: ErrorKind.TIMEOUT,
    errno.ECANCELED: ErrorKind.CANCELLED,
    errno.EINTR: ErrorKind.CANCELLED,
}


def posix_error_kind(code: int) -> ErrorKind:
    """Kind of a POSIX errno (used by the Linux backends)."""
    return _POSIX_ERROR_KINDS.get(code, ErrorKind.OTHER)


@runtime_checkable
class Backend(Protocol):
    """A completion engine over TCP sockets. See the module docstring for the rules."""

    name: ClassVar[str]

    # --- sockets -------------------------------------------------------------------
    def tcp_socket(self, family: int = socket.AF_INET) -> int:
        """Create a non-blocking/overlapped TCP socket owned by this engine; return its handle."""
        ...

    def bind(self, handle: int, address: tuple[str, int]) -> None:
        """Bind a socket made by ``tcp_socket`` to a local address (source address spread)."""
        ...

    def listen_socket(
        self, host: str, port: int, backlog: int, *, reuse_port: bool = False
    ) -> tuple[int, tuple[str, int]]:
        """Create a listening socket; return its handle and the bound (host, port).

        ``reuse_port``: set SO_REUSEPORT (Linux), so several processes can listen on one
        port and the kernel spreads incoming connections over them. Windows has no such
        option: there it raises ``OSError``."""
        ...

    def close(self, handle: int, *, abort: bool = False) -> None:
        """Close a socket. ``abort=True`` sends RST (SO_LINGER 0) instead of FIN."""
        ...

    # --- operations (complete later through wait) ----------------------------------
    def connect(self, handle: int, address: tuple[str, int], token: int) -> None: ...

    def accept(self, listen_handle: int, token: int) -> None: ...

    def send(self, handle: int, data: Buffer, token: int) -> None: ...

    def recv(self, handle: int, buf: Buffer, token: int) -> None: ...

    def recv_zero(self, handle: int, token: int) -> None: ...

    def cancel(self, handle: int, token: int) -> None: ...

    # --- immediate -----------------------------------------------------------------
    def recv_now(self, handle: int, buf: Buffer) -> int:
        """Non-blocking receive: bytes read, 0 at EOF, ``-code`` on error (EAGAIN included)."""
        ...

    def wait(
        self, timeout_s: float | None, max_completions: int = DEFAULT_MAX_COMPLETIONS
    ) -> list[Completion]:
        """Submit everything queued, then return up to ``max_completions`` completions.

        Returns as soon as at least one completion is available, or after ``timeout_s``
        (``None`` waits forever, ``0`` only polls) with an empty list.
        """
        ...

    def error_kind(self, code: int) -> ErrorKind:
        """Portable kind of an OS error code (the positive ``code``, not ``-code``)."""
        ...

    def would_block(self, code: int) -> bool:
        """True when ``code`` from ``recv_now`` means "nothing to read now"."""
        ...

    def pending(self) -> int:
        """Operations submitted and not yet returned by ``wait`` (for leak checks)."""
        ...

    def posted_recv_bytes(self) -> int:
        """Bytes of receive buffers handed to the engine and not yet given back: the sum
        of the buffer sizes of ``recv`` operations pending now (posted and not yet
        completed). ``recv_zero`` owns no buffer and adds nothing. Kept as a running count
        (one integer add per ``recv`` and per completion), so reading it costs nothing."""
        ...

    def shutdown(self) -> None:
        """Close every socket and release the kernel objects of the engine."""
        ...
