"""The stream client: raw TCP throughput in ctsTraffic's patterns, driven by one engine.

Each connection slot opens a connection, sends the 16-byte header (pattern, bytes,
segment; ``loadgen.protocols.stream``), moves its payload the way the pattern says (push,
pull, pushpull, duplex), waits for the server's trailer (which confirms what the server
received), and closes; a fresh connection takes its place at once, until the run ends. So a
run measures throughput over time (``bytes_sent``/``bytes_received`` per interval) and the
time each connection took, from its connect completing to its trailer arriving, which is
recorded as the "request" latency (one finished connection = one request). Connect latency
is recorded as usual.

Pacing: with ``rate`` (bytes/s per connection, per direction) a chunk of ``n`` bytes at
payload offset ``o`` of a direction starts no earlier than ``start + (o + n) / rate``: the
rate must have earned it, so a connection never runs ahead of its rate and a transfer of
``bytes`` takes ``bytes / rate``. Sends go out in ``segment`` chunks at their due times;
receives read at most ``segment`` bytes per due time, so a pulled stream is throttled by
TCP flow control to the rate the client reads at. Due times wait in a timer heap, and
``wait()`` never sleeps past the next one.

The loop is the pool's (``SlotPool.run``: one ``wait()`` per iteration, capped batches,
integer tokens); buffers are preallocated, every payload chunk is sent from one shared
pattern buffer and verified with one ``memcmp``. Receive modes are the shared mechanics of
``loadgen.load.receive``: ``buffered`` keeps a receive into the connection's buffer posted
(``register_buffers``: in buffers registered with the kernel, copied out before verifying);
``zero-byte`` keeps a zero-byte receive posted and drains into one scratch buffer shared by
every connection (at most ``receive.DRAIN_READS`` reads per completion, so one fast stream
cannot starve the others); ``buffer-ring`` (io_uring) keeps a multishot receive armed on
the engine's shared ring of buffers, or, when paced, posts one-shot ring receives of at
most a segment at their due times (a multishot receive would read as fast as data comes,
defeating the pacing).

Connected before the start (``SlotPool.preconnect``): a slot's receive is armed when it
connects, but its header (and so its transfer, its time and its pacing) waits for the start
of ``run``.

Errors end the connection and are counted by kind: ``verify`` (payload that differs from
the pattern, or a trailer saying the server found a mismatch), ``eof`` (the server closed
early), ``protocol`` (a malformed trailer, bytes after it, or a server that counted
different bytes), ``timeout`` (no progress for ``timeouts.request``), and the engine's kinds
(``reset``, ``refused``, ...). The slot reconnects after the pool's backoff.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import TYPE_CHECKING

from loadgen.config.receive import ReceiveMode
from loadgen.engine import Backend
from loadgen.engine.base import Buffer, ErrorKind
from loadgen.load.client_config import ClientConfig
from loadgen.load.pool import MAX_CONNECTS_IN_FLIGHT, OPEN, RETIRED, Slot, SlotPool
from loadgen.load.receive import Receiver
from loadgen.load.recorder import Recorder
from loadgen.load.tokens import OP_CONNECT, OP_MASK, OP_RECV_RING, OP_RECV_ZERO, OP_SEND
from loadgen.protocols.base import KIND_PROTOCOL
from loadgen.protocols.stream import (
    HEADER_BYTES,
    STATUS_OK,
    TRAILER_BYTES,
    PayloadPattern,
    StreamHeader,
    StreamProtocolError,
    client_send_limit,
    decode_trailer,
)

if TYPE_CHECKING:
    from loadgen.config.protocol_specs import StreamSpec

# Timer kinds: a paced send or a paced receive is due.
_T_SEND, _T_RECV = 0, 1


class _Conn(Slot):
    __slots__ = (
        "head_left",
        "progress_ns",
        "received",
        "send_end",
        "sending",
        "sent",
        "started_ns",
        "trailer",
        "trailer_got",
        "transfers",
    )

    def __init__(self, index: int) -> None:
        super().__init__(index)
        self.started_ns = 0  # the transfer's start: connect completed, header handed over
        self.progress_ns = 0  # last progress (or the next due time): the idle timeout's base
        self.head_left = 0  # header bytes not yet sent
        self.sent = 0  # payload bytes whose send completed
        self.send_end = 0  # end offset of the send in flight
        self.sending = False  # a send, or a paced send's timer, is pending
        self.received = 0  # payload bytes received and verified
        self.trailer = bytearray(TRAILER_BYTES)
        self.trailer_got = 0
        self.transfers = 0  # finished on this slot


class StreamClient(SlotPool[_Conn]):
    """Drives one engine until ``deadline_ns``, ``stop_requested``, or (with
    ``transfers_per_connection``) until every slot finished that many transfers.

    Takes the shared ``ClientConfig`` (addresses, pool size, receive mode and buffer,
    timeouts, connection ramps, source addresses) and the scenario's ``StreamSpec``.
    """

    def __init__(
        self,
        engine: Backend,
        config: ClientConfig,
        spec: StreamSpec,
        recorder: Recorder,
        transfers_per_connection: int | None = None,
    ) -> None:
        super().__init__(engine, recorder, config)
        self.config = config
        #: Hands bytes to the connection: the engine's send, or over TLS the TLS layer's
        #: (``loadgen.load.tls_clients``), which encrypts and then sends.
        self._send: Callable[[int, Buffer | bytes, int], None] = engine.send
        self._idle_timeout_ns = int(config.request_timeout_s * 1e9)
        #: The open model's counters; streams run the closed model only.
        self.waited_for_connection = 0
        self.unsent = 0
        self.header = StreamHeader(spec.pattern, spec.bytes, spec.segment)
        self._header_bytes = bytearray(self.header.encode())  # shared: the kernel only reads
        self._send_total = self.header.client_sends
        self._recv_total = self.header.server_sends
        self._segment = spec.segment
        #: Nanoseconds per payload byte when paced (0: as fast as it goes).
        self._ns_per_byte = 1e9 / spec.rate if spec.rate else 0.0
        self._transfers_limit = transfers_per_connection
        read_bytes = config.receive_buffer
        if self._ns_per_byte:
            read_bytes = min(read_bytes, spec.segment)  # one segment per due time
        self._read_bytes = read_bytes
        self._pattern = PayloadPattern(max(spec.segment, read_bytes))
        self._receiver: Receiver[_Conn] = Receiver(
            engine,
            config,
            self._consume,
            self._ended,
            self._ended_with_error,
            rearm=self._arm_receive,
            may_read=self._receive_due if self._ns_per_byte else None,
            read_bytes=read_bytes if self._ns_per_byte else None,
            scratch_bytes=config.receive_buffer,
        )
        self._zero_byte = config.recv_mode == ReceiveMode.ZERO_BYTE
        self._conns.extend(_Conn(index) for index in range(config.connections))
        self._retired = 0
        self._timers: list[tuple[int, int, int, int]] = []  # (due, index, token_base, kind)
        self._parked: list[_Conn] = []  # connected before the start: the header waits

    @property
    def ring_enobufs(self) -> int:
        """buffer-ring: receives that ended because the ring was empty (then re-armed)."""
        return self._receiver.ring_enobufs

    # --- slot hooks --------------------------------------------------------------------
    def _on_close(self, conn: _Conn) -> None:
        conn.sending = False

    def _stalled(self, conn: _Conn, now_ns: int) -> bool:
        # No progress for the request timeout (a paced wait moves progress_ns ahead).
        return now_ns - conn.progress_ns > self._idle_timeout_ns

    def _on_connect(self, conn: _Conn, result: int, now_ns: int) -> None:
        if result < 0:
            self._error(conn, result, now_ns)
            return
        self._connected(conn, now_ns)
        self._new_transfer(conn, now_ns)
        self._begin_transfer(conn, now_ns)
        self._arm_receive(conn, now_ns)

    def _new_transfer(self, conn: _Conn, now_ns: int) -> None:
        """A fresh connection's transfer state: nothing moved, the header to send."""
        conn.progress_ns = now_ns
        conn.sent = conn.send_end = conn.received = conn.trailer_got = 0
        conn.head_left = HEADER_BYTES
        conn.sending = True  # the header's send (held before the start: nothing else goes)

    def _begin_transfer(self, conn: _Conn, now_ns: int) -> None:
        """The connection is ready: its header goes (its transfer's time starts), or it is
        parked until the start when it connected before."""
        conn.started_ns = conn.progress_ns = now_ns
        if self._held:
            self._parked.append(conn)
        else:
            self._send(conn.handle, self._header_bytes, conn.token_base | OP_SEND)

    # --- before the start (SlotPool.preconnect) ----------------------------------------
    def _release(self, now_ns: int) -> None:
        """The start: each parked connection's transfer begins (its time, its pacing)."""
        parked, self._parked = self._parked, []
        for conn in parked:
            if conn.state == OPEN:
                conn.started_ns = conn.progress_ns = now_ns
                self._send(conn.handle, self._header_bytes, conn.token_base | OP_SEND)

    def _complete(self, conn: _Conn, token: int, result: int, flags: int, now_ns: int) -> None:
        op = token & OP_MASK
        if op == OP_CONNECT:
            self._on_connect(conn, result, now_ns)
        elif op == OP_RECV_RING:
            self._receiver.ring(conn, token, result, flags, now_ns)
        elif result < 0:
            self._error(conn, result, now_ns)
        elif op == OP_SEND:
            self._sent(conn, result, now_ns)
        elif op == OP_RECV_ZERO:
            self._receiver.drain(conn, now_ns)
        elif result == 0:
            self._fail(conn, ErrorKind.EOF.value, now_ns)
        else:  # OP_RECV with bytes
            buffers = self._receiver.buffers
            assert buffers is not None
            if self._consume(conn, buffers[conn.index], result, now_ns):
                self._arm_receive(conn, now_ns)

    def _finish(self, conn: _Conn, now_ns: int) -> None:
        """The transfer is complete: record its time, close, and open the next one."""
        self.recorder.pending_latency.append(now_ns - conn.started_ns)
        conn.transfers += 1
        self._close(conn, abort=False)
        limit = self._transfers_limit
        if limit is not None and conn.transfers >= limit:
            conn.state = RETIRED
            self._retired += 1
        elif (
            self._sending
            and conn.index < self._desired
            and self._connecting < MAX_CONNECTS_IN_FLIGHT
        ):
            self._open(conn, now_ns)
        # else the next tick reopens it (or a ramp down keeps it closed)

    def _check_done(self, conn: _Conn, now_ns: int) -> None:
        if (
            conn.trailer_got == TRAILER_BYTES
            and not conn.sending
            and conn.sent == self._send_total
            and conn.received == self._recv_total
        ):
            self._finish(conn, now_ns)

    # --- sending -----------------------------------------------------------------------
    def _pump_send(self, conn: _Conn, now_ns: int) -> None:
        """Start the next payload send if the pattern allows it and it is due."""
        if conn.sending:
            return
        limit = client_send_limit(self.header, conn.received)
        sent = conn.sent
        if sent >= limit:
            return
        conn.sending = True
        n = min(self._segment, limit - sent)
        if self._ns_per_byte:
            due = conn.started_ns + int((sent + n) * self._ns_per_byte)
            if due > now_ns:
                heapq.heappush(self._timers, (due, conn.index, conn.token_base, _T_SEND))
                if due > conn.progress_ns:
                    conn.progress_ns = due  # waiting on ourselves is not the target's silence
                return
        conn.send_end = sent + n
        self._send(conn.handle, self._pattern.view(sent, n), conn.token_base | OP_SEND)

    def _sent(self, conn: _Conn, result: int, now_ns: int) -> None:
        conn.sending = False
        conn.progress_ns = now_ns
        if conn.head_left:
            conn.head_left -= result
            if conn.head_left:
                conn.sending = True
                rest = memoryview(self._header_bytes)[HEADER_BYTES - conn.head_left :]
                self._send(conn.handle, rest, conn.token_base | OP_SEND)
                return
        else:
            conn.sent += result
            self.recorder.bytes_sent += result
            if conn.sent < conn.send_end:  # partial send: the rest of this chunk, now
                conn.sending = True
                view = self._pattern.view(conn.sent, conn.send_end - conn.sent)
                self._send(conn.handle, view, conn.token_base | OP_SEND)
                return
        self._pump_send(conn, now_ns)
        self._check_done(conn, now_ns)

    # --- receiving ---------------------------------------------------------------------
    def _receive_due(self, conn: _Conn, now_ns: int) -> bool:
        """True if a receive may start now; otherwise a timer will start it when due."""
        if not self._ns_per_byte or conn.received >= self._recv_total:
            return True
        n = min(self._read_bytes, self._recv_total - conn.received)
        due = conn.started_ns + int((conn.received + n) * self._ns_per_byte)
        if due <= now_ns:
            return True
        heapq.heappush(self._timers, (due, conn.index, conn.token_base, _T_RECV))
        if due > conn.progress_ns:
            conn.progress_ns = due
        return False

    def _arm_receive(self, conn: _Conn, now_ns: int) -> None:
        """Post the next receive: at once in zero-byte mode (the drain paces its reads),
        else when the pace allows it (a timer posts it otherwise)."""
        if conn.trailer_got == TRAILER_BYTES:
            return  # the trailer is in: nothing more is to be received
        if self._zero_byte or self._receive_due(conn, now_ns):
            self._receiver.post(conn)

    def _ended(self, conn: _Conn, now_ns: int) -> None:
        """The server closed the connection: early unless the trailer is in (a multishot
        ring receive still armed then may see the server's FIN; nothing more is expected)."""
        if conn.trailer_got != TRAILER_BYTES:
            self._fail(conn, ErrorKind.EOF.value, now_ns)

    def _ended_with_error(self, conn: _Conn, result: int, now_ns: int) -> None:
        if conn.trailer_got != TRAILER_BYTES:
            self._error(conn, result, now_ns)

    def _consume(self, conn: _Conn, buf: Buffer | bytes, n: int, now_ns: int) -> bool:
        """Take ``n`` received bytes from ``buf``: payload, then trailer. False when nothing
        more is to be received: the connection failed, or the trailer is in (the transfer
        finishes here or when its last send completes; the server's FIN is not awaited)."""
        conn.progress_ns = now_ns
        if isinstance(buf, memoryview):  # a registered buffer: engine memory, copied out
            buf = bytes(buf[:n])
        payload = min(n, self._recv_total - conn.received)
        if payload:
            if not self._pattern.matches(buf, 0, payload, conn.received):
                self._fail(conn, ErrorKind.VERIFY.value, now_ns)
                return False
            conn.received += payload
            self.recorder.bytes_received += payload
            if not conn.sending:  # pushpull: a whole segment back lets the next one go
                self._pump_send(conn, now_ns)
        rest = n - payload
        if rest:
            got = conn.trailer_got
            if got + rest > TRAILER_BYTES:
                self._fail(conn, KIND_PROTOCOL, now_ns)  # bytes after the trailer
                return False
            conn.trailer[got : got + rest] = buf[payload:n]
            conn.trailer_got = got = got + rest
            if got == TRAILER_BYTES:
                try:
                    status, server_received = decode_trailer(conn.trailer)
                except StreamProtocolError:
                    self._fail(conn, KIND_PROTOCOL, now_ns)
                    return False
                if status != STATUS_OK:
                    self._fail(conn, ErrorKind.VERIFY.value, now_ns)
                    return False
                if server_received != self._send_total:
                    self._fail(conn, KIND_PROTOCOL, now_ns)
                    return False
                self._check_done(conn, now_ns)
                return False
        return True

    # --- the loop (SlotPool.run) -------------------------------------------------------
    def _done(self) -> bool:
        return self._retired >= len(self._conns)

    def _before_wait(self, now_ns: int, wake_ns: int) -> int:
        if self._timers:
            self._fire_timers(now_ns)
            if self._timers:
                wake_ns = min(wake_ns, self._timers[0][0])
        return wake_ns

    def _fire_timers(self, now_ns: int) -> None:
        """Paced sends and receives whose time has come."""
        timers = self._timers
        conns = self._conns
        while timers and timers[0][0] <= now_ns:
            _, index, token_base, kind = heapq.heappop(timers)
            conn = conns[index]
            if conn.token_base != token_base or conn.state != OPEN:
                continue  # that connection has ended since
            if kind == _T_SEND:
                conn.sending = False
                self._pump_send(conn, now_ns)
            elif self._zero_byte:
                self._receiver.drain(conn, now_ns)
            else:
                self._arm_receive(conn, now_ns)

    # --- ending ------------------------------------------------------------------------
    @property
    def in_flight(self) -> int:
        """Transfers started and not finished (every open connection is one)."""
        return self.open_connections

    @property
    def transfers(self) -> int:
        """Transfers finished, over every slot."""
        return sum(conn.transfers for conn in self._conns)
