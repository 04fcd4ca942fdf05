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
  calls; after that the token is never seen again. ``close_many(handles)`` does the same
  for many sockets at once, as one batch where the backend can (io_uring: one
  ``io_uring_enter`` for all their cancels instead of one per socket).

Quiet send: ``send_quiet(handle, data, token)`` sends all of ``data`` and reports only a
failure, as ``(token, -code, 0)``: a success completes nothing (io_uring:
IOSQE_CQE_SKIP_SUCCESS, one CQE less per request; the others drop the success themselves).
A short send is continued by the backend (io_uring: MSG_WAITALL; epoll: the rest when the
socket is writable again); IOCP's overlapped WSASend sends all or fails. It is for
request/response exchanges, where the response proves the request went out: the caller
must not send on the socket again before it knows the quiet send is done (a response to
it arrived), and must keep ``data`` unchanged until then. After ``close`` a quiet send is
never reported, whatever became of it. A quiet send that ends early (``cancel``, or an
error) after part of its data went out completes on io_uring with the bytes sent (fewer
than ``len(data)``: io_uring counts a short MSG_WAITALL send as failed and posts it), and
with the error elsewhere. ``pending()`` does not count quiet sends on io_uring (nothing
tells when one is done) and counts them until done elsewhere.

Zero-byte receive: ``recv_zero`` posts a receive that owns no buffer and completes when the
socket has something to read *or* the peer has closed or reset. ``flags`` carries
``FLAG_READABLE`` and, when the backend can tell, ``FLAG_HANGUP``. The caller then drains
with ``recv_now`` (a non-blocking receive into a shared scratch buffer) until it returns
``-EAGAIN`` (EOF shows as ``0`` there), and posts the next ``recv_zero``. This is the
IOCP "zero-byte WSARecv" idiom: no receive buffer stays posted per connection.

Optional receive features (io_uring only; every backend says whether it has them, through
``supports_buffer_ring`` and ``supports_fixed_buffers``, and the others raise
``NotImplementedError`` naming the backend when asked):

* **Provided-buffer ring** (``receive: buffer-ring``): ``setup_buffer_ring(count, size)``
  hands the kernel ``count`` buffers of ``size`` bytes, shared by every socket of the
  engine; ``recv_ring(handle, token)`` posts a *multishot* receive that picks a buffer from
  the ring only when data arrives. It is a read-side operation like ``recv``, but one
  token completes many times: each completion ``(token, result, flags)`` with
  ``result > 0`` carries ``RING_BUFFER`` and the buffer id ``flags >> RING_BID_SHIFT``,
  and ``RING_MORE`` says more completions will follow for this token. The first
  completion without ``RING_MORE`` ends the receive: EOF (``0``), an error, or
  ``-ENOBUFS`` when the ring was empty as data arrived (nothing is lost: the data stays in
  the socket), after which the caller gives buffers back and posts ``recv_ring`` again;
  the kernel may also end it with a last data completion. The caller reads a buffer with
  ``ring_bytes(bid, n)`` (a copy) and must give **every** buffer it was lent back with
  ``release_ring_buffer(bid)`` -- also those of completions it otherwise ignores (a socket
  already closed): a buffer not given back is lost to the ring. ``multishot=False`` makes
  a one-shot receive of at most ``max_bytes`` from the ring (for paced reading). Memory:
  the ring's ``count * size`` bytes, whatever the number of sockets. Other low bits of
  ``flags`` are reserved.
* **Registered receive buffers** (``register_buffers: true``): ``register_buffers(count,
  size)`` allocates ``count`` buffers of ``size`` bytes in one region the kernel pins
  (counted in VmPin on Linux, the counterpart of the pages Windows locks for a posted
  receive) and returns a view of each; ``recv_fixed(handle, index, token)`` receives into
  buffer ``index`` and completes like ``recv``.

``posted_recv_bytes()`` counts ``recv``/``recv_fixed`` buffers while pending, plus the
ring's buffers currently handed to the kernel: ``(count - lent to the caller) * size``.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Container, Iterable
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

#: recv_ring: a buffer of the ring holds this completion's bytes; its id is
#: ``flags >> RING_BID_SHIFT``. (The values are io_uring's IORING_CQE_F_BUFFER, _F_MORE and
#: IORING_CQE_BUFFER_SHIFT, so that backend hands its CQE flags over as they are.)
RING_BUFFER = 1
#: recv_ring: more completions follow for this token (a multishot receive stays armed).
RING_MORE = 2
RING_BID_SHIFT = 16

#: Completions handed back by one ``wait()`` unless the caller asks otherwise. Measured: an
#: unbounded batch at 5,000 connections stalled the loop; 256-1,024 keeps it responsive.
DEFAULT_MAX_COMPLETIONS = 512


