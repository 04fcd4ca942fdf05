"""The load client: a pool of connections driven by one engine, in the closed or open model.

* **Closed model**: each connection sends a message, waits for its whole echo, records the
  latency, (thinks,) and sends the next, until the run ends. Phases may ramp the number of
  connections; ``requests_per_connection`` closes and reopens connections (churn).
* **Open model**: requests are due on a schedule (``schedule.arrival_offsets_ns``) whatever
  the target does. A due request goes out on a free connection; when none is free it waits
  for one (counted in ``waited_for_connection``). Each latency is recorded twice, the wrk2
  way: from the request's *intended* send time (corrected: a stalled target delays every
  request due during the stall) and from its actual send (raw: service time only).

Hot-loop shape (what measured well in one Python thread: of a loopback round trip's ~6 µs
the kernel takes ~5, so Python's ~1 µs is what the client controls): one ``wait()`` per
iteration returns a capped batch of completions (an unbounded batch at 5,000 connections
stalled the loop); each is dispatched by its integer token to a preallocated connection;
latencies go into ``array('q')`` buffers and become histograms only in the recorder's
tick. The common closed-model path (a whole echo arrived: verify, record, re-post the
buffer, send the next) is written inline in ``run``.

Idle phases (closed model, ``idle_windows``): connections open and post their receive but
send nothing until the phase ends (checked each tick): the receive-mode study measures the
memory of idle connections this way, then of the same connections under traffic.

Connected before the start (``SlotPool.preconnect``): the slots wait parked, as in an idle
phase, with their receive posted; ``run`` lets them go at its start (closed model: they
send at once; open model: they are free for the first due request), unless the run starts
with an idle phase, which then holds them as usual.

Connection slots (token layout, reconnects with backoff, timeouts, ramps) come from
``loadgen.load.pool``; protocols other than echo come in as sans-IO codecs
(``loadgen.protocols.base.Codec``: HTTP/1.1, Redis), with ``pipeline`` requests per exchange.
Every whole response is timed; one the codec judges a failure (an HTTP status outside the
expectation, a Redis error reply) is also counted as failed and as an error of its kind.
An HTTP request set or variables (``loadgen.load.request_set``) give each exchange its own
bytes and the request name of each response, for the per-name breakdown.

Receive modes:

* ``buffered``: a receive into the connection's own buffer (``receive_buffer`` bytes) stays
  posted for the whole life of the connection, re-posted the moment it completes.
* ``zero-byte``: a zero-byte receive stays posted instead; when it completes, the socket is
  drained with non-blocking receives into one scratch buffer shared by every connection,
  then the next zero-byte receive is posted. No per-connection receive buffer exists.
* ``buffer-ring`` (io_uring): one multishot receive stays armed per connection and takes
  buffers from a ring of ``ring_buffers`` buffers of ``receive_buffer`` bytes shared by
  every connection (``engine.base``). Each completion's bytes are copied out and the buffer
  given back at once; a receive that ends (``-ENOBUFS`` when the ring ran dry: counted in
  ``ring_enobufs``) is armed again.
* ``register_buffers`` (with ``buffered``, io_uring): the per-connection buffers are one
  region registered with the kernel (pinned: VmPin) and receives use them by index.

Errors end the connection (it cannot be trusted to stay in step with its stream any more)
and are counted by kind; the slot reconnects.
"""

from __future__ import annotations

import errno
import heapq
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from loadgen.config.receive import ReceiveMode
from loadgen.engine import Backend
from loadgen.engine.base import RING_BID_SHIFT, RING_BUFFER, RING_MORE, Buffer, ErrorKind
from loadgen.load.pool import (
    BATCH,
    GENERATION_BITS,
    OP_BITS,
    OP_CONNECT,
    OP_MASK,
    OP_RECV,
    OP_RECV_RING,
    OP_RECV_ZERO,
    OP_SEND,
    OPEN,
    TICK_NS,
    Slot,
    SlotPool,
)
from loadgen.load.recorder import Recorder
from loadgen.load.request_set import ConnectionRequests, RequestSet
from loadgen.protocols.base import KIND_PROTOCOL, Codec, ProtocolError, Response
from loadgen.protocols.echo import EchoCodec, Verdict

