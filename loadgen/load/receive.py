"""Receive mechanics, one receive mode applied the same way by both clients and the pool.

A client keeps one receive posted per open connection, in the scenario's receive mode
(``loadgen.config.receive``), and hands what arrives to its own ``consume``:

* ``buffered``: a receive into the connection's own buffer (``receive_buffer`` bytes),
  posted again by the client once it has taken the bytes (the client's hot loop does that
  itself: ``post_buffer``). With ``register_buffers`` (io_uring) the buffers are one region
  registered with the kernel (pinned: VmPin) and receives name a buffer by index.
* ``zero-byte``: a zero-byte receive (a readiness poll on io_uring and epoll) stays posted
  instead; when it completes, ``drain`` reads the socket with non-blocking receives into
  one scratch buffer shared by every connection, at most ``DRAIN_READS`` reads, then posts
  the next zero-byte receive. No per-connection receive buffer exists.
* ``buffer-ring`` (io_uring): one multishot receive stays armed per connection and takes
  buffers from a ring of ``ring_buffers`` buffers of ``receive_buffer`` bytes shared by
  every connection. ``ring`` copies each completion's bytes out and gives the buffer back at
  once; a receive that ends (``-ENOBUFS`` when the ring ran dry: counted in
  ``ring_enobufs``; or after the kernel's last buffer) is armed again with ``rearm``.
  With ``read_bytes`` (a paced stream) one-shot receives of at most that many bytes are
  posted instead, so the client reads no faster than its pace.

Stale completions: a completion whose token no longer matches its slot (the socket was torn
down and maybe reopened since; ``loadgen.load.tokens``) is dropped by the loops, and a ring
buffer it was lent goes back (``give_back``), or the ring would run dry.
"""

from __future__ import annotations

import errno
import time
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

from loadgen.config.receive import ReceiveMode
from loadgen.engine import Backend
from loadgen.engine.base import RING_BID_SHIFT, RING_BUFFER, RING_MORE, Buffer
from loadgen.load.client_config import ClientConfig
from loadgen.load.tokens import INDEX_SHIFT, OP_MASK, OP_RECV, OP_RECV_RING, OP_RECV_ZERO

#: Zero-byte mode: the scratch buffer every connection drains into (request client).
SCRATCH_BYTES = 64 * 1024
#: Zero-byte mode: reads per drain before the zero-byte receive is posted again (64 KiB
#: reads: 1 MiB), so a connection that never runs dry cannot hold the loop; whatever is
#: left completes the next zero-byte receive at once.
DRAIN_READS = 16


class Receiving(Protocol):
    """What the receive mechanics read of a connection slot (``loadgen.load.pool.Slot``)."""

    index: int
    handle: int
    token_base: int


C = TypeVar("C", bound=Receiving)

#: ``consume(conn, data, n, now_ns)``: the first ``n`` bytes of ``data`` arrived on
#: ``conn``; True while the same connection wants to go on receiving (False: it failed,
#: finished, or was closed or replaced meanwhile, and nothing more is posted for it).
Consume = Callable[[C, Buffer | bytes, int, int], bool]


def give_back(engine: Backend, token: int, flags: int) -> None:
    """A completion that is dropped (stale, or reaped after the end): the ring buffer it
    was lent, if any, goes back to the ring."""
    if flags & RING_BUFFER and token & OP_MASK == OP_RECV_RING:
        engine.release_ring_buffer(flags >> RING_BID_SHIFT)


def is_stale(conn: Receiving, token: int) -> bool:
    """True when ``token`` belongs to a socket of ``conn`` that was torn down since. (The
    request client's hot loop writes this test inline.)"""
    return (token & ~OP_MASK) != conn.token_base or conn.handle < 0