class ErrorKind(StrEnum):
    """Portable error kinds counted in results (the OS's own codes are kept beside them)."""

    REFUSED = "refused"
    RESET = "reset"
    TIMEOUT = "timeout"
    EOF = "eof"
    VERIFY = "verify"
    CANCELLED = "cancelled"
    #: The kernel ran out of buffers or pool for the operation: WSAENOBUFS (10055) or
    #: ERROR_NO_SYSTEM_RESOURCES (1450) when locked pages or nonpaged pool run out under
    #: posted receives (what the zero-byte receive avoids), ENOBUFS/ENOMEM on Linux.
    NO_BUFFERS = "no_buffers"
    #: No route to the network or host (ENETUNREACH, EHOSTUNREACH; Windows 1231/1232/1234,
    #: WSAENETUNREACH, WSAEHOSTUNREACH).
    UNREACHABLE = "unreachable"
    #: No local address/port could be had: the ephemeral (dynamic) port range is used up,
    #: or a source address is not this host's (EADDRNOTAVAIL, EADDRINUSE and their WSA twins).
    ADDRESS_UNAVAILABLE = "address_unavailable"
    OTHER = "other"


class BackendUnavailable(RuntimeError):
    """The backend cannot run on this machine; the message says why."""


class FeatureUnavailable(BackendUnavailable):
    """An optional engine feature (buffer ring, registered buffers) cannot be used with
    this backend or within this machine's limits; the message says why and what to do."""


_POSIX_ERROR_KINDS: dict[int, ErrorKind] = {
    errno.ECONNREFUSED: ErrorKind.REFUSED,
    errno.ECONNRESET: ErrorKind.RESET,
    errno.ECONNABORTED: ErrorKind.RESET,
    errno.EPIPE: ErrorKind.RESET,
    errno.ETIMEDOUT: ErrorKind.TIMEOUT,
    errno.ECANCELED: ErrorKind.CANCELLED,
    errno.EINTR: ErrorKind.CANCELLED,
    errno.ENOBUFS: ErrorKind.NO_BUFFERS,
    errno.ENOMEM: ErrorKind.NO_BUFFERS,
    errno.ENETUNREACH: ErrorKind.UNREACHABLE,
    errno.EHOSTUNREACH: ErrorKind.UNREACHABLE,
    errno.ENETDOWN: ErrorKind.UNREACHABLE,
    errno.EADDRNOTAVAIL: ErrorKind.ADDRESS_UNAVAILABLE,
    errno.EADDRINUSE: ErrorKind.ADDRESS_UNAVAILABLE,
}


def posix_error_kind(code: int) -> ErrorKind:
    """Kind of a POSIX errno (used by the Linux backends)."""
    return _POSIX_ERROR_KINDS.get(code, ErrorKind.OTHER)


#: ``tcpi_state`` of a socket the peer reset (include/net/tcp_states.h); after the peer's
#: orderly FIN it is CLOSE_WAIT (8) until this side closes too.
TCP_STATE_CLOSE = 7


def posix_end_error(sock: socket.socket) -> int:
    """The error behind an end of stream on a POSIX socket (0: an orderly close).

    A reset sets the socket's pending error once; whichever call comes first takes it. When
    a send took it (``ECONNRESET``/``EPIPE``) and a receive completion is handled before the
    send's, the receive shows only the end of the stream (0), which is no reset. Seen on
    io_uring with zero-byte receives: 220 of 700 resets right after accept read as EOF.
    ``SO_ERROR`` gives a pending error not yet taken; on Linux, a connection in TCP state
    CLOSE without this side having closed it was aborted by the peer, so it is a reset."""
    try:
        code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            return code
        # Linux: tcpi_state is the first byte of struct tcp_info.
        info = getattr(socket, "TCP_INFO", None)
        if info is not None and sock.getsockopt(socket.IPPROTO_TCP, info, 1)[0] == TCP_STATE_CLOSE:
            return errno.ECONNRESET
    except OSError:  # nothing more to learn from this socket
        return 0
    return 0


def buffer_ring_unsupported(backend: str) -> NotImplementedError:
    """What a backend without provided-buffer rings raises when asked for one."""
    return NotImplementedError(
        f"the {backend} backend has no provided-buffer ring: receive mode buffer-ring "
        "needs the io_uring backend (Linux 6.1 or later)"
    )


