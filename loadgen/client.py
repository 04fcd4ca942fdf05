"""The closed-loop echo client: N connections, each sends a message, waits for its whole
echo, records the latency, and sends the next, until the run ends.

Hot-loop shape (DESIGN.md section 4): one ``wait()`` per iteration returns a capped batch of
completions; each is dispatched by its integer token to a preallocated connection; latencies
go into an ``array('q')`` and are turned into histograms only by the recorder's tick. No
Python object is created per request except the completion tuple itself.

Token layout: ``((connection_index << GENERATION_BITS) | generation) << OP_BITS | op``. The
generation changes whenever a connection is torn down and reopened, so a late completion of
an operation on the old socket (a cancelled receive, say) is recognised and ignored.

Receive modes:

* ``buffered``: a receive into the connection's own buffer (``receive_buffer`` bytes) stays
  posted for the whole life of the connection, re-posted the moment it completes.
* ``zero-byte``: a zero-byte receive stays posted instead; when it completes, the socket is
  drained with non-blocking receives into one scratch buffer shared by every connection,
  then the next zero-byte receive is posted. No per-connection receive buffer exists.

Errors end the connection (it cannot be trusted to stay in step with its echo stream), are
counted by kind, and the connection is reopened after a backoff that grows while connects
keep failing (so a refused target does not spin the CPU).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from loadgen.engine import Backend
from loadgen.engine.base import ErrorKind
from loadgen.protocols.echo import EchoCodec, Verdict
from loadgen.stats.recorder import Recorder

OP_BITS = 3
GENERATION_BITS = 16
_OP_MASK = (1 << OP_BITS) - 1
_GEN_MASK = (1 << GENERATION_BITS) - 1
OP_CONNECT, OP_SEND, OP_RECV, OP_RECV_ZERO = 0, 1, 2, 3

# Connection states.
_IDLE, _CONNECTING, _OPEN = 0, 1, 2

#: How often timeouts, reconnects and the recorder are looked at. 100 ms keeps the scan of
#: every connection cheap (10 per second) while timeouts stay accurate to a tenth of a second.
TICK_NS = 100_000_000
#: Connects in flight at once: more would overflow a 4,096 listen backlog into SYN retries
#: (a one-second stall that would be reported as the server's connect latency).
MAX_CONNECTS_IN_FLIGHT = 1024
#: Reconnect backoff after consecutive failed connects: 10 ms doubling to 1 s.
BACKOFF_MIN_NS = 10_000_000
BACKOFF_MAX_NS = 1_000_000_000
#: Completions handled per loop iteration (see base.DEFAULT_MAX_COMPLETIONS).
BATCH = 512
#: Scratch buffer that zero-byte receives drain into (shared by every connection).
SCRATCH_BYTES = 64 * 1024


@dataclass(frozen=True)
class ClientConfig:
    address: tuple[str, int]
    connections: int
    message_size: int
    recv_mode: str  # "buffered" | "zero-byte"
    receive_buffer: int
    connect_timeout_s: float
    request_timeout_s: float


class _Conn:
    __slots__ = (
        "codec",
        "connect_started_ns",
        "failures",
        "generation",
        "handle",
        "in_flight",
        "index",
        "recv_buf",
        "retry_at_ns",
        "sent",
        "sent_ns",
        "state",
        "token_base",
    )

    def __init__(self, index: int, codec: EchoCodec, recv_buf: bytearray | None) -> None:
        self.index = index
        self.codec = codec
        self.recv_buf = recv_buf
        self.handle = -1
        self.state = _IDLE
        self.generation = 0
        self.token_base = 0
        self.failures = 0
        self.retry_at_ns = 0
        self.connect_started_ns = 0
        self.sent_ns = 0
        self.sent = 0  # bytes of the current message handed to the kernel so far
        self.in_flight = False


class ClosedLoopClient:
    """Drives one engine until ``deadline_ns`` or until ``stop_requested`` is set."""

    def __init__(self, engine: Backend, config: ClientConfig, recorder: Recorder) -> None:
        self.engine = engine
        self.config = config
        self.recorder = recorder
        self.stop_requested = False
        self.loop_iterations = 0
        self.max_loop_lag_ns = 0
        buffered = config.recv_mode == "buffered"
        self._conns = [
            _Conn(
                i,
                EchoCodec(i, config.message_size),
                bytearray(config.receive_buffer) if buffered else None,
            )
            for i in range(config.connections)
        ]
        self._buffered = buffered
        self._scratch = bytearray(SCRATCH_BYTES)
        self._connecting = 0
        self._sending = True

    # --- connection life ---------------------------------------------------------------
    def _open(self, conn: _Conn, now_ns: int) -> None:
        conn.generation = (conn.generation + 1) & _GEN_MASK
        conn.token_base = ((conn.index << GENERATION_BITS) | conn.generation) << OP_BITS
        conn.handle = self.engine.tcp_socket()
        conn.state = _CONNECTING
        conn.connect_started_ns = now_ns
        self._connecting += 1
        self.engine.connect(conn.handle, self.config.address, conn.token_base | OP_CONNECT)

    def _fail(self, conn: _Conn, kind: str, now_ns: int) -> None:
        """Count an error, drop the socket (RST: no TIME_WAIT), schedule a reconnect."""
        self.recorder.error(kind)
        if conn.state == _CONNECTING:
            self._connecting -= 1
            conn.failures += 1
        else:
            conn.failures = 0
        self.engine.close(conn.handle, abort=True)
        conn.handle = -1
        conn.state = _IDLE
        conn.in_flight = False
        backoff = 0
        if conn.failures:
            backoff = min(BACKOFF_MIN_NS << (conn.failures - 1), BACKOFF_MAX_NS)
        conn.retry_at_ns = now_ns + backoff

    def _error(self, conn: _Conn, result: int, now_ns: int) -> None:
        self._fail(conn, self.engine.error_kind(-result).value, now_ns)

    def _send_next(self, conn: _Conn) -> None:
        message = conn.codec.next_request()
        conn.sent = 0
        conn.in_flight = True
        conn.sent_ns = time.monotonic_ns()
        self.engine.send(conn.handle, message, conn.token_base | OP_SEND)

    def _post_receive(self, conn: _Conn) -> None:
        if self._buffered:
            assert conn.recv_buf is not None
            self.engine.recv(conn.handle, conn.recv_buf, conn.token_base | OP_RECV)
        else:
            self.engine.recv_zero(conn.handle, conn.token_base | OP_RECV_ZERO)

    def _received(self, conn: _Conn, data: bytearray, n: int, now_ns: int) -> bool:
        """Feed echo bytes; False when the connection was failed."""
        if not conn.in_flight:
            self._fail(conn, ErrorKind.VERIFY.value, now_ns)  # bytes nobody asked for
            return False
        verdict = conn.codec.receive(data, n)
        self.recorder.bytes_received += n
        if verdict is Verdict.INCOMPLETE:
            return True
        if verdict is Verdict.MISMATCH:
            self._fail(conn, ErrorKind.VERIFY.value, now_ns)
            return False
        conn.in_flight = False
        self.recorder.pending_latency.append(now_ns - conn.sent_ns)
        if self._sending:
            self._send_next(conn)
        return True

    # --- the loop ----------------------------------------------------------------------
    def run(self, deadline_ns: int) -> None:
        engine = self.engine
        conns = self._conns
        wait = engine.wait
        engine_recv = engine.recv
        engine_send = engine.send
        monotonic_ns = time.monotonic_ns
        recorder = self.recorder
        record_latency = recorder.pending_latency.append  # flushed in place: stays valid
        complete, incomplete = Verdict.COMPLETE, Verdict.INCOMPLETE
        index_shift = OP_BITS + GENERATION_BITS
        next_tick = monotonic_ns()
        self._tick(next_tick)
        while not self.stop_requested:
            now = monotonic_ns()
            if now >= deadline_ns:
                break
            if now >= next_tick:
                lag = now - next_tick
                if lag > self.max_loop_lag_ns:
                    self.max_loop_lag_ns = lag
                self._tick(now)
                next_tick = now + TICK_NS
            timeout_s = max(0.0, (min(next_tick, deadline_ns) - now) / 1e9)
            completions = wait(timeout_s, BATCH)
            self.loop_iterations += 1
            if not completions:
                continue
            now = monotonic_ns()
            sent_bytes = received_bytes = 0
            for token, result, _flags in completions:
                conn = conns[token >> index_shift]
                if (token & ~_OP_MASK) != conn.token_base or conn.handle < 0:
                    continue  # a late completion from a socket already torn down
                op = token & _OP_MASK
                if op == OP_RECV:
                    # The common case, inline: a whole echo arrived; verify it, record it,
                    # post the same buffer again and send the next message.
                    if result > 0 and conn.in_flight:
                        buf = conn.recv_buf
                        assert buf is not None
                        verdict = conn.codec.receive(buf, result)
                        received_bytes += result
                        if verdict is complete:
                            record_latency(now - conn.sent_ns)
                            engine_recv(conn.handle, buf, token)
                            if self._sending:
                                message = conn.codec.next_request()
                                conn.sent = 0
                                conn.sent_ns = monotonic_ns()
                                engine_send(conn.handle, message, token - OP_RECV + OP_SEND)
                            else:
                                conn.in_flight = False
                        elif verdict is incomplete:
                            engine_recv(conn.handle, buf, token)
                        else:
                            self._fail(conn, ErrorKind.VERIFY.value, now)
                    elif result > 0:
                        self._fail(conn, ErrorKind.VERIFY.value, now)  # bytes nobody asked for
                    elif result == 0:
                        self._fail(conn, ErrorKind.EOF.value, now)
                    else:
                        self._error(conn, result, now)
                elif op == OP_SEND:
                    if result < 0:
                        self._error(conn, result, now)
                        continue
                    sent_bytes += result
                    conn.sent += result
                    message = conn.codec.message
                    if conn.sent < len(message):  # partial send: hand over the rest
                        engine_send(conn.handle, memoryview(message)[conn.sent :], token)
                elif op == OP_RECV_ZERO:
                    if result < 0:
                        self._error(conn, result, now)
                    elif self._drain(conn, now):
                        engine.recv_zero(conn.handle, token)
                else:  # OP_CONNECT
                    self._connected(conn, result, now)
            recorder.bytes_sent += sent_bytes
            recorder.bytes_received += received_bytes
        self.recorder.flush()

    def _connected(self, conn: _Conn, result: int, now_ns: int) -> None:
        if result < 0:
            self._error(conn, result, now_ns)
            return
        self._connecting -= 1
        conn.failures = 0
        conn.state = _OPEN
        self.recorder.pending_connect.append(now_ns - conn.connect_started_ns)
        self._post_receive(conn)
        if self._sending:
            self._send_next(conn)

    def _drain(self, conn: _Conn, now_ns: int) -> bool:
        """Read everything waiting after a zero-byte receive; False if the conn failed."""
        scratch = self._scratch
        recv_now = self.engine.recv_now
        while True:
            n = recv_now(conn.handle, scratch)
            if n > 0:
                if not self._received(conn, scratch, n, now_ns):
                    return False
                # The echo of a request sent during this drain can arrive within it.
                now_ns = time.monotonic_ns()
                continue
            if n == 0:
                self._fail(conn, ErrorKind.EOF.value, now_ns)
                return False
            if self.engine.would_block(-n):
                return True
            self._error(conn, n, now_ns)
            return False

    def _tick(self, now_ns: int) -> None:
        """Timeouts, reconnects, and the recorder's interval bookkeeping."""
        self.recorder.tick(now_ns)
        connect_timeout = int(self.config.connect_timeout_s * 1e9)
        request_timeout = int(self.config.request_timeout_s * 1e9)
        for conn in self._conns:
            state = conn.state
            if state == _OPEN:
                if conn.in_flight and now_ns - conn.sent_ns > request_timeout:
                    self._fail(conn, ErrorKind.TIMEOUT.value, now_ns)
            elif state == _CONNECTING:
                if now_ns - conn.connect_started_ns > connect_timeout:
                    self._fail(conn, ErrorKind.TIMEOUT.value, now_ns)
            elif (
                self._sending
                and conn.retry_at_ns <= now_ns
                and self._connecting < MAX_CONNECTS_IN_FLIGHT
            ):
                self._open(conn, now_ns)

    # --- ending ------------------------------------------------------------------------
    @property
    def open_connections(self) -> int:
        return sum(1 for conn in self._conns if conn.state == _OPEN)

    @property
    def in_flight(self) -> int:
        return sum(1 for conn in self._conns if conn.state == _OPEN and conn.in_flight)

    def close_all(self, grace_s: float = 1.0) -> None:
        """Close every socket and reap what the kernel still owes (bounded by ``grace_s``)."""
        self._sending = False
        for conn in self._conns:
            if conn.handle >= 0:
                self.engine.close(conn.handle)
                conn.handle = -1
                conn.state = _IDLE
        deadline = time.monotonic() + grace_s
        while self.engine.pending() and time.monotonic() < deadline:
            self.engine.wait(0.05, BATCH)