class Receiver(Generic[C]):
    """One client's receive mode: its buffers, posting, draining and re-arming.

    ``consume`` takes the bytes; ``on_eof`` and ``on_error`` (``-code``) end a connection;
    ``rearm`` posts the receive again after a ring receive ended (default: ``post``);
    ``may_read`` (paced streams) says whether a drain may read now (when it says no, the
    client's timer drains on later). ``read_bytes`` caps every read (a paced stream reads
    at most a segment per due time); ``scratch_bytes`` sizes the zero-byte scratch buffer.
    """

    def __init__(
        self,
        engine: Backend,
        config: ClientConfig,
        consume: Consume[C],
        on_eof: Callable[[C, int], None],
        on_error: Callable[[C, int, int], None],
        *,
        rearm: Callable[[C, int], None] | None = None,
        may_read: Callable[[C, int], bool] | None = None,
        read_bytes: int | None = None,
        scratch_bytes: int = SCRATCH_BYTES,
    ) -> None:
        self.engine = engine
        self.mode = config.recv_mode
        self._consume = consume
        self._on_eof = on_eof
        self._on_error = on_error
        self._rearm = rearm or (lambda conn, now_ns: self.post(conn))
        self._may_read = may_read
        self._read_bytes = read_bytes
        #: buffer-ring: receives that ended because the ring was empty (then re-armed).
        self.ring_enobufs = 0
        #: buffered: each connection's buffer (by index), as received into; None otherwise.
        self.buffers: list[Buffer] | None = None
        #: buffered: what is posted per connection (the buffer, or its first ``read_bytes``).
        self._views: list[Buffer] = []
        #: buffered: posts ``(handle, buffer, token)``: a plain receive, or into a
        #: registered buffer (the slot index in the token names it).
        self.post_buffer: Callable[[int, Buffer, int], None] = engine.recv
        scratch = bytearray(scratch_bytes)
        self.scratch = scratch
        self._scratch_view: Buffer = (
            scratch
            if read_bytes is None or read_bytes >= scratch_bytes
            else memoryview(scratch)[:read_bytes]
        )
        if self.mode == ReceiveMode.BUFFER_RING:
            engine.setup_buffer_ring(config.ring_buffers, config.receive_buffer)
        elif self.mode == ReceiveMode.BUFFERED:
            self._prepare_buffers(config)

    def _prepare_buffers(self, config: ClientConfig) -> None:
        count, size = config.connections, config.receive_buffer
        read_bytes = self._read_bytes
        if config.register_buffers:
            self.buffers = list(self.engine.register_buffers(count, size))
            recv_fixed = self.engine.recv_fixed
            nbytes = 0 if read_bytes is None or read_bytes >= size else read_bytes

            def recv_registered(handle: int, buf: Buffer, token: int) -> None:
                recv_fixed(handle, token >> INDEX_SHIFT, token, nbytes)  # buffer i: slot i

            self.post_buffer = recv_registered
        else:
            self.buffers = [bytearray(size) for _ in range(count)]
        self._views = [
            buf if read_bytes is None or read_bytes >= size else memoryview(buf)[:read_bytes]
            for buf in self.buffers
        ]

    def post(self, conn: C) -> None:
        """Post ``conn``'s receive in this mode (it must be open)."""
        if self.mode == ReceiveMode.BUFFERED:
            self.post_buffer(conn.handle, self._views[conn.index], conn.token_base | OP_RECV)
        elif self.mode == ReceiveMode.BUFFER_RING:
            token = conn.token_base | OP_RECV_RING
            if self._read_bytes is None:
                self.engine.recv_ring(conn.handle, token)
            else:
                self.engine.recv_ring(
                    conn.handle, token, multishot=False, max_bytes=self._read_bytes
                )
        else:
            self.engine.recv_zero(conn.handle, conn.token_base | OP_RECV_ZERO)

    def drain(self, conn: C, now_ns: int) -> None:
        """Zero-byte mode: the socket is readable; read what waits, then post the next
        zero-byte receive (unless the connection ended, or ``may_read`` says wait)."""
        engine = self.engine
        recv_now = engine.recv_now
        view = self._scratch_view
        full = len(view)
        token_base = conn.token_base
        for _ in range(DRAIN_READS):
            if self._may_read is not None and not self._may_read(conn, now_ns):
                return  # paced: the client's timer drains on when the next read is due
            n = recv_now(conn.handle, view)
            if n > 0:
                if not self._consume(conn, self.scratch, n, now_ns):
                    return
                if n < full:
                    # A short read emptied the socket: skip the receive that would only say
                    # EAGAIN (a syscall); anything newer completes the next zero-byte receive.
                    break
                # A response to a request sent while consuming can arrive within the drain.
                now_ns = time.perf_counter_ns()
            elif n == 0:
                self._on_eof(conn, now_ns)
                return
            elif engine.would_block(-n):
                break
            else:
                self._on_error(conn, n, now_ns)
                return
        if conn.token_base == token_base and conn.handle >= 0:
            engine.recv_zero(conn.handle, token_base | OP_RECV_ZERO)

    def ring(self, conn: C, token: int, result: int, flags: int, now_ns: int) -> None:
        """buffer-ring: bytes in a ring buffer (copied out, the buffer given back at once),
        or the end of the armed receive (armed again unless the connection ended)."""
        engine = self.engine
        if result > 0:
            bid = flags >> RING_BID_SHIFT
            data = engine.ring_bytes(bid, result)
            engine.release_ring_buffer(bid)
            if self._consume(conn, data, result, now_ns) and not flags & RING_MORE:
                self._rearm(conn, now_ns)  # the kernel ended the receive after this data
        elif result == -errno.ENOBUFS:
            self.ring_enobufs += 1  # the ring ran dry; the data waits in the socket
            self._rearm(conn, now_ns)
        elif result == 0:
            self._on_eof(conn, now_ns)
        else:
            self._on_error(conn, result, now_ns)