def fixed_buffers_unsupported(backend: str) -> NotImplementedError:
    """What a backend without registered buffers raises when asked for them."""
    return NotImplementedError(
        f"the {backend} backend cannot register receive buffers with the kernel: "
        "register_buffers needs the io_uring backend"
    )


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

    def close_many(self, handles: Iterable[int], *, abort: bool = False) -> None:
        """Close every socket of ``handles``, like ``close`` each, batched where the backend
        can. An unknown or repeated handle raises before anything is closed."""
        ...

    # --- operations (complete later through wait) ----------------------------------
    def connect(self, handle: int, address: tuple[str, int], token: int) -> None: ...

    def accept(self, listen_handle: int, token: int) -> None: ...

    def send(self, handle: int, data: Buffer | bytes, token: int) -> None:
        """Send ``data`` (kept unchanged until the send completes). Read-only ``bytes`` work
        everywhere; IOCP copies them first (the kernel needs a fixed address), so a hot path
        sends a bytearray it keeps."""
        ...

    def send_quiet(self, handle: int, data: Buffer | bytes, token: int) -> None:
        """Send all of ``data``; only a failure completes (see the module docstring)."""
        ...

    def recv(self, handle: int, buf: Buffer, token: int) -> None: ...

    def recv_zero(self, handle: int, token: int) -> None: ...

    def cancel(self, handle: int, token: int) -> None: ...

    # --- immediate -----------------------------------------------------------------
    def recv_now(self, handle: int, buf: Buffer) -> int:
        """Non-blocking receive: bytes read, 0 at EOF, ``-code`` on error (EAGAIN included)."""
        ...

    def end_error(self, handle: int) -> int:
        """After a receive returned 0 (EOF): 0 when the peer closed in order (FIN), else the
        error code behind the end (a reset whose error another operation took first: see
        ``posix_end_error``). One system call; asked only at the end of a connection."""
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
        of the buffer sizes of ``recv``/``recv_fixed`` operations pending now (posted and
        not yet completed), plus the provided-buffer ring's buffers that are with the
        kernel (all of them but those lent to the caller and not yet released).
        ``recv_zero`` owns no buffer and adds nothing. Kept as running counts (one integer
        add per operation and per completion), so reading it costs nothing."""
        ...

    # --- optional receive features (see the module docstring) ------------------------
    @property
    def supports_buffer_ring(self) -> bool:
        """True when ``setup_buffer_ring``/``recv_ring`` work here."""
        ...

    @property
    def supports_fixed_buffers(self) -> bool:
        """True when ``register_buffers``/``recv_fixed`` work here."""
        ...

    def setup_buffer_ring(self, count: int, size: int) -> None:
        """Give the kernel a ring of ``count`` (a power of two) buffers of ``size`` bytes."""
        ...

    def recv_ring(
        self, handle: int, token: int, *, multishot: bool = True, max_bytes: int = 0
    ) -> None:
        """Receive into buffers picked from the ring (many completions per token)."""
        ...

    def ring_bytes(self, bid: int, nbytes: int) -> bytes:
        """A copy of the first ``nbytes`` of ring buffer ``bid`` (lent to the caller)."""
        ...

    def release_ring_buffer(self, bid: int) -> None:
        """Give ring buffer ``bid`` back to the kernel."""
        ...

    def register_buffers(self, count: int, size: int) -> list[memoryview]:
        """Allocate and register ``count`` receive buffers of ``size`` bytes; their views."""
        ...

    def recv_fixed(self, handle: int, index: int, token: int, nbytes: int = 0) -> None:
        """Receive into registered buffer ``index`` (at most ``nbytes``; 0: all of it)."""
        ...

    def shutdown(self) -> None:
        """Close every socket and release the kernel objects of the engine."""
        ...


class NoBufferFeatures:
    """The optional receive features, absent: mixed into backends that have neither a
    provided-buffer ring nor registered buffers (epoll, IOCP). Each call raises
    ``NotImplementedError`` naming the backend and what the feature needs."""

    name: ClassVar[str]
    supports_buffer_ring: ClassVar[bool] = False
    supports_fixed_buffers: ClassVar[bool] = False

    def setup_buffer_ring(self, count: int, size: int) -> None:
        raise buffer_ring_unsupported(self.name)

    def recv_ring(
        self, handle: int, token: int, *, multishot: bool = True, max_bytes: int = 0
    ) -> None:
        raise buffer_ring_unsupported(self.name)

    def ring_bytes(self, bid: int, nbytes: int) -> bytes:
        raise buffer_ring_unsupported(self.name)

    def release_ring_buffer(self, bid: int) -> None:
        raise buffer_ring_unsupported(self.name)

    def register_buffers(self, count: int, size: int) -> list[memoryview]:
        raise fixed_buffers_unsupported(self.name)

    def recv_fixed(self, handle: int, index: int, token: int, nbytes: int = 0) -> None:
        raise fixed_buffers_unsupported(self.name)


def check_close_many(handles: Iterable[int], known: Container[int]) -> list[int]:
    """``handles`` as a list, checked for ``close_many``: every one ``known``, none twice."""
    wanted = list(handles)
    for handle in wanted:
        if handle not in known:
            raise ValueError(f"unknown socket handle {handle!r} (closed, or not this engine's)")
    if len(set(wanted)) != len(wanted):
        raise ValueError("close_many: a handle is given twice")
    return wanted