#: Scratch buffer that zero-byte receives drain into (shared by every connection).
SCRATCH_BYTES = 64 * 1024


@dataclass(frozen=True)
class ClientConfig:
    addresses: Sequence[tuple[str, int]]  # connection i goes to addresses[i % len]
    connections: int  # the pool: the most connections any phase asks for
    message_size: int  # echo: the largest message
    recv_mode: ReceiveMode
    receive_buffer: int  # buffered: per connection; buffer-ring: per ring buffer
    connect_timeout_s: float
    request_timeout_s: float
    #: Closed model: (duration_s, connections at start, at end) per phase; empty = constant.
    connection_phases: Sequence[tuple[float, int, int]] = ()
    #: (end_s, think_s) per phase, in order (``LoadPlan.think_times``): after a response a
    #: connection waits the think time of the phase the response came in; the last holds
    #: past its end. Empty: no think time.
    think_times: Sequence[tuple[float, float]] = ()
    #: Closed model: (start_s, end_s) stretches of idle phases, in which connections open
    #: (and keep their receive posted) but send nothing; they start when the stretch ends.
    idle_windows: Sequence[tuple[float, float]] = ()
    requests_per_connection: int | None = None
    sources: Sequence[str] = field(default_factory=tuple)  # local addresses, spread like targets
    #: Request/response protocol: a codec per connection (None: verified echo).
    codec_factory: Callable[[int], Codec] | None = None
    pipeline: int = 1  # requests sent back to back per exchange (not for echo)
    message_sizes: Callable[[], int] | None = None  # echo: draws a size per request
    ring_buffers: int = 256  # buffer-ring: buffers in the ring (a power of two)
    register_buffers: bool = False  # buffered: register the buffers with the kernel
    close_rst: bool = False  # close: rst: every close an abort (no TIME_WAIT)
    #: HTTP request sets and variables: what each connection sends per exchange (None:
    #: the codec's one fixed request).
    request_set: RequestSet | None = None


def ring_index_shift() -> int:
    """``token >> ring_index_shift()`` is the connection (slot) index of a token."""
    return OP_BITS + GENERATION_BITS


def prepare_receive_buffers(
    engine: Backend, config: ClientConfig
) -> tuple[list[Buffer] | None, Callable[[int, Buffer, int], None]]:
    """Per-connection receive buffers (None when the mode has none) and the function that
    posts a buffered receive ``(handle, buffer, token)``, for the receive mode in
    ``config``: plain ``engine.recv``, or ``recv_fixed`` into registered buffers, or a ring
    set up for ``buffer-ring``."""
    if config.recv_mode == ReceiveMode.BUFFER_RING:
        engine.setup_buffer_ring(config.ring_buffers, config.receive_buffer)
        return None, engine.recv
    if config.recv_mode != ReceiveMode.BUFFERED:
        return None, engine.recv
    if not config.register_buffers:
        return [bytearray(config.receive_buffer) for _ in range(config.connections)], engine.recv
    views = engine.register_buffers(config.connections, config.receive_buffer)
    recv_fixed = engine.recv_fixed
    shift = ring_index_shift()

    def recv_registered(handle: int, buf: Buffer, token: int) -> None:
        recv_fixed(handle, token >> shift, token)  # buffer i belongs to slot i

    return list(views), recv_registered


