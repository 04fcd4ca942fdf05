"""The request client: a pool of connections exchanging requests and responses with a target,
driven by one engine, in the closed or the open model.

* **Closed model**: each connection sends a request, waits for its whole response, records
  the latency, (thinks,) and sends the next, until the run ends. Phases may ramp the number
  of connections; ``requests_per_connection`` closes and reopens connections (churn);
  think time and idle phases come from ``loadgen.load.pacing``.
* **Open model**: requests fall due on a schedule whatever the target does
  (``loadgen.load.arrivals``); a due request goes out on a free connection, or waits for
  one. Each latency is recorded twice, the wrk2 way: from the request's *intended* send
  time (corrected: a stalled target delays every request due during the stall) and from
  its actual send (raw: service time only).

Every protocol is a sans-IO codec (``loadgen.protocols.base.Codec``): verified echo,
HTTP/1.1, Redis. An exchange is ``pipeline`` requests sent back to back (one for echo).
An HTTP request set or variables (``loadgen.load.request_set``) give each exchange its own
bytes and the request name of each response, for the per-name breakdown.

**One request path**: whatever the receive mode (``loadgen.load.receive``: buffered,
zero-byte, buffer-ring), received bytes go to ``_received``. The codec says how many
responses they completed; each is timed, one the codec judges a failure (an HTTP status
outside the expectation, a Redis error reply) is also counted as failed and as an error of
its kind, and a finished exchange leads to the next: sent at once in the plain closed loop
(no think time, churn or open model), otherwise through ``_after_response``.

Hot-loop shape: the pool's loop (``SlotPool.run``) does one ``wait()`` per iteration for a
capped batch of completions (an unbounded batch at 5,000 connections stalled the loop);
each is dispatched by its integer token (``loadgen.load.tokens``) to a preallocated
connection; latencies go into ``array('q')`` buffers and become histograms only in the
recorder's tick. The two completions of every exchange, a buffered receive with bytes and
a send, are handled inline in ``_handle`` (the receive by one call to ``_received``); the
rest go to ``_complete``. Counted in instructions per echo round trip, this costs what a
loop with the whole request path written inline did (within 1%).

Connection slots (token layout, reconnects with backoff, timeouts, ramps, connecting
before the start) come from ``loadgen.load.pool``. Errors end the connection (it cannot be
trusted to stay in step with its stream any more) and are counted by kind; the slot
reconnects.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from loadgen.config.schedule import ArrivalSchedule
from loadgen.engine import Backend
from loadgen.engine.base import Buffer, Completion, ErrorKind
from loadgen.load.arrivals import OpenDispatch
from loadgen.load.client_config import ClientConfig
from loadgen.load.pacing import Pacing
from loadgen.load.pool import OPEN, Slot, SlotPool
from loadgen.load.receive import Receiver, give_back
from loadgen.load.recorder import Recorder
from loadgen.load.tokens import (
    INDEX_SHIFT,
    OP_CONNECT,
    OP_MASK,
    OP_RECV,
    OP_RECV_RING,
    OP_RECV_ZERO,
    OP_SEND,
)
from loadgen.protocols.base import KIND_PROTOCOL, Codec, ProtocolError
from loadgen.protocols.echo import EchoCodec

if TYPE_CHECKING:  # annotations only (see client_config)
    from loadgen.load.request_set import ConnectionRequests

#: What a connection in a mode without its own receive buffer has as one.
_NO_BUFFER = bytearray()
#: What a close gives the codec: no bytes.
_CLOSED = b""
#: The clock of send times (bound once: the hot path reads it per exchange).
_clock_ns = time.perf_counter_ns


class _Conn(Slot):
    __slots__ = (
        "codec",
        "expect",
        "fixed",
        "in_flight",
        "intended_ns",
        "recv_buf",
        "request",
        "request_len",
        "responses",
        "sent",
        "sent_ns",
        "source",
    )

    def __init__(
        self,
        index: int,
        codec: Codec,
        fixed: Buffer | None,
        source: ConnectionRequests | None,
        recv_buf: Buffer,
    ) -> None:
        super().__init__(index)
        self.codec = codec
        #: What every exchange sends when that is always the same: the codec's fixed
        #: request (HTTP, RESP: the same buffer every time), repeated back to back for a
        #: ``pipeline`` > 1. None: the codec's ``next_request`` each time (echo).
        self.fixed = fixed
        #: A request set's requests (None: ``fixed`` or the codec's every time).
        self.source = source
        self.request: Buffer | bytes = _NO_BUFFER  # the exchange in flight: what it sends
        self.request_len = 0
        self.expect = 0  # responses still owed for the exchange in flight
        self.recv_buf = recv_buf  # buffered mode: this connection's receive buffer
        self.sent_ns = 0
        self.intended_ns = 0  # open model: when the schedule wanted this request sent
        self.sent = 0  # bytes of the current exchange handed to the kernel so far
        self.responses = 0  # on this socket (for requests_per_connection)
        self.in_flight = False


class LoadClient(SlotPool[_Conn]):
    """Drives one engine until ``deadline_ns`` or until ``stop_requested`` is set.

    ``arrivals`` (open model) is the schedule of intended send times, in ns from the run's
    start; without it the client runs the closed model.
    """

    def __init__(
        self,
        engine: Backend,
        config: ClientConfig,
        recorder: Recorder,
        arrivals: ArrivalSchedule | None = None,
    ) -> None:
        super().__init__(engine, recorder, config)
        if config.codec_factory is None and config.pipeline != 1:
            raise ValueError("echo sends one message at a time: pipeline must be 1")
        self.config = config
        self._receiver: Receiver[_Conn] = Receiver(
            engine, config, self._received_counted, self._eof, self._error
        )
        buffers = self._receiver.buffers
        self._conns = [
            self._make_conn(i, _NO_BUFFER if buffers is None else buffers[i])
            for i in range(config.connections)
        ]
        #: Hands a request to the connection: the engine's quiet send (no completion on
        #: success: the response proves it went out; its bytes are counted when handed
        #: over), or over TLS the TLS layer's (``loadgen.load.tls_clients``), which
        #: encrypts and then sends with completions.
        self._send: Callable[[int, Buffer | bytes, int], None] = engine.send_quiet
        self._quiet_sends = True
        self._request_timeout_ns = int(config.request_timeout_s * 1e9)
        self._pipeline = config.pipeline
        self._pacing: Pacing[_Conn] = Pacing(
            config.think_times, config.idle_windows, self._start_ns
        )
        self._open_model: OpenDispatch[_Conn] | None = (
            None if arrivals is None else OpenDispatch(arrivals, self._start_ns)
        )
        # The plain closed loop sends the next request as soon as a response is in;
        # everything else goes through ``_after_response``.
        self._plain_closed = (
            arrivals is None and not self._pacing.thinks and config.requests_per_connection is None
        )

    def _make_conn(self, index: int, recv_buf: Buffer) -> _Conn:
        config = self.config
        if config.codec_factory is None:
            codec: Codec = EchoCodec(index, config.message_size, config.message_sizes)
        else:
            codec = config.codec_factory(index)
        fixed: Buffer | None = None
        if config.codec_factory is not None:  # HTTP, RESP: a fixed request (Codec)
            fixed = codec.next_request()
            if config.pipeline > 1:  # repeated back to back
                fixed = bytearray(fixed) * config.pipeline
        requests = config.request_set
        source = None if requests is None else requests.for_connection(index)
        return _Conn(index, codec, fixed, source, recv_buf)

    # --- what the run reports ----------------------------------------------------------
    @property
    def waited_for_connection(self) -> int:
        """Open model: requests that were due while every connection was busy."""
        return 0 if self._open_model is None else self._open_model.waited_for_connection

    @property
    def unsent(self) -> int:
        """Open model: requests that were due but never sent before the run ended."""
        return 0 if self._open_model is None else self._open_model.unsent

    @property
    def ring_enobufs(self) -> int:
        """buffer-ring: receives that ended because the ring was empty (then re-armed)."""
        return self._receiver.ring_enobufs

    @property
    def in_flight(self) -> int:
        return sum(1 for conn in self._conns if conn.state == OPEN and conn.in_flight)

    # --- slot hooks --------------------------------------------------------------------
    def _on_open(self, conn: _Conn) -> None:
        conn.responses = 0
        conn.codec.reset()

    def _on_close(self, conn: _Conn) -> None:
        conn.in_flight = False

    def _fail(
        self,
        conn: _Conn,
        kind: str,
        now_ns: int,
        code: int | None = None,
        reason: str | None = None,
    ) -> None:
        # A request set: an exchange that ends in an error counts against the request in
        # flight (the first response still owed); a connect error belongs to none.
        if conn.expect > 0 and conn.in_flight and conn.source is not None:
            by_name = self.recorder.by_name
            if by_name:
                by_name[conn.source.names[self._pipeline - conn.expect]].errors[kind] += 1
        super()._fail(conn, kind, now_ns, code, reason)

    def _stalled(self, conn: _Conn, now_ns: int) -> bool:
        return conn.in_flight and now_ns - conn.sent_ns > self._request_timeout_ns

    def _tick(self, now_ns: int) -> None:
        super()._tick(now_ns)
        for conn in self._pacing.tick((now_ns - self._start_ns) / 1e9):
            self._resume(conn, now_ns)  # an idle phase ended

    def _hold(self) -> None:
        self._pacing.hold()

    def _release(self, now_ns: int) -> None:
        for conn in self._pacing.release():
            self._resume(conn, now_ns)

    def rebase(self, start_ns: int) -> None:
        super().rebase(start_ns)
        self._pacing.rebase(start_ns)
        if self._open_model is not None:
            self._open_model.rebase(start_ns)

    def _before_wait(self, now_ns: int, wake_ns: int) -> int:
        pacing = self._pacing
        if pacing.next_timer_ns is not None:
            conns = self._conns
            for index, token_base in pacing.thought(now_ns):
                conn = conns[index]
                if conn.token_base == token_base:
                    self._resume(conn, now_ns)
            next_timer_ns = pacing.next_timer_ns
            if next_timer_ns is not None:
                wake_ns = min(wake_ns, next_timer_ns)
        open_model = self._open_model
        if open_model is not None:
            open_model.dispatch(now_ns, self._send_due)
            if open_model.free or not open_model.waiting:
                wake_ns = min(wake_ns, open_model.next_due_ns)
        return wake_ns

    def _end(self, now_ns: int) -> None:
        if self._open_model is not None:
            self._open_model.finish(now_ns)

    # --- completions -------------------------------------------------------------------
    def _handle(self, completions: list[Completion], now_ns: int) -> None:
        """The hot loop: a buffered receive with bytes and a send completion inline."""
        conns = self._conns
        engine = self.engine
        engine_send = engine.send
        post_buffer = self._receiver.post_buffer
        sent_bytes = received_bytes = 0
        for token, result, flags in completions:
            conn = conns[token >> INDEX_SHIFT]
            if (token & ~OP_MASK) != conn.token_base or conn.handle < 0:
                give_back(engine, token, flags)  # a late completion of a torn-down socket
                continue
            op = token & OP_MASK
            if op == OP_RECV and result > 0:
                received_bytes += result
                buf = conn.recv_buf
                if self._received(conn, buf, result, now_ns):
                    post_buffer(conn.handle, buf, token)
            elif op == OP_SEND and result >= 0:
                if self._quiet_sends:
                    # Only a quiet send cut short completes (the connection broke mid-send;
                    # its receive reports how): it counted all its bytes when handed over.
                    sent_bytes += result - conn.request_len
                    conn.sent = result
                    continue
                sent_bytes += result
                conn.sent += result
                if conn.sent < conn.request_len:  # partial send: hand over the rest
                    rest = memoryview(conn.request)[conn.sent : conn.request_len]
                    engine_send(conn.handle, rest, token)
            else:
                self._complete(conn, token, result, flags, now_ns)
        recorder = self.recorder
        recorder.bytes_sent += sent_bytes
        recorder.bytes_received += received_bytes

    def _complete(self, conn: _Conn, token: int, result: int, flags: int, now_ns: int) -> None:
        """Any completion (``_handle`` writes the two common ones inline)."""
        op = token & OP_MASK
        if op == OP_CONNECT:
            self._on_connect(conn, result, now_ns)
        elif op == OP_RECV_RING:
            self._receiver.ring(conn, token, result, flags, now_ns)
        elif result < 0:
            self._error(conn, result, now_ns)
        elif op == OP_SEND:
            self._handle([(token, result, flags)], now_ns)
        elif op == OP_RECV_ZERO:
            self._receiver.drain(conn, now_ns)
        elif result == 0:
            self._eof(conn, now_ns)
        else:  # OP_RECV with bytes
            self._handle([(token, result, flags)], now_ns)

    def _on_connect(self, conn: _Conn, result: int, now_ns: int) -> None:
        if result < 0:
            self._error(conn, result, now_ns)
            return
        self._connected(conn, now_ns)
        self._receiver.post(conn)
        self._ready(conn, now_ns)

    # --- the request path --------------------------------------------------------------
    def _received(self, conn: _Conn, data: Buffer | bytes, n: int, now_ns: int) -> bool:
        """``n`` bytes arrived on ``conn`` (0: the server closed it): feed the codec, record
        the responses they complete, go on to the next exchange when this one is done.
        True while the same connection wants its receive posted again (False: it failed,
        or was closed or replaced meanwhile)."""
        if not conn.in_flight:
            self._unsolicited(conn, data, n, now_ns)
            return False
        codec = conn.codec
        try:
            done = codec.receive(data, n)
        except ProtocolError as exc:
            self._fail(conn, exc.kind, now_ns, reason=exc.message)
            return False
        if not done:
            return True
        expect = conn.expect - done
        if expect < 0:
            self._fail(
                conn,
                KIND_PROTOCOL,
                now_ns,
                reason=f"{-expect} response(s) more than were asked for",
            )
            return False
        conn.expect = expect
        if not codec.failures and conn.source is None:  # successes, no names
            recorder = self.recorder
            if done == 1:
                recorder.pending_latency.append(now_ns - conn.sent_ns)
                if self._open_model is not None:
                    recorder.pending_corrected.append(now_ns - conn.intended_ns)
            else:  # a pipelined batch: one latency, ``done`` times
                recorder.pending_repeated.append(now_ns - conn.sent_ns)
                recorder.pending_repeats.append(done)
                if self._open_model is not None:
                    recorder.pending_corrected_repeated.append(now_ns - conn.intended_ns)
                    recorder.pending_corrected_repeats.append(done)
        else:
            self._record_several(conn, done, now_ns)
        if expect:
            return True  # more responses owed
        if codec.closing or not n:  # the server ends the connection after this response
            conn.in_flight = False
            self._close(conn, abort=False)
            self._open(conn, now_ns)
            return False
        if (
            self._plain_closed
            and conn.index < self._desired
            and self._sending
            and not self._pacing.paused
        ):
            # The plain closed loop: the next request at once (``_send_next``, inline).
            source = conn.source
            message = (
                source.exchange() if source is not None else (conn.fixed or codec.next_request())
            )
            conn.request = message
            conn.request_len = len(message)
            conn.expect = self._pipeline
            conn.sent = 0
            conn.sent_ns = _clock_ns()
            self._send(conn.handle, message, conn.token_base | OP_SEND)
            if self._quiet_sends:
                conn.sent = conn.request_len
                self.recorder.bytes_sent += conn.request_len
            return True
        token_base = conn.token_base
        self._after_response(conn, now_ns)
        return conn.token_base == token_base and conn.handle >= 0

    def _record_several(self, conn: _Conn, done: int, now_ns: int) -> None:
        """``done`` responses completed on ``conn`` (``conn.expect`` already counts them,
        and all answer requests sent at ``conn.sent_ns``), beyond the common case of
        successes without names: some failed by status (timed too, and counted as failed
        and as an error of their kind), or a request set's (each also under its request's
        name)."""
        recorder = self.recorder
        latency = now_ns - conn.sent_ns
        corrected = now_ns - conn.intended_ns if self._open_model is not None else None
        recorder.pending_repeated.append(latency)
        recorder.pending_repeats.append(done)
        if corrected is not None:
            recorder.pending_corrected_repeated.append(corrected)
            recorder.pending_corrected_repeats.append(done)
        failures = conn.codec.failures
        for _, kind in failures:
            recorder.failure(kind)
        by_name = recorder.by_name
        if conn.source is not None and by_name:
            names = conn.source.names
            first = self._pipeline - conn.expect - done  # this chunk's first in the exchange
            for position in range(first, first + done):
                named = by_name[names[position]]
                named.pending_latency.append(latency)
                if corrected is not None:
                    named.pending_corrected.append(corrected)
            for index, kind in failures:
                named = by_name[names[first + index]]
                named.failed += 1
                named.errors[kind] += 1
        failures.clear()

    def _received_counted(self, conn: _Conn, data: Buffer | bytes, n: int, now_ns: int) -> bool:
        """``_received`` for the receive mechanics (zero-byte drains, ring receives); the
        hot loop counts the bytes of buffered receives itself, per batch."""
        self.recorder.bytes_received += n
        return self._received(conn, data, n, now_ns)

    def _unsolicited(self, conn: _Conn, data: Buffer | bytes, n: int, now_ns: int) -> None:
        """Bytes while no request is in flight: the codec names the error (echo: ``verify``);
        a response nobody asked for is a ``protocol`` error."""
        try:
            conn.codec.receive(data, n)
        except ProtocolError as exc:
            self._fail(conn, exc.kind, now_ns, reason=exc.message)
            return
        self._fail(conn, KIND_PROTOCOL, now_ns, reason="a response while no request was in flight")

    def _eof(self, conn: _Conn, now_ns: int) -> None:
        """The server closed the connection. The codec is told: a close may end a response
        (an HTTP body without a length) or break one (``eof``; echo: always). An idle
        keep-alive connection closed by the server is just reopened. A reset that only
        showed as the end of the stream (its error taken by a send first) is counted as the
        reset it was."""
        code = self.engine.end_error(conn.handle)
        if code:
            self._error(conn, -code, now_ns)
            return
        if not conn.in_flight:
            try:
                conn.codec.receive(_CLOSED, 0)
            except ProtocolError as exc:
                self._fail(conn, exc.kind, now_ns, reason=exc.message)
                return
            self._close(conn, abort=False)
            self._open(conn, now_ns)
            return
        token_base = conn.token_base
        self._received(conn, _CLOSED, 0, now_ns)
        if conn.token_base == token_base and conn.handle >= 0:
            self._fail(conn, ErrorKind.EOF.value, now_ns)  # responses still owed

    def _send_next(self, conn: _Conn, intended_ns: int = 0) -> None:
        source = conn.source
        message = (
            source.exchange() if source is not None else (conn.fixed or conn.codec.next_request())
        )
        conn.request = message
        conn.request_len = len(message)
        conn.expect = self._pipeline
        conn.sent = 0
        conn.in_flight = True
        conn.sent_ns = sent_ns = _clock_ns()
        if intended_ns:
            conn.intended_ns = intended_ns
            self.recorder.pending_schedule_lag.append(sent_ns - intended_ns)
        self._send(conn.handle, message, conn.token_base | OP_SEND)
        if self._quiet_sends:
            conn.sent = conn.request_len
            self.recorder.bytes_sent += conn.request_len

    def _send_due(self, conn: _Conn, intended_ns: int) -> bool:
        """Open model: a due request on a connection that was free (False: not any more)."""
        if conn.state != OPEN or conn.in_flight:
            return False  # failed or retired since it was freed
        self._send_next(conn, intended_ns)
        return True

    def _after_response(self, conn: _Conn, now_ns: int) -> None:
        """An exchange completed on ``conn``, outside the plain closed loop."""
        conn.in_flight = False
        conn.responses += 1
        rpc = self.config.requests_per_connection
        if rpc is not None and conn.responses >= rpc and self._sending:
            self._close(conn, abort=False)  # churn: a fresh connection for the next request
            self._open(conn, now_ns)
        elif self._pacing.thinks and self._sending:
            if not self._pacing.think(conn.index, conn.token_base, now_ns):
                self._ready(conn, now_ns)  # this phase has no think time
        else:
            self._ready(conn, now_ns)

    def _ready(self, conn: _Conn, now_ns: int) -> None:
        """The connection may send: now (closed), or when a request is due (open)."""
        if not self._sending:
            return
        if conn.index >= self._desired:
            self._close(conn, abort=False)  # a closed-model ramp down retires it
        elif self._pacing.paused:
            self._pacing.park(conn)  # an idle phase: it sends when the phase ends
        elif self._open_model is not None:
            self._open_model.free.append(conn)
        else:
            self._send_next(conn)

    def _resume(self, conn: _Conn, now_ns: int) -> None:
        """A parked or thinking connection may go on, if it is still open and idle (it may
        have failed, or been parked twice, meanwhile)."""
        if conn.state == OPEN and not conn.in_flight:
            self._ready(conn, now_ns)
