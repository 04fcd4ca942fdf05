"""Connection slots shared by the load clients (request/response and stream).

A client owns a fixed list of slots; each slot holds at most one socket at a time and is
reopened after a failure, a churn or a finished transfer. This module keeps what every
client does the same way:

* each slot's token (``loadgen.load.tokens``): a fresh generation whenever its socket is
  torn down and reopened, so a late completion of an operation on the old socket (a
  cancelled receive, say) is recognised and dropped (``receive.is_stale``);
* opening (source address spread, target spread), closing (an orderly FIN, or RST for
  ``close: rst``: no TIME_WAIT, so high-rate churn keeps its ports), and failing a slot: an
  error is counted by kind, the socket is dropped with RST (no TIME_WAIT), and the reconnect
  backs off from 10 ms doubling to 1 s while connects keep failing, so a refused target
  does not spin the CPU;
* the periodic scan (``tick``): the recorder's intervals, connection ramps, connect
  timeouts, the client's own stall timeout (``_stalled``), and reconnects, at most
  ``MAX_CONNECTS_IN_FLIGHT`` at once; and a memory sample at most every
  ``MEMORY_SAMPLE_NS`` (``stats.memory``: 0.7-1.3 ms a read with slabinfo, ~0.1% of a core);
* opening before the start (``preconnect``, ``ShardSpec.connect_before_start``): the slots
  the run starts with (the desired count at elapsed 0) connect once each, before the start
  instant, with their receive posted and nothing sent; the client holds them and lets them
  send when ``run`` begins. ``rebase`` then moves the run's clock (recorder, ramps, memory
  samples, arrivals) to the start instant the coordinator gives;
* the loop (``run``): a tick every ``TICK_NS``, the client's timers and due work before
  each ``wait()`` (``_before_wait``), then each batch of completions (``_handle``; by
  default each fresh one goes to ``_complete``, and the request client writes its own hot
  batch loop), a large batch ``CHUNK`` completions at a time with the deadline and a stop
  request looked at in between (the rest of the batch is dropped once either is there);
  the loop lag it measures is how long completions could sit unhandled;
* ending a run: close every socket in one batch (``close_many``) and reap what the kernel
  still owes (ring buffers lent by those last completions go back to the ring).
"""

from __future__ import annotations

import socket
import time
from typing import Generic, TypeVar

from loadgen.config.schedule import connections_at
from loadgen.engine import Backend
from loadgen.engine.base import Completion, ErrorKind
from loadgen.load.client_config import ClientConfig
from loadgen.load.receive import give_back, is_stale
from loadgen.load.recorder import Recorder
from loadgen.load.tokens import GENERATION_MASK, INDEX_SHIFT, OP_CONNECT, token_base
from loadgen.stats.memory import sample_memory


def address_family(host: str) -> int:
    """AF_INET6 for an IPv6 literal (it alone has colons), else AF_INET: targets reach the
    pool resolved (``loadgen.run.resolve``), so a host here is an address."""
    return socket.AF_INET6 if ":" in host else socket.AF_INET


# Slot states.
IDLE, CONNECTING, OPEN, RETIRED = 0, 1, 2, 3

#: How often timeouts, reconnects, ramps and the recorder are looked at. 100 ms keeps the
#: scan of every slot cheap (10 per second) with timeouts accurate to a tenth of a second.
TICK_NS = 100_000_000
#: Connects in flight at once: more would overflow a 4,096 listen backlog into SYN retries
#: (a one-second stall that would be reported as the server's connect latency).
MAX_CONNECTS_IN_FLIGHT = 1024
#: How often the tick samples kernel and process memory into the result.
MEMORY_SAMPLE_NS = 1_000_000_000
#: Reconnect backoff after consecutive failed connects: 10 ms doubling to 1 s.
BACKOFF_MIN_NS = 10_000_000
BACKOFF_MAX_NS = 1_000_000_000
#: Completions handled per loop iteration (see base.DEFAULT_MAX_COMPLETIONS).
BATCH = 512
#: Completions handled between two looks at the clock and at a stop request within one
#: batch. A batch of costly receives (buffer-ring: a completion per ring buffer of 64 KiB,
#: each parsed by the codec) otherwise holds the loop past its deadline and Ctrl-C: measured
#: here, a 0.5 s run against a target streaming a RESP array of one-digit integers (~5 MB/s
#: of parsing) to 16 connections with 512 ring buffers lasted 2.1-8.2 s; with 32, 0.5-0.8 s.
#: Only batches larger than this pay for it: a slice and a clock read per 32 completions.
CHUNK = 32