class _Conn(Slot):
    __slots__ = (
        "codec",
        "expect",
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
        codec: Any,
        request: bytes | bytearray,
        recv_buf: Buffer | None,
        source: ConnectionRequests | None = None,
    ) -> None:
        super().__init__(index)
        self.codec = codec  # EchoCodec for echo, else a protocols.base.Codec
        self.request = request  # what goes out per exchange (echo: the codec's message)
        self.source = source  # a request set's requests (None: ``request`` every time)
        self.request_len = len(request)  # bytes of it the exchange in flight sends
        self.expect = 0  # responses still owed for the request in flight (not echo)
        self.recv_buf = recv_buf
        self.sent_ns = 0
        self.intended_ns = 0  # open model: when the schedule wanted this request sent
        self.sent = 0  # bytes of the current message handed to the kernel so far
        self.responses = 0  # on this socket (for requests_per_connection)
        self.in_flight = False


class LoadClient(SlotPool[_Conn]):
    """Drives one engine until ``deadline_ns`` or until ``stop_requested`` is set.

    ``arrivals`` (open model) yields intended send times in ns from ``start_ns``; without it
    the client runs the closed model.
    """

    def __init__(
        self,
        engine: Backend,
        config: ClientConfig,
        recorder: Recorder,
        arrivals: Iterator[int] | None = None,
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
        #: Open model: requests that were due while every connection was busy.
        self.waited_for_connection = 0
        #: buffer-ring: receives that ended because the ring was empty (then re-armed).
        self.ring_enobufs = 0
        self._echo = config.codec_factory is None
        buffers, self._recv = prepare_receive_buffers(engine, config)
        self._conns = [
            self._make_conn(i, None if buffers is None else buffers[i])
            for i in range(config.connections)
        ]
        self._buffered = config.recv_mode == ReceiveMode.BUFFERED
        self._ring = config.recv_mode == ReceiveMode.BUFFER_RING
        self._scratch = bytearray(SCRATCH_BYTES)
        self._request_timeout_ns = int(config.request_timeout_s * 1e9)
        # Think time per phase: (end_ns from the start, think_ns); the current phase's end
        # as an absolute time, so a response costs one comparison (``_think_at``).
        self._think_phases = [
            (int(end * 1e9), int(think * 1e9)) for end, think in config.think_times
        ]
        self._thinks = bool(self._think_phases)
        self._think_ns = 0
        self._think_until_ns = 0  # before the first response: look the phase up
        self._timers: list[tuple[int, int, int]] = []  # (due_ns, conn index, token_base)
        # Open model state.
        self._arrivals = arrivals
        self._next_arrival_ns = self._pull_arrival()
        self._due: deque[int] = deque()  # intended send times waiting for a free connection
        self._due_counted = 0  # how many of ``_due`` were already counted as waiting
        self._free: list[_Conn] = []
        # The inline fast path covers the plain closed loop; everything else goes through
        # ``_after_response``.
        self._plain_closed = (
            arrivals is None and not self._thinks and config.requests_per_connection is None
        )
        # Idle phases: connections that became ready while idle wait here for its end.
        self._idle_windows = tuple(config.idle_windows)
        self._paused = self._idle_at(0.0)
        self._parked: list[_Conn] = []

    def _make_conn(self, index: int, recv_buf: Buffer | None) -> _Conn:
        factory = self.config.codec_factory
        if factory is None:
            echo = EchoCodec(index, self.config.message_size)
            return _Conn(index, echo, echo.message, recv_buf)
        codec = factory(index)
        request = bytearray(codec.request_bytes() * self.config.pipeline)
        requests = self.config.request_set
        source = None if requests is None else requests.for_connection(index)
        return _Conn(index, codec, request, recv_buf, source)

    # --- slot hooks --------------------------------------------------------------------
    def _on_open(self, conn: _Conn) -> None:
        conn.responses = 0
        if not self._echo:
            conn.codec.reset()

    def _on_close(self, conn: _Conn) -> None:
        conn.in_flight = False

    def _fail(self, conn: _Conn, kind: str, now_ns: int, code: int | None = None) -> None:
        # A request set: an exchange that ends in an error counts against the request in
        # flight (the first response still owed); a connect error belongs to none.
        if conn.expect > 0 and conn.in_flight and conn.source is not None:
            by_name = self.recorder.by_name
            if by_name:
                by_name[conn.source.names[self.config.pipeline - conn.expect]].errors[kind] += 1
        super()._fail(conn, kind, now_ns, code)

    def _stalled(self, conn: _Conn, now_ns: int) -> bool:
        return conn.in_flight and now_ns - conn.sent_ns > self._request_timeout_ns

    def _idle_at(self, elapsed_s: float) -> bool:
        return any(start <= elapsed_s < end for start, end in self._idle_windows)

    def _tick(self, now_ns: int) -> None:
        super()._tick(now_ns)
        if not self._idle_windows:
            return
        paused = self._idle_at((now_ns - self._start_ns) / 1e9)
        if self._paused and not paused:  # an idle phase ended: the parked connections start
            self._paused = False
            parked, self._parked = self._parked, []
            for conn in parked:
                if conn.state == OPEN and not conn.in_flight:  # (parked twice: sent once)
                    self._ready(conn, now_ns)
        self._paused = paused

    # --- before the start (SlotPool.preconnect) ----------------------------------------
    def _hold(self) -> None:
        self._paused = True  # a slot that connects parks, as in an idle phase

    def _release(self, now_ns: int) -> None:
        self._paused = self._idle_at(0.0)
        if self._paused:
            return  # the run starts idle: the parked slots go when that phase ends (_tick)
        parked, self._parked = self._parked, []
        for conn in parked:
            if conn.state == OPEN and not conn.in_flight:
                self._ready(conn, now_ns)

    def rebase(self, start_ns: int) -> None:
        shift = start_ns - self._start_ns
        super().rebase(start_ns)
        if self._next_arrival_ns < 1 << 62:
            self._next_arrival_ns += shift  # pulled as an offset from the provisional start
        self._think_until_ns = 0  # phases count from the new start

    def _complete(self, conn: _Conn, token: int, result: int, flags: int, now_ns: int) -> None:
        op = token & OP_MASK
        if op == OP_CONNECT:
            self._on_connect(conn, result, now_ns)
        elif op == OP_RECV_RING:
            self._ring_completion(conn, token, result, flags, now_ns)
        elif result < 0:
            self._error(conn, result, now_ns)
        elif op == OP_RECV:
            buf = conn.recv_buf
            assert buf is not None
            if result == 0:
                self._eof(conn, now_ns)
            elif self._received(conn, buf, result, now_ns):
                self._recv(conn.handle, buf, token)
        elif op == OP_RECV_ZERO:
            if self._drain(conn, now_ns):
                self.engine.recv_zero(conn.handle, token)
        else:  # OP_SEND: as in run (nothing is sent before the start)
            self.recorder.bytes_sent += result
            conn.sent += result
            if conn.sent < conn.request_len:
                rest = memoryview(conn.request)[conn.sent : conn.request_len]
                self.engine.send(conn.handle, rest, token)

    def _send_next(self, conn: _Conn, intended_ns: int = 0) -> None:
        if self._echo:
            sizes = self.config.message_sizes
            message = conn.codec.next_request(None if sizes is None else sizes())
            conn.request_len = len(message)
        else:
            if conn.source is not None:  # a request set: this exchange's own requests
                conn.request = conn.source.exchange()
                conn.request_len = len(conn.request)
            message = conn.request
            conn.expect = self.config.pipeline
        conn.sent = 0
        conn.in_flight = True
        conn.sent_ns = sent_ns = time.perf_counter_ns()
        if intended_ns:
            conn.intended_ns = intended_ns
            self.recorder.pending_schedule_lag.append(sent_ns - intended_ns)
        self.engine.send(conn.handle, message, conn.token_base | OP_SEND)

    def _post_receive(self, conn: _Conn) -> None:
        if self._buffered:
            assert conn.recv_buf is not None
            self._recv(conn.handle, conn.recv_buf, conn.token_base | OP_RECV)
        elif self._ring:
            self.engine.recv_ring(conn.handle, conn.token_base | OP_RECV_RING)
        else:
            self.engine.recv_zero(conn.handle, conn.token_base | OP_RECV_ZERO)

    def _ready(self, conn: _Conn, now_ns: int) -> None:
        """The connection may send: now (closed), or when a request is due (open)."""
        if not self._sending:
            return
        if conn.index >= self._desired:
            self._close(conn, abort=False)  # a closed-model ramp down retires it
        elif self._paused:
            self._parked.append(conn)  # an idle phase: it sends when the phase ends
        elif self._arrivals is not None:
            self._free.append(conn)
        else:
            self._send_next(conn)

    def _after_response(self, conn: _Conn, now_ns: int) -> None:
        """A response completed on ``conn``, outside the plain closed loop."""
        conn.in_flight = False
        conn.responses += 1
        rpc = self.config.requests_per_connection
        if rpc is not None and conn.responses >= rpc and self._sending:
            self._close(conn, abort=False)  # churn: a fresh connection for the next request
            self._open(conn, now_ns)
        elif self._thinks and self._sending:
            think_ns = self._think_ns if now_ns < self._think_until_ns else self._think_at(now_ns)
            if think_ns:
                heapq.heappush(self._timers, (now_ns + think_ns, conn.index, conn.token_base))
            else:
                self._ready(conn, now_ns)
        else:
            self._ready(conn, now_ns)

    def _think_at(self, now_ns: int) -> int:
        """The think time of the phase ``now_ns`` falls in (and until when it holds)."""
        elapsed_ns = now_ns - self._start_ns
        until_ns, think_ns = 1 << 62, self._think_phases[-1][1]  # the last phase holds on
        for end_ns, phase_think_ns in self._think_phases:
            if elapsed_ns < end_ns:
                until_ns, think_ns = self._start_ns + end_ns, phase_think_ns
                break
        self._think_until_ns = until_ns
        self._think_ns = think_ns
        return think_ns

    def _received(self, conn: _Conn, data: Buffer | bytes, n: int, now_ns: int) -> bool:
        """Feed received bytes (echo, or a codec's); False when the connection was failed
        or replaced meanwhile (then its receive must not be posted again)."""
        if not conn.in_flight:  # bytes nobody asked for
            self._fail(conn, ErrorKind.VERIFY.value if self._echo else KIND_PROTOCOL, now_ns)
            return False
        if not self._echo:
            token_base = conn.token_base
            self._protocol_data(conn, memoryview(data)[:n], now_ns)
            return conn.token_base == token_base and conn.handle >= 0
        verdict = conn.codec.receive(data, n)
        self.recorder.bytes_received += n
        if verdict is Verdict.INCOMPLETE:
            return True
        if verdict is Verdict.MISMATCH:
            self._fail(conn, ErrorKind.VERIFY.value, now_ns)
            return False
        self.recorder.pending_latency.append(now_ns - conn.sent_ns)
        if self._arrivals is not None:
            self.recorder.pending_corrected.append(now_ns - conn.intended_ns)
        if self._plain_closed:
            if conn.index < self._desired and self._sending and not self._paused:
                self._send_next(conn)
            else:
                conn.in_flight = False
                self._ready(conn, now_ns)
        else:
            self._after_response(conn, now_ns)
        return True

    def _protocol_data(self, conn: _Conn, data: memoryview, now_ns: int) -> None:
        """Bytes for a request/response codec (empty: the server closed the connection):
        count the responses, finish the exchange."""
        codec = conn.codec
        recorder = self.recorder
        recorder.bytes_received += len(data)
        try:
            codec.receive_data(data)
        except ProtocolError as exc:
            self._fail(conn, exc.kind, now_ns)
            return
        # Every response in this chunk answers a request sent at conn.sent_ns; pipelined ones
        # are mostly the same (interned) response, so its status is judged once per run of it.
        # Every whole response is timed; one outside the expectation is a failed request too.
        latency = now_ns - conn.sent_ns
        pending = recorder.pending_latency
        corrected = recorder.pending_corrected if self._arrivals is not None else None
        by_name = recorder.by_name if conn.source is not None else None
        next_response = codec.next_response
        last: Response | None = None
        kind: str | None = None
        while (response := next_response()) is not None:
            if conn.expect <= 0:
                self._fail(conn, KIND_PROTOCOL, now_ns)  # a response nobody asked for
                return
            if response is not last:
                last, kind = response, codec.status_kind(response.status)
            pending.append(latency)
            if corrected is not None:
                corrected.append(now_ns - conn.intended_ns)
            if kind is not None:
                recorder.failure(kind)
            if by_name:
                assert conn.source is not None
                named = by_name[conn.source.names[self.config.pipeline - conn.expect]]
                named.pending_latency.append(latency)
                if corrected is not None:
                    named.pending_corrected.append(now_ns - conn.intended_ns)
                if kind is not None:
                    named.failed += 1
                    named.errors[kind] += 1
            conn.expect -= 1
        if conn.expect > 0:
            if not data or codec.closing:  # the server ended it with responses still owed
                self._fail(conn, ErrorKind.EOF.value, now_ns)
        elif codec.closing or not data:  # the server ends the connection after this response
            conn.in_flight = False
            self._close(conn, abort=False)
            self._open(conn, now_ns)
        else:
            self._after_response(conn, now_ns)

    # --- open model --------------------------------------------------------------------
    def _pull_arrival(self) -> int:
        """The next intended send time (absolute ns), or a far future when none is left."""
        if self._arrivals is None:
            return 1 << 62
        offset = next(self._arrivals, None)
        return 1 << 62 if offset is None else self._start_ns + offset

    def _dispatch(self, now_ns: int) -> None:
        """Send every request that is due on a free connection; the rest wait for one."""
        due = self._due
        while self._next_arrival_ns <= now_ns:
            due.append(self._next_arrival_ns)
            self._next_arrival_ns = self._pull_arrival()
        free = self._free
        sent = 0
        while due and free:
            conn = free.pop()
            if conn.state != OPEN or conn.in_flight:
                continue  # failed or retired since it was freed
            self._send_next(conn, due.popleft())
            sent += 1
        # Count each request once when it first has to wait (the oldest leave first).
        self._due_counted = max(0, self._due_counted - sent)
        if len(due) > self._due_counted:
            self.waited_for_connection += len(due) - self._due_counted
            self._due_counted = len(due)

    @property
    def unsent(self) -> int:
        """Open model: requests that were due but never sent before the run ended."""
        return len(self._due)

    # --- the loop ----------------------------------------------------------------------
    def run(self, deadline_ns: int) -> None:
        engine = self.engine
        conns = self._conns
        wait = engine.wait
        engine_recv = self._recv
        engine_send = engine.send
        ring_bytes = engine.ring_bytes
        ring_release = engine.release_ring_buffer
        perf_counter_ns = time.perf_counter_ns
        recorder = self.recorder
        record_latency = recorder.pending_latency.append  # flushed in place: stays valid
        complete, incomplete = Verdict.COMPLETE, Verdict.INCOMPLETE
        index_shift = OP_BITS + GENERATION_BITS
        open_model = self._arrivals is not None
        plain_closed = self._plain_closed
        echo = self._echo
        sizes = self.config.message_sizes
        timers = self._timers
        next_tick = perf_counter_ns()
        self._begin(next_tick)
        self._tick(next_tick)
        woke = next_tick  # when the last wait() returned
        while not self.stop_requested:
            now = perf_counter_ns()
            # Loop lag: how long completions could sit unhandled because this thread was
            # busy (with the previous batch, or with a tick), and how late ticks ran.
            lag = now - woke
            if now >= next_tick:
                lag = max(lag, now - next_tick)
                self._tick(now)
                tick_end = perf_counter_ns()
                lag = max(lag, tick_end - now)
                next_tick = now + TICK_NS
                now = tick_end
            if lag > self.max_loop_lag_ns:
                self.max_loop_lag_ns = lag
            if now >= deadline_ns:
                break
            wake_ns = min(next_tick, deadline_ns)
            if timers:
                self._fire_timers(now)
                if timers:
                    wake_ns = min(wake_ns, timers[0][0])
            if open_model:
                self._dispatch(now)
                if self._free or not self._due:
                    wake_ns = min(wake_ns, self._next_arrival_ns)
            completions = wait(max(0.0, (wake_ns - now) / 1e9), BATCH)
            self.loop_iterations += 1
            woke = now = perf_counter_ns()
            if not completions:
                continue
            sent_bytes = received_bytes = 0
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
                    # The common case, inline: a whole echo arrived; verify it, record it,
                    # post the same buffer again and send the next message.
                    if result > 0 and not echo:
                        buf = conn.recv_buf
                        assert buf is not None
                        if self._received(conn, buf, result, now):
                            engine_recv(conn.handle, buf, token)
                    elif result > 0 and conn.in_flight:
                        buf = conn.recv_buf
                        assert buf is not None
                        verdict = conn.codec.receive(buf, result)
                        received_bytes += result
                        if verdict is complete:
                            record_latency(now - conn.sent_ns)
                            engine_recv(conn.handle, buf, token)
                            if (
                                plain_closed
                                and conn.index < self._desired
                                and self._sending
                                and not self._paused
                            ):
                                message = conn.codec.next_request(
                                    None if sizes is None else sizes()
                                )
                                conn.request_len = len(message)
                                conn.sent = 0
                                conn.sent_ns = perf_counter_ns()
                                engine_send(conn.handle, message, token - OP_RECV + OP_SEND)
                            else:
                                if open_model:
                                    recorder.pending_corrected.append(now - conn.intended_ns)
                                self._after_response(conn, now)
                        elif verdict is incomplete:
                            engine_recv(conn.handle, buf, token)
                        else:
                            self._fail(conn, ErrorKind.VERIFY.value, now)
                    elif result > 0:
                        self._fail(conn, ErrorKind.VERIFY.value, now)  # bytes nobody asked for
                    elif result == 0:
                        self._eof(conn, now)
                    else:
                        self._error(conn, result, now)
                elif op == OP_SEND:
                    if result < 0:
                        self._error(conn, result, now)
                        continue
                    sent_bytes += result
                    conn.sent += result
                    if conn.sent < conn.request_len:  # partial send: hand over the rest
                        rest = memoryview(conn.request)[conn.sent : conn.request_len]
                        engine_send(conn.handle, rest, token)
                elif op == OP_RECV_ZERO:
                    if result < 0:
                        self._error(conn, result, now)
                    elif self._drain(conn, now):
                        engine.recv_zero(conn.handle, token)
                elif op == OP_RECV_RING:
                    if result <= 0 or not echo or not conn.in_flight:
                        self._ring_completion(conn, token, result, flags, now)
                        continue
                    # buffer-ring's common case, inline like OP_RECV's: copy the echo out
                    # of its ring buffer, give the buffer back, verify, record, send next.
                    bid = flags >> RING_BID_SHIFT
                    data = ring_bytes(bid, result)
                    ring_release(bid)
                    verdict = conn.codec.receive(data, result)
                    received_bytes += result
                    if verdict is complete:
                        record_latency(now - conn.sent_ns)
                        if (
                            plain_closed
                            and conn.index < self._desired
                            and self._sending
                            and not self._paused
                        ):
                            message = conn.codec.next_request(None if sizes is None else sizes())
                            conn.request_len = len(message)
                            conn.sent = 0
                            conn.sent_ns = perf_counter_ns()
                            engine_send(conn.handle, message, token - OP_RECV_RING + OP_SEND)
                        else:
                            if open_model:
                                recorder.pending_corrected.append(now - conn.intended_ns)
                            self._after_response(conn, now)
                    elif verdict is not incomplete:
                        self._fail(conn, ErrorKind.VERIFY.value, now)
                        continue
                    if (
                        not flags & RING_MORE
                        and conn.token_base == token & ~OP_MASK
                        and conn.handle >= 0
                    ):
                        engine.recv_ring(conn.handle, token)  # the kernel ended it after this
                else:  # OP_CONNECT
                    self._on_connect(conn, result, now)
            recorder.bytes_sent += sent_bytes
            recorder.bytes_received += received_bytes
        self.recorder.flush()

    def _on_connect(self, conn: _Conn, result: int, now_ns: int) -> None:
        if result < 0:
            self._error(conn, result, now_ns)
            return
        self._connected(conn, now_ns)
        self._post_receive(conn)
        self._ready(conn, now_ns)

    def _ring_completion(
        self, conn: _Conn, token: int, result: int, flags: int, now_ns: int
    ) -> None:
        """buffer-ring: bytes in a ring buffer (copied out, the buffer given back at once),
        or the end of the armed receive (re-armed unless the connection ended)."""
        engine = self.engine
        if result > 0:
            bid = flags >> RING_BID_SHIFT
            data = engine.ring_bytes(bid, result)
            engine.release_ring_buffer(bid)
            if not self._received(conn, data, result, now_ns):
                return
            if flags & RING_MORE or conn.handle < 0 or conn.token_base != token & ~OP_MASK:
                return  # still armed, or the connection was closed or replaced meanwhile
            engine.recv_ring(conn.handle, token)  # the kernel ended it after this data
        elif result == -errno.ENOBUFS:
            self.ring_enobufs += 1  # the ring ran dry; the data waits in the socket
            engine.recv_ring(conn.handle, token)
        elif result == 0:
            self._eof(conn, now_ns)
        else:
            self._error(conn, result, now_ns)

    def _drain(self, conn: _Conn, now_ns: int) -> bool:
        """Read everything waiting after a zero-byte receive; False if the conn failed."""
        scratch = self._scratch
        recv_now = self.engine.recv_now
        token_base = conn.token_base
        while True:
            n = recv_now(conn.handle, scratch)
            if n > 0:
                if not self._received(conn, scratch, n, now_ns):
                    return False
                if conn.handle < 0 or conn.token_base != token_base:
                    return False  # closed (ramp down) or reopened (churn) after its response
                if n < len(scratch):
                    # A short read emptied the socket: skip the receive that would only say
                    # EAGAIN (a syscall); anything newer completes the next zero-byte receive.
                    return True
                # The echo of a request sent during this drain can arrive within it.
                now_ns = time.perf_counter_ns()
                continue
            if n == 0:
                self._eof(conn, now_ns)
                return False
            if self.engine.would_block(-n):
                return True
            self._error(conn, n, now_ns)
            return False

    def _eof(self, conn: _Conn, now_ns: int) -> None:
        """The server closed the connection. For echo that is an ``eof`` error; a codec is
        told (a close may end an HTTP/1.0 body); an idle keep-alive connection closed by
        the server is just reopened. A reset that only showed as the end of the stream
        (its error taken by a send first) is counted as the reset it was."""
        code = self.engine.end_error(conn.handle)
        if code:
            self._error(conn, -code, now_ns)
            return
        if self._echo:
            self._fail(conn, ErrorKind.EOF.value, now_ns)
        elif conn.in_flight:
            self._protocol_data(conn, memoryview(b""), now_ns)
        else:
            self._close(conn, abort=False)
            self._open(conn, now_ns)

    def _fire_timers(self, now_ns: int) -> None:
        """Think time is over for these connections: let them send again."""
        timers = self._timers
        while timers and timers[0][0] <= now_ns:
            _, index, token_base = heapq.heappop(timers)
            conn = self._conns[index]
            if conn.token_base == token_base and conn.state == OPEN and not conn.in_flight:
                self._ready(conn, now_ns)

    # --- ending ------------------------------------------------------------------------
    @property
    def in_flight(self) -> int:
        return sum(1 for conn in self._conns if conn.state == OPEN and conn.in_flight)
