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

Hot-loop shape as in ``client.py``: one ``wait()`` per iteration, capped batches, integer
tokens (the same layout: index, generation, op), preallocated buffers, every payload chunk
sent from one shared pattern buffer and verified with one ``memcmp``. Receive modes:
``buffered`` keeps a receive into the connection's buffer posted (``register_buffers``: in
buffers registered with the kernel, copied out before verifying); ``zero-byte`` keeps a
zero-byte receive posted and drains into one scratch buffer shared by every connection (at
most ``DRAIN_READS`` reads per completion, so one fast stream cannot starve the others);
``buffer-ring`` (io_uring) keeps a multishot receive armed on the engine's shared ring of
buffers, or, when paced, posts one-shot ring receives of at most a segment at their due
times (a multishot receive would read as fast as data comes, defeating the pacing).

Connected before the start (``SlotPool.preconnect``): a slot's receive is armed when it
connects, but its header (and so its transfer, its time and its pacing) waits for the start
of ``run``.

Errors end the connection and are counted by kind: ``verify`` (payload that differs from
the pattern, or a trailer saying the server found a mismatch), ``eof`` (the server closed
early), ``protocol`` (a malformed trailer, bytes after it, or a server that counted
different bytes), ``timeout`` (no progress for ``timeouts.request``), and the engine's kinds
(``reset``, ``refused``, ...). The slot reconnects after the same backoff as ``client.py``.
"""

from __future__ import annotations

import errno
import heapq
import time
from typing import TYPE_CHECKING, cast

from loadgen.config.receive import ReceiveMode
from loadgen.engine import Backend
from loadgen.engine.base import RING_BID_SHIFT, RING_BUFFER, RING_MORE, Buffer, ErrorKind
from loadgen.load.pool import (
    BATCH,
    GENERATION_BITS,
    MAX_CONNECTS_IN_FLIGHT,
    OP_BITS,
    OP_CONNECT,
    OP_MASK,
    OP_RECV,
    OP_RECV_RING,
    OP_RECV_ZERO,
    OP_SEND,
    OPEN,
    RETIRED,
    TICK_NS,
    Slot,
    SlotPool,
)
from loadgen.load.recorder import Recorder
from loadgen.load.requests import ClientConfig, prepare_receive_buffers
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
    from loadgen.config.scenario import StreamSpec

# Timer kinds: a paced send or a paced receive is due.
_T_SEND, _T_RECV = 0, 1
#: Zero-byte mode: reads per drain before the zero-byte receive is posted again (64 KiB
#: reads: 1 MiB), so a stream that never runs dry cannot hold the loop.
DRAIN_READS = 16


class _Conn(Slot):
    __slots__ = (
        "head_left",
        "progress_ns",
        "received",
        "recv_buf",
        "recv_view",
        "send_end",
        "sending",
        "sent",
        "started_ns",
        "trailer",
        "trailer_got",
        "transfers",
    )

    def __init__(self, index: int, recv_buf: Buffer | None, recv_view: Buffer | None) -> None:
        super().__init__(index)
        self.recv_buf = recv_buf  # buffered mode: this connection's receive buffer
        self.recv_view = recv_view  # what is posted: the buffer, or its first segment (paced)
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
        super().__init__(
            engine,
            recorder,
            config.addresses,
            config.sources,
            config.connect_timeout_s,
            config.connection_phases,
            config.connections,
            close_rst=config.close_rst,
        )
        self.config = config
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
        self._buffered = config.recv_mode == ReceiveMode.BUFFERED
        self._ring = config.recv_mode == ReceiveMode.BUFFER_RING
        #: buffer-ring: receives that ended because the ring was empty (then re-armed).
        self.ring_enobufs = 0
        read_bytes = config.receive_buffer
        if self._ns_per_byte:
            read_bytes = min(read_bytes, spec.segment)  # one segment per due time
        self._read_bytes = read_bytes
        self._pattern = PayloadPattern(max(spec.segment, read_bytes))
        buffers, self._recv = prepare_receive_buffers(engine, config)
        #: Registered buffers are engine memory (memoryviews): copied out to verify.
        self._copy_out = config.register_buffers and buffers is not None
        for index in range(config.connections):
            if buffers is not None:
                buf = buffers[index]
                view: Buffer = buf if read_bytes == len(buf) else memoryview(buf)[:read_bytes]
                self._conns.append(_Conn(index, buf, view))
            else:
                self._conns.append(_Conn(index, None, None))
        self._scratch = bytearray(config.receive_buffer)
        self._scratch_view: Buffer = (
            self._scratch
            if read_bytes == len(self._scratch)
            else memoryview(self._scratch)[:read_bytes]
        )
        self._retired = 0
        self._timers: list[tuple[int, int, int, int]] = []  # (due, index, token_base, kind)
        self._parked: list[_Conn] = []  # connected before the start: the header waits

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
        conn.started_ns = conn.progress_ns = now_ns
        conn.sent = conn.send_end = conn.received = conn.trailer_got = 0
        conn.head_left = HEADER_BYTES
        conn.sending = True  # the header's send (held before the start: nothing else goes)
        if self._held:
            self._parked.append(conn)
        else:
            self.engine.send(conn.handle, self._header_bytes, conn.token_base | OP_SEND)
        self._arm_receive(conn, now_ns)

    # --- before the start (SlotPool.preconnect) ----------------------------------------
    def _release(self, now_ns: int) -> None:
        """The start: each parked connection's transfer begins (its time, its pacing)."""
        parked, self._parked = self._parked, []
        for conn in parked:
            if conn.state == OPEN:
                conn.started_ns = conn.progress_ns = now_ns
                self.engine.send(conn.handle, self._header_bytes, conn.token_base | OP_SEND)

    def _complete(self, conn: _Conn, token: int, result: int, flags: int, now_ns: int) -> None:
        op = token & OP_MASK
        if op == OP_CONNECT:
            self._on_connect(conn, result, now_ns)
        elif op == OP_RECV_RING:
            self._ring_completion(conn, result, flags, now_ns)
        elif result < 0:
            self._error(conn, result, now_ns)
        elif op == OP_SEND:
            self._sent(conn, result, now_ns)
        elif op == OP_RECV_ZERO:
            self._drain(conn, now_ns)
        elif result == 0:
            self._fail(conn, ErrorKind.EOF.value, now_ns)
        else:  # OP_RECV with bytes, as in run
            buf = conn.recv_buf
            assert buf is not None
            data = bytes(buf[:result]) if self._copy_out else cast("bytearray", buf)
            if self._consume(conn, data, result, now_ns):
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
        self.engine.send(conn.handle, self._pattern.view(sent, n), conn.token_base | OP_SEND)

    def _sent(self, conn: _Conn, result: int, now_ns: int) -> None:
        conn.sending = False
        conn.progress_ns = now_ns
        if conn.head_left:
            conn.head_left -= result
            if conn.head_left:
                conn.sending = True
                rest = memoryview(self._header_bytes)[HEADER_BYTES - conn.head_left :]
                self.engine.send(conn.handle, rest, conn.token_base | OP_SEND)
                return
        else:
            conn.sent += result
            self.recorder.bytes_sent += result
            if conn.sent < conn.send_end:  # partial send: the rest of this chunk, now
                conn.sending = True
                view = self._pattern.view(conn.sent, conn.send_end - conn.sent)
                self.engine.send(conn.handle, view, conn.token_base | OP_SEND)
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
        if self._buffered:
            if self._receive_due(conn, now_ns):
                assert conn.recv_view is not None
                self._recv(conn.handle, conn.recv_view, conn.token_base | OP_RECV)
        elif self._ring:
            token = conn.token_base | OP_RECV_RING
            if not self._ns_per_byte:
                self.engine.recv_ring(conn.handle, token)
            elif self._receive_due(conn, now_ns):
                self.engine.recv_ring(
                    conn.handle, token, multishot=False, max_bytes=self._read_bytes
                )
        else:
            self.engine.recv_zero(conn.handle, conn.token_base | OP_RECV_ZERO)

    def _ring_completion(self, conn: _Conn, result: int, flags: int, now_ns: int) -> None:
        """buffer-ring: bytes in a ring buffer (copied out, the buffer given back at once),
        or the end of the receive (armed again unless nothing more is to be received)."""
        engine = self.engine
        if result > 0:
            bid = flags >> RING_BID_SHIFT
            data = engine.ring_bytes(bid, result)
            engine.release_ring_buffer(bid)
            if self._consume(conn, data, result, now_ns) and not flags & RING_MORE:
                self._arm_receive(conn, now_ns)
        elif conn.trailer_got == TRAILER_BYTES:
            # The trailer is in and the transfer waits for its last send: a multishot
            # receive still armed may see the server's FIN; nothing more is expected.
            return
        elif result == -errno.ENOBUFS:
            self.ring_enobufs += 1  # the ring ran dry; the data waits in the socket
            self._arm_receive(conn, now_ns)
        elif result == 0:
            self._fail(conn, ErrorKind.EOF.value, now_ns)
        else:
            self._error(conn, result, now_ns)

    def _consume(self, conn: _Conn, buf: bytearray | bytes, n: int, now_ns: int) -> bool:
        """Take ``n`` received bytes from ``buf``: payload, then trailer. False when nothing
        more is to be received: the connection failed, or the trailer is in (the transfer
        finishes here or when its last send completes; the server's FIN is not awaited)."""
        conn.progress_ns = now_ns
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

    def _drain(self, conn: _Conn, now_ns: int) -> None:
        """Zero-byte mode: read what is waiting (paced, bounded), then re-arm."""
        scratch = self._scratch
        view = self._scratch_view
        recv_now = self.engine.recv_now
        for _ in range(DRAIN_READS):
            if not self._receive_due(conn, now_ns):
                return  # the timer drains on
            n = recv_now(conn.handle, view)
            if n > 0:
                if not self._consume(conn, scratch, n, now_ns):
                    return
                now_ns = time.perf_counter_ns()
            elif n == 0:
                self._fail(conn, ErrorKind.EOF.value, now_ns)
                return
            elif self.engine.would_block(-n):
                break
            else:
                self._error(conn, n, now_ns)
                return
        self.engine.recv_zero(conn.handle, conn.token_base | OP_RECV_ZERO)

    # --- the loop ----------------------------------------------------------------------
    def run(self, deadline_ns: int) -> None:
        engine = self.engine
        conns = self._conns
        wait = engine.wait
        perf_counter_ns = time.perf_counter_ns
        index_shift = OP_BITS + GENERATION_BITS
        timers = self._timers
        everyone = len(conns)
        next_tick = perf_counter_ns()
        self._begin(next_tick)
        self._tick(next_tick)
        while not self.stop_requested and self._retired < everyone:
            now = perf_counter_ns()
            if now >= deadline_ns:
                break
            if now >= next_tick:
                lag = now - next_tick
                if lag > self.max_loop_lag_ns:
                    self.max_loop_lag_ns = lag
                self._tick(now)
                next_tick = now + TICK_NS
            wake_ns = min(next_tick, deadline_ns)
            if timers:
                self._fire_timers(now)
                if timers:
                    wake_ns = min(wake_ns, timers[0][0])
            completions = wait(max(0.0, (wake_ns - now) / 1e9), BATCH)
            self.loop_iterations += 1
            if not completions:
                continue
            now = perf_counter_ns()
            for token, result, flags in completions:
                conn = conns[token >> index_shift]
                if (token & ~OP_MASK) != conn.token_base or conn.handle < 0:
                    # A late completion from a socket already torn down; a ring buffer it
                    # was lent still goes back.
                    if flags & RING_BUFFER and token & OP_MASK == OP_RECV_RING:
                        engine.release_ring_buffer(flags >> RING_BID_SHIFT)
                    continue
                op = token & OP_MASK
                if op == OP_RECV:
                    if result > 0:
                        buf = conn.recv_buf
                        assert buf is not None
                        # A plain buffer is a bytearray; registered ones are views.
                        data = bytes(buf[:result]) if self._copy_out else cast("bytearray", buf)
                        if self._consume(conn, data, result, now):
                            self._arm_receive(conn, now)
                    elif result == 0:
                        self._fail(conn, ErrorKind.EOF.value, now)
                    else:
                        self._error(conn, result, now)
                elif op == OP_SEND:
                    if result < 0:
                        self._error(conn, result, now)
                    else:
                        self._sent(conn, result, now)
                elif op == OP_RECV_ZERO:
                    if result < 0:
                        self._error(conn, result, now)
                    else:
                        self._drain(conn, now)
                elif op == OP_RECV_RING:
                    self._ring_completion(conn, result, flags, now)
                else:  # OP_CONNECT
                    self._on_connect(conn, result, now)
        self.recorder.flush()

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
            elif self._buffered or self._ring:
                self._arm_receive(conn, now_ns)
            else:
                self._drain(conn, now_ns)

    # --- ending ------------------------------------------------------------------------
    @property
    def in_flight(self) -> int:
        """Transfers started and not finished (every open connection is one)."""
        return self.open_connections

    @property
    def transfers(self) -> int:
        """Transfers finished, over every slot."""
        return sum(conn.transfers for conn in self._conns)