def _backoff_ns(failures: int) -> int:
    """The wait before reconnecting after ``failures`` consecutive failed connects."""
    return min(BACKOFF_MIN_NS << (failures - 1), BACKOFF_MAX_NS) if failures else 0


def os_error_code(exc: OSError) -> int:
    """The OS's number for an error raised by the engine: the Win32/Winsock code on
    Windows (``winerror``), else errno (0 when the exception carries neither)."""
    return getattr(exc, "winerror", None) or exc.errno or 0


class Slot:
    """One connection slot's life; clients subclass it with their per-exchange state."""

    __slots__ = (
        "connect_started_ns",
        "failures",
        "generation",
        "handle",
        "index",
        "retry_at_ns",
        "state",
        "token_base",
    )

    def __init__(self, index: int) -> None:
        self.index = index
        self.handle = -1
        self.state = IDLE
        self.generation = 0
        self.token_base = 0
        self.failures = 0  # consecutive failed connects (the backoff's exponent)
        self.retry_at_ns = 0
        self.connect_started_ns = 0


S = TypeVar("S", bound=Slot)


class SlotPool(Generic[S]):
    """Opening, closing, failing and scanning slots; the client drives its own loop."""

    def __init__(self, engine: Backend, recorder: Recorder, config: ClientConfig) -> None:
        """The pool's part of ``config``: targets, sources, the connect timeout, the
        connection phases and counts, and ``close``."""
        addresses, sources = config.addresses, config.sources
        connect_timeout_s = config.connect_timeout_s
        connection_phases, connections = config.connection_phases, config.connections
        close_rst = config.close_rst
        self.engine = engine
        #: ``close: rst``: every close is an abort (SO_LINGER 0), so no TIME_WAIT is left.
        self._close_rst = close_rst
        self.recorder = recorder
        self.stop_requested = False
        self.loop_iterations = 0
        self.max_loop_lag_ns = 0
        self._conns: list[S] = []
        self._addresses = addresses
        #: Each target's address family: its sockets are made in it (an AF_INET socket
        #: cannot connect to an IPv6 address), and bound only to sources of that family.
        self._families = [address_family(host) for host, _ in addresses]
        self._sources = sources
        self._sources_by_family = {
            family: [s for s in sources if address_family(s) == family]
            for family in set(self._families)
        }
        self._connect_timeout_ns = int(connect_timeout_s * 1e9)
        self._connection_phases = connection_phases
        self._connecting = 0
        self._open_count = 0
        self._sending = True
        self._start_ns = recorder.start_ns
        self._desired = connections
        self._next_memory_ns = self._start_ns  # the first tick samples at once
        #: Connected before the start (``preconnect``) and held: nothing sent until ``run``.
        self._held = False

    # --- hooks for the client ------------------------------------------------------
    def _on_open(self, conn: S) -> None:
        """A fresh socket was made for ``conn`` (reset per-socket state here)."""

    def _on_close(self, conn: S) -> None:
        """``conn``'s socket was closed (forget the exchange in flight here)."""

    def _stalled(self, conn: S, now_ns: int) -> bool:
        """True when an open ``conn`` waited too long for its peer (counted as timeout)."""
        return False

    def _complete(self, conn: S, token: int, result: int, flags: int, now_ns: int) -> None:
        """One completion outside ``run`` (``preconnect``): the slow path, same handling."""
        raise NotImplementedError

    def _hold(self) -> None:
        """From now until ``_release``, a slot that connects sends nothing (``_held`` is set
        too, for clients that look at it)."""

    def _release(self, now_ns: int) -> None:
        """The start: the held slots begin their exchanges."""
        raise NotImplementedError

    def _setting_up(self) -> int:
        """Connections that are open but not yet ready to exchange (a TLS handshake in
        progress): ``preconnect`` waits for them as for connects."""
        return 0

    def _before_wait(self, now_ns: int, wake_ns: int) -> int:
        """Due work before the loop waits (timers, arrivals); returns when to wake at the
        latest (``wake_ns``: the next tick or the deadline, or earlier)."""
        return wake_ns

    def _handle(self, completions: list[Completion], now_ns: int) -> None:
        """One batch of completions, returned by the ``wait()`` that ended at ``now_ns``."""
        self._handle_each(completions, now_ns)

    def _done(self) -> bool:
        """True when the client has nothing left to do before the deadline."""
        return False

    def _end(self, now_ns: int) -> None:
        """The loop ended (deadline, stop or done) at ``now_ns``."""

    # --- before the start ----------------------------------------------------------
    @property
    def initial_connections(self) -> int:
        """The slots the run starts with: the desired count at elapsed 0 (a ramp's first
        count, 0 for a ramp from zero)."""
        if self._connection_phases:
            return connections_at(self._connection_phases, 0.0)
        return min(self._desired, len(self._conns))

    def preconnect(self) -> None:
        """Connect the slots the run starts with before the start instant, and wait until
        each is open (over TLS: with its handshake done, ``_setting_up``) or has failed, at
        most the connect timeout in all (a handshake still going then finishes in the run).

        Each slot gets one attempt here, at most ``MAX_CONNECTS_IN_FLIGHT`` at once (a slot
        whose turn has not come when the time is up connects at the start, as without
        preconnecting). An open slot has its receive posted and sends nothing until ``run``
        begins; a failed one is counted by kind and retries in the run after its backoff,
        as usual; one still connecting at the end is timed out as the run's tick would, or
        left to finish in the run if its own connect timeout has not passed. Connect
        latencies go into the recorder as usual: they are this run's connects (flushed by
        the run's first tick; the errors land in interval 0).
        """
        conns = self._conns
        count = self.initial_connections
        timeout = self._connect_timeout_ns
        now = time.perf_counter_ns()
        end = now + timeout
        self._hold()
        self._held = True
        turn = 0
        while not self.stop_requested:
            while turn < count and self._connecting < MAX_CONNECTS_IN_FLIGHT:
                if conns[turn].state == IDLE:
                    self._open(conns[turn], now)
                turn += 1
            settled = not self._connecting and not self._setting_up()
            if (turn >= count and settled) or now >= end:
                break
            now = self._reap_before_start(max(0.0, (end - now) / 1e9))
        # io_uring hands queued operations to the kernel in wait(): the receives the last
        # connects posted are submitted here, so they are posted before ready, as on any open.
        now = self._reap_before_start(0.0)
        for conn in conns:
            if conn.state == CONNECTING and now - conn.connect_started_ns >= timeout:
                self._fail(conn, ErrorKind.TIMEOUT.value, now)

    def _reap_before_start(self, timeout_s: float) -> int:
        """One wait for completions before the start, each handled by ``_complete``;
        returns the time they are handled at."""
        completions = self.engine.wait(timeout_s, BATCH)
        now = time.perf_counter_ns()
        self._handle_each(completions, now)
        return now

    def _handle_each(self, completions: list[Completion], now_ns: int) -> None:
        """Each fresh completion to ``_complete``; stale ones are dropped."""
        engine = self.engine
        conns = self._conns
        for token, result, flags in completions:
            conn = conns[token >> INDEX_SHIFT]
            # Checked one by one, not before the batch: handling one completion can tear
            # down the socket a later one in the same batch belongs to.
            if is_stale(conn, token):
                give_back(engine, token, flags)
                continue
            self._complete(conn, token, result, flags, now_ns)

    def rebase(self, start_ns: int) -> None:
        """Start the run's clock at ``start_ns`` (the recorder was made before it was known)."""
        self.recorder.start_ns = self._start_ns = self._next_memory_ns = start_ns

    def _begin(self, now_ns: int) -> None:
        """At the top of ``run``: held slots (``preconnect``) start now."""
        if self._held:
            self._held = False
            self._release(now_ns)

    # --- the loop ------------------------------------------------------------------
    def run(self, deadline_ns: int) -> None:
        """Drive the engine until ``deadline_ns``, until ``stop_requested`` is set, or until
        the client is done (``_done``). One ``wait()`` per iteration returns a capped batch
        of completions."""
        wait = self.engine.wait
        perf_counter_ns = time.perf_counter_ns
        next_tick = perf_counter_ns()
        self._begin(next_tick)
        self._tick(next_tick)
        woke = next_tick  # when the last wait() returned
        while not self.stop_requested and not self._done():
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
            wake_ns = self._before_wait(now, min(next_tick, deadline_ns))
            completions = wait(max(0.0, (wake_ns - now) / 1e9), BATCH)
            self.loop_iterations += 1
            woke = perf_counter_ns()
            if len(completions) > CHUNK:
                self._handle_until(completions, woke, deadline_ns)
            elif completions:
                self._handle(completions, woke)
        self._end(min(perf_counter_ns(), deadline_ns))
        self.recorder.flush()

    def _handle_until(self, completions: list[Completion], now_ns: int, deadline_ns: int) -> None:
        """A large batch, ``CHUNK`` completions at a time, until the deadline or a stop
        request: what is left then is dropped (ring buffers given back), as after the end."""
        perf_counter_ns = time.perf_counter_ns
        for start in range(0, len(completions), CHUNK):
            if start and (self.stop_requested or perf_counter_ns() >= deadline_ns):
                engine = self.engine
                for token, _result, flags in completions[start:]:
                    give_back(engine, token, flags)
                return
            self._handle(completions[start : start + CHUNK], now_ns)

    # --- slot life -----------------------------------------------------------------
    def _open(self, conn: S, now_ns: int) -> None:
        """Make ``conn``'s socket and start its connect. A socket, bind or connect the OS
        refuses at once (no buffers, no free port, a source address not on this host) is
        counted by its kind and retried after the backoff, like a failed connect."""
        conn.generation = (conn.generation + 1) & GENERATION_MASK
        conn.token_base = token_base(conn.index, conn.generation)
        engine = self.engine
        target = conn.index % len(self._addresses)
        family = self._families[target]
        try:
            handle = engine.tcp_socket(family)
        except OSError as exc:
            code = os_error_code(exc)
            self.recorder.error(engine.error_kind(code).value, code)
            conn.failures += 1
            conn.retry_at_ns = now_ns + _backoff_ns(conn.failures)
            return
        conn.handle = handle
        conn.state = CONNECTING
        # Its own start, not the batch's ``now_ns``: a tick or preconnect opens hundreds in
        # a row, and one shared start made every connect latency of a batch the same.
        conn.connect_started_ns = time.perf_counter_ns()
        self._connecting += 1
        self._on_open(conn)
        try:
            if self._sources:
                # None of the target's family (refused before a CLI run): the bind fails
                # and is counted, like any source the OS refuses.
                sources = self._sources_by_family[family] or self._sources
                engine.bind(handle, (sources[conn.index % len(sources)], 0))
            engine.connect(handle, self._addresses[target], conn.token_base | OP_CONNECT)
        except OSError as exc:
            code = os_error_code(exc)
            self._fail(conn, engine.error_kind(code).value, now_ns, code)

    def _connected(self, conn: S, now_ns: int) -> None:
        """Bookkeeping of a connect that succeeded; the client then starts its exchange."""
        self._connecting -= 1
        self._open_count += 1
        conn.failures = 0
        conn.state = OPEN
        self.recorder.pending_connect.append(now_ns - conn.connect_started_ns)

    def _close(self, conn: S, *, abort: bool) -> None:
        abort = abort or self._close_rst
        self._before_close(conn, abort=abort)
        self.engine.close(conn.handle, abort=abort)
        self._closed(conn)

    def _before_close(self, conn: S, *, abort: bool) -> None:
        """``conn``'s socket is about to be closed (``abort``: with a reset), one by one or
        in ``close_all``'s batch: the last thing a protocol sends goes out here (TLS: its
        close_notify)."""

    def _closed(self, conn: S) -> None:
        """Bookkeeping of ``conn`` whose socket the engine has just closed."""
        if conn.state == CONNECTING:
            self._connecting -= 1
        elif conn.state == OPEN:
            self._open_count -= 1
        conn.handle = -1
        conn.state = IDLE
        self._on_close(conn)

    def _fail(
        self,
        conn: S,
        kind: str,
        now_ns: int,
        code: int | None = None,
        reason: str | None = None,
    ) -> None:
        """Count an error (with the OS's ``code`` when there is one, and the ``reason``
        when the client can tell), drop the socket (RST: no TIME_WAIT), schedule a
        reconnect."""
        self.recorder.error(kind, code, reason)
        conn.failures = conn.failures + 1 if conn.state == CONNECTING else 0
        self._close(conn, abort=True)
        conn.retry_at_ns = now_ns + _backoff_ns(conn.failures)

    def _error(self, conn: S, result: int, now_ns: int) -> None:
        """An operation completed with ``result`` = -code: fail with the code's kind."""
        self._fail(conn, self.engine.error_kind(-result).value, now_ns, -result)

    def _tick(self, now_ns: int) -> None:
        """Intervals, memory samples, ramps, timeouts and reconnects (every TICK_NS)."""
        self.recorder.tick(now_ns, self._open_count)
        if now_ns >= self._next_memory_ns:
            self._next_memory_ns = now_ns + MEMORY_SAMPLE_NS
            self._sample_memory(now_ns)
        if self._connection_phases:
            elapsed_s = (now_ns - self._start_ns) / 1e9
            self._desired = connections_at(self._connection_phases, elapsed_s)
        desired = self._desired
        connect_timeout = self._connect_timeout_ns
        for conn in self._conns:
            state = conn.state
            if state == OPEN:
                if self._stalled(conn, now_ns):
                    self._fail(conn, ErrorKind.TIMEOUT.value, now_ns)
            elif state == CONNECTING:
                if now_ns - conn.connect_started_ns > connect_timeout:
                    self._fail(conn, ErrorKind.TIMEOUT.value, now_ns)
            elif (
                state == IDLE
                and self._sending
                and conn.index < desired
                and conn.retry_at_ns <= now_ns
                and self._connecting < MAX_CONNECTS_IN_FLIGHT
            ):
                self._open(conn, now_ns)

    def _sample_memory(self, now_ns: int) -> None:
        """Append one memory sample (seconds since start, the sampler's fields) to the result."""
        posted = self.engine.posted_recv_bytes()
        record: dict[str, object] = {"t_s": round((now_ns - self._start_ns) / 1e9, 3)}
        record.update(sample_memory(posted).as_dict())
        del record["engine_posted_bytes"]  # the result names it for what it is
        record["engine_posted_recv_bytes"] = posted
        self.recorder.memory.append(record)

    # --- ending --------------------------------------------------------------------
    @property
    def open_connections(self) -> int:
        return self._open_count

    def close_all(self, grace_s: float = 1.0) -> None:
        """Close every socket and reap what the kernel still owes (bounded by ``grace_s``)."""
        self._sending = False
        # One batch (engine.close_many): on io_uring one io_uring_enter cancels what is
        # pending on every socket, where a close each made one enter per socket.
        closing = [conn for conn in self._conns if conn.handle >= 0]
        for conn in closing:
            self._before_close(conn, abort=self._close_rst)
        self.engine.close_many([conn.handle for conn in closing], abort=self._close_rst)
        for conn in closing:
            self._closed(conn)
        deadline = time.monotonic() + grace_s
        engine = self.engine
        while engine.pending() and time.monotonic() < deadline:
            for token, _result, flags in engine.wait(0.05, BATCH):
                give_back(engine, token, flags)
