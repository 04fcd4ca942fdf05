"""The built-in HTTP/1.1 server, running on the engine itself.

Routes (any method; HEAD gets the same head without the body; a query string is ignored):

    /status/NNN   status NNN (200-599) with its reason phrase as the body
    /bytes/N      a body of N bytes (Content-Length)
    /chunked/N    a body of N bytes sent chunked, in chunks of CHUNK_BYTES
    /delay/MS     "ok", answered MS milliseconds later
    /close        "ok" with ``Connection: close``, then the server closes the connection
    anything else "ok" (so any benchmark path works)

Requests are parsed by llhttp (``httptools.HttpRequestParser``, one per connection), so
keep-alive, HTTP/1.0, request bodies and pipelining come from a real parser: every request
found in one receive is answered, in order, by one send. A request the parser rejects is
answered ``400`` and the connection closed; so is one asking for ``Connection: close``.

Per connection the server alternates like the echo target: one receive posted; when it
completes, the answers are queued, sent (the rest re-sent after a partial send), and only
then is the next receive posted. A client that pipelines therefore sees its requests
answered in batches, and a client that never reads cannot make the server buffer without
bound. ``/delay`` holds its answer, and those behind it, in a timer heap that the loop's
wait timeout honours.

With a ``service_time_ns`` (``loadgen serve http --capacity 2000/s``: 500 µs) the server is
one worker that serves requests one at a time, in the order they arrive over all
connections: each request is answered ``service_time_ns`` after the previous one was, or
after its own arrival when the worker was idle (``done = max(arrival, previous done) +
service``), through the same timer heap. That is a single-server FIFO queue with a fixed
service time, so with Poisson arrivals queueing theory (M/D/1) says what its latency
percentiles are at each rate: a target with a known capacity, for testing a capacity
search. The worker's time is simulated, not spent: the process stays idle between answers.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Callable
from http import HTTPStatus

import httptools

from loadgen.engine import Backend

#: Receive buffer per connection: requests are small; 16 KiB holds dozens pipelined.
SERVER_BUFFER_BYTES = 16 * 1024
#: Largest backlog the kernel grants by default (net.core.somaxconn is 4096 since 5.4).
LISTEN_BACKLOG = 4096
#: Chunk size of /chunked/N: small enough that a few KiB already make several chunks.
CHUNK_BYTES = 1024
#: Largest /bytes and /chunked body: a test target, not a file server (64 MiB).
MAX_BODY_BYTES = 64 * 1024 * 1024
#: Longest /delay: past a minute a test is hung, not slow.
MAX_DELAY_MS = 60_000
#: Distinct responses kept pre-encoded; a client walking /bytes/1..N must not grow it forever.
MAX_CACHED_RESPONSES = 1024

OK_BODY = b"ok"
_ACCEPT, _RECV, _SEND = 0, 1, 2
#: Pattern the /bytes and /chunked bodies are cut from.
_FILL = b"loadgen " * 8


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def _head(status: int, keep_alive: bool, length: int | None) -> bytes:
    lines = [f"HTTP/1.1 {status} {_reason(status)}", "Server: loadgen"]
    if length is None:
        lines.append("Transfer-Encoding: chunked")
    elif status not in (204, 304):  # these two never carry a body nor its length
        lines.append(f"Content-Length: {length}")
    lines.append("Connection: keep-alive" if keep_alive else "Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _fill(size: int) -> bytes:
    return (_FILL * (size // len(_FILL) + 1))[:size]


def _chunked(size: int) -> bytes:
    parts = []
    for start in range(0, size, CHUNK_BYTES):
        piece = _fill(min(CHUNK_BYTES, size - start))
        parts.append(b"%x\r\n%b\r\n" % (len(piece), piece))
    parts.append(b"0\r\n\r\n")
    return b"".join(parts)


def _number(text: str, low: int, high: int) -> int | None:
    if text.isdigit() and len(text) <= 10:
        value = int(text)
        if low <= value <= high:
            return value
    return None


def build_response(method: bytes, path: str, keep_alive: bool) -> tuple[int, bytearray, bool]:
    """(delay in ms, response bytes, keep the connection) for one request."""
    status, body, chunked, delay_ms = 200, OK_BODY, False, 0
    parts = path.split("/")
    route = parts[1] if len(parts) == 3 else ""
    argument = parts[2] if len(parts) == 3 else ""
    if path == "/close":
        keep_alive = False
    elif route in ("status", "bytes", "chunked", "delay"):
        bounds = {
            "status": (200, 599),
            "bytes": (0, MAX_BODY_BYTES),
            "chunked": (0, MAX_BODY_BYTES),
            "delay": (0, MAX_DELAY_MS),
        }[route]
        value = _number(argument, *bounds)
        if value is None:
            status, body = 400, f"{route} wants a number in {bounds[0]}..{bounds[1]}".encode()
        elif route == "status":
            status = value
            body = b"" if value in (204, 304) else _reason(value).encode()
        elif route == "bytes":
            body = _fill(value)
        elif route == "chunked":
            body, chunked = _chunked(value), True
        else:
            delay_ms = value
    head = _head(status, keep_alive, None if chunked else len(body))
    if method == b"HEAD":
        return delay_ms, bytearray(head), keep_alive
    return delay_ms, bytearray(head + body), keep_alive


class _Connection:
    """One client connection: its parser (whose callbacks these methods are) and queue."""

    __slots__ = (
        "answers",
        "buffer",
        "close_after",
        "handle",
        "parser",
        "requests",
        "sending",
        "sent",
        "timer_due_ns",
        "url",
    )

    def __init__(self, handle: int) -> None:
        self.handle = handle
        self.buffer = bytearray(SERVER_BUFFER_BYTES)
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.requests: list[tuple[bytes, bytes, bool]] = []  # method, url, keep-alive
        self.answers: list[tuple[int, bytearray, bool]] = []  # due (ns), bytes, keep-alive
        self.sending: bytearray | None = None
        self.sent = 0
        self.close_after = False  # the last answer queued ends the connection
        self.timer_due_ns = 0  # a timer is armed for this time (0: none)

    # httptools callbacks
    def on_url(self, url: bytes) -> None:
        self.url += url  # llhttp may hand the URL over in pieces

    def on_message_complete(self) -> None:
        parser = self.parser
        self.requests.append((parser.get_method(), self.url, parser.should_keep_alive()))
        self.url = b""


class HttpServer:
    """Serve HTTP/1.1 on ``host:port`` (port 0 picks a free one) until ``stop()``."""

    def __init__(
        self,
        engine: Backend,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        reuse_port: bool = False,
        service_time_ns: int = 0,
    ) -> None:
        if service_time_ns < 0:
            raise ValueError(f"service_time_ns must not be negative, got {service_time_ns}")
        self.engine = engine
        #: One worker's time per request (0: answer at once, as many at a time as arrive).
        self.service_time_ns = service_time_ns
        self._busy_until_ns = 0  # when the one worker finishes what it was given so far
        self.listen_handle, self.address = engine.listen_socket(
            host, port, LISTEN_BACKLOG, reuse_port=reuse_port
        )
        self.connections = 0
        self.requests = 0
        self._stopping = False
        self._ids = itertools.count(1)
        self._conns: dict[int, _Connection] = {}
        self._timers: list[tuple[int, int]] = []  # (due ns, connection id), a heap
        self._cache: dict[tuple[bytes, bytes, bool], tuple[int, bytearray, bool]] = {}

    def stop(self) -> None:
        self._stopping = True

    def serve(self, on_tick: Callable[[], None] | None = None, tick_s: float = 0.2) -> None:
        engine = self.engine
        engine.accept(self.listen_handle, _ACCEPT)
        conns = self._conns
        timers = self._timers
        while not self._stopping:
            timeout_s = tick_s
            if timers:
                timeout_s = min(tick_s, max(0.0, (timers[0][0] - time.perf_counter_ns()) / 1e9))
            for token, result, _ in engine.wait(timeout_s):
                op = token & 3
                conn_id = token >> 2
                if op == _ACCEPT:
                    if result >= 0:
                        self._start(result)
                    if not self._stopping:
                        engine.accept(self.listen_handle, _ACCEPT)
                    continue
                conn = conns.get(conn_id)
                if conn is None:
                    continue  # completed after the connection was dropped
                if result <= 0:
                    self._drop(conn_id)
                elif op == _RECV:
                    self._received(conn_id, conn, result)
                else:
                    self._sent(conn_id, conn, result)
            if timers:
                now = time.perf_counter_ns()
                while timers and timers[0][0] <= now:
                    due, conn_id = heapq.heappop(timers)
                    conn = conns.get(conn_id)
                    if conn is not None and conn.timer_due_ns == due:
                        conn.timer_due_ns = 0
                        self._flush(conn_id, conn)
            if on_tick is not None:
                on_tick()
        self.close()

    def _start(self, handle: int) -> None:
        conn_id = next(self._ids)
        conn = self._conns[conn_id] = _Connection(handle)
        self.connections += 1
        self.engine.recv(handle, conn.buffer, conn_id << 2 | _RECV)

    def _received(self, conn_id: int, conn: _Connection, size: int) -> None:
        try:
            conn.parser.feed_data(memoryview(conn.buffer)[:size])
        except httptools.HttpParserUpgrade:
            bad = "upgrades are not supported"
        except httptools.HttpParserError as exc:
            bad = f"bad request: {exc}"
        else:
            bad = ""
        now = time.perf_counter_ns()
        for method, url, keep_alive in conn.requests:
            self.requests += 1
            key = (method, url, keep_alive)
            answer = self._cache.get(key)
            if answer is None:
                path = url.split(b"?", 1)[0].decode("latin-1")
                answer = build_response(method, path, keep_alive)
                if len(self._cache) < MAX_CACHED_RESPONSES:
                    self._cache[key] = answer
            delay_ms, data, keep = answer
            done_ns = now
            if self.service_time_ns:
                done_ns = max(now, self._busy_until_ns) + self.service_time_ns
                self._busy_until_ns = done_ns
            conn.answers.append((done_ns + delay_ms * 1_000_000, data, keep))
            if not keep:
                break  # nothing after a response that closes the connection
        conn.requests.clear()
        if bad and (not conn.answers or conn.answers[-1][2]):
            data = bytearray(_head(400, False, len(bad)) + bad.encode())
            conn.answers.append((now, data, False))
        self._flush(conn_id, conn)

    def _flush(self, conn_id: int, conn: _Connection) -> None:
        """Send the answers that are due, in order; else wait for them or read more."""
        if conn.sending is not None:
            return
        answers = conn.answers
        now = time.perf_counter_ns()
        ready = 0
        while ready < len(answers) and answers[ready][0] <= now:
            ready += 1
            if not answers[ready - 1][2]:
                conn.close_after = True
                break
        if ready:
            out = answers[0][1] if ready == 1 else bytearray().join(a[1] for a in answers[:ready])
            del answers[:ready]
            conn.sending, conn.sent = out, 0
            self.engine.send(conn.handle, out, conn_id << 2 | _SEND)
        elif answers:
            due = answers[0][0]
            if conn.timer_due_ns != due:
                conn.timer_due_ns = due
                heapq.heappush(self._timers, (due, conn_id))
        elif conn.close_after:
            self._drop(conn_id)
        else:
            self.engine.recv(conn.handle, conn.buffer, conn_id << 2 | _RECV)

    def _sent(self, conn_id: int, conn: _Connection, size: int) -> None:
        out = conn.sending
        assert out is not None
        conn.sent += size
        if conn.sent < len(out):
            self.engine.send(conn.handle, memoryview(out)[conn.sent :], conn_id << 2 | _SEND)
            return
        conn.sending = None
        if conn.close_after:
            conn.answers.clear()
        self._flush(conn_id, conn)

    def _drop(self, conn_id: int) -> None:
        conn = self._conns.pop(conn_id)
        self.engine.close(conn.handle)

    def close(self) -> None:
        for conn_id in list(self._conns):
            self._drop(conn_id)
        self.engine.close(self.listen_handle)
