"""The codecs over real sockets against real servers: nginx and the built-in HTTP target for
HTTP/1.1, redis-server for RESP. Plain blocking sockets: what is tested here is the codec
against what real servers send; the engine-driven client is tested elsewhere."""

from __future__ import annotations

import socket
import struct
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from loadgen.protocols.base import Codec, ProtocolError, Response
from loadgen.protocols.http1 import Http1Codec
from loadgen.protocols.resp import RespCodec
from loadgen.targets.http import MAX_BODY_BYTES

from ..servers import NGINX_STATIC_BYTES

TIMEOUT_S = 5.0


class Connection:
    """A blocking socket driven through a codec; keeps the raw bytes for framing checks."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.sock = socket.create_connection((host, port), timeout=TIMEOUT_S)
        self.raw = bytearray()
        self.eof = False

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def receive(self, codec: Codec, count: int) -> list[Response]:
        """Read until ``count`` responses have arrived (failing on EOF before that)."""
        got: list[Response] = []
        buffer = bytearray(65536)
        view = memoryview(buffer)
        while len(got) < count:
            n = self.sock.recv_into(buffer)
            self.raw += view[:n]
            codec.receive_data(view[:n])
            if n == 0:
                self.eof = True
            while (response := codec.next_response()) is not None:
                got.append(response)
            if n == 0 and len(got) < count:
                raise AssertionError(f"connection closed after {len(got)} of {count} responses")
        return got

    def at_eof(self) -> bool:
        """The peer closed the connection (waiting up to TIMEOUT_S for it)."""
        return self.eof or self.sock.recv(1) == b""

    def close(self) -> None:
        self.sock.close()


@contextmanager
def connect(port: int, host: str = "127.0.0.1") -> Iterator[Connection]:
    connection = Connection(port, host)
    try:
        yield connection
    finally:
        connection.close()


def roundtrip(
    port: int, codec: Codec, count: int = 1, *, pipelined: bool = False
) -> list[Response]:
    with connect(port) as conn:
        if pipelined:
            conn.send(codec.request_bytes() * count)
            return conn.receive(codec, count)
        got = []
        for _ in range(count):
            conn.send(codec.request_bytes())
            got += conn.receive(codec, 1)
        return got


# --- nginx ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/", Response(200, 2)),
        ("/static/file.bin", Response(200, NGINX_STATIC_BYTES)),
        ("/missing-teapot", (404, "http_4xx")),  # bodies: nginx's own error pages
        ("/unavailable", (503, "http_5xx")),
        ("/moved", (301, None)),  # a redirect is an answer by default (not followed)
    ],
)
def test_nginx_responses(
    nginx_port: int, path: str, expected: Response | tuple[int, str | None]
) -> None:
    codec = Http1Codec(host=f"127.0.0.1:{nginx_port}", path=path)
    (response,) = roundtrip(nginx_port, codec)
    if isinstance(expected, Response):
        assert response == expected
        assert codec.status_kind(response.status) is None
    else:
        assert (response.status, codec.status_kind(response.status)) == expected
        assert response.body_bytes > 0
    assert not codec.closing


def test_nginx_keep_alive_and_pipelining(nginx_port: int) -> None:
    codec = Http1Codec(host="localhost", path="/")
    with connect(nginx_port) as conn:
        for _ in range(200):  # one connection, one request at a time
            conn.send(codec.request_bytes())
            assert conn.receive(codec, 1) == [Response(200, 2)]
        conn.send(codec.request_bytes() * 100)  # then 100 back to back
        assert conn.receive(codec, 100) == [Response(200, 2)] * 100
    static = Http1Codec(path="/static/file.bin")
    assert (
        roundtrip(nginx_port, static, 20, pipelined=True)
        == [Response(200, NGINX_STATIC_BYTES)] * 20
    )


def test_nginx_chunked(nginx_port: int) -> None:
    codec = Http1Codec(path="/gzip/file.bin", headers={"Accept-Encoding": "gzip"})
    with connect(nginx_port) as conn:
        conn.send(codec.request_bytes() * 3)
        responses = conn.receive(codec, 3)
        head = bytes(conn.raw[: conn.raw.index(b"\r\n\r\n")]).lower()
    assert b"transfer-encoding: chunked" in head and b"content-encoding: gzip" in head
    assert {r.status for r in responses} == {200}
    assert 0 < responses[0].body_bytes < NGINX_STATIC_BYTES  # compressed, de-chunked
    assert len({r.body_bytes for r in responses}) == 1


def test_nginx_connection_close(nginx_port: int) -> None:
    codec = Http1Codec(path="/close")
    with connect(nginx_port) as conn:
        conn.send(codec.request_bytes())
        assert conn.receive(codec, 1) == [Response(200, 3)]
        assert codec.closing
        assert conn.at_eof()
    # Asking for the close ourselves does the same.
    asks = Http1Codec(headers={"Connection": "close"})
    assert roundtrip(nginx_port, asks) == [Response(200, 2)]
    assert asks.closing


def test_nginx_head_then_get(nginx_port: int) -> None:
    head = Http1Codec(method="HEAD", path="/static/file.bin")
    get = Http1Codec(path="/static/file.bin")
    with connect(nginx_port) as conn:
        conn.send(head.request_bytes() * 3)
        assert conn.receive(head, 3) == [Response(200, 0)] * 3
        conn.send(get.request_bytes())
        assert conn.receive(get, 1) == [Response(200, NGINX_STATIC_BYTES)]


def test_nginx_post_with_body(nginx_port: int) -> None:
    # nginx answers 405 to a POST on a static file, after reading the body we sent.
    codec = Http1Codec(method="POST", path="/static/file.bin", body=b"x" * 5000)
    (response,) = roundtrip(nginx_port, codec)
    assert codec.status_kind(response.status) == "http_4xx"


# --- the built-in target (loadgen serve http) ---------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/", Response(200, 2)),
        ("/anything/else?q=1", Response(200, 2)),
        ("/bytes/0", Response(200, 0)),
        ("/bytes/100000", Response(200, 100_000)),
        ("/chunked/0", Response(200, 0)),
        ("/chunked/5000", Response(200, 5000)),
        ("/status/204", Response(204, 0)),
        ("/status/404", Response(404, 9)),  # "Not Found"
        ("/status/503", Response(503, 19)),  # "Service Unavailable"
        ("/status/99", Response(400, len("status wants a number in 200..599"))),
        ("/bytes/x", Response(400, len(f"bytes wants a number in 0..{MAX_BODY_BYTES}"))),
    ],
)
def test_target_routes(http_target: tuple[str, int], path: str, expected: Response) -> None:
    host, port = http_target
    codec = Http1Codec(host=f"{host}:{port}", path=path)
    assert roundtrip(port, codec, 3) == [expected] * 3


def test_target_chunked_is_chunked(http_target: tuple[str, int]) -> None:
    codec = Http1Codec(path="/chunked/5000")
    with connect(http_target[1]) as conn:
        conn.send(codec.request_bytes())
        assert conn.receive(codec, 1) == [Response(200, 5000)]
    assert b"Transfer-Encoding: chunked" in conn.raw
    assert conn.raw.count(b"\r\n400\r\n") == 4  # 1024-byte chunks, then 904, then 0


def test_target_pipelining_keeps_order(http_target: tuple[str, int]) -> None:
    port = http_target[1]
    codecs = [Http1Codec(path=p) for p in ("/bytes/10", "/delay/30", "/status/404", "/chunked/3")]
    reader = Http1Codec()  # all responses are read through one parser, in order
    with connect(port) as conn:
        conn.send(b"".join(c.request_bytes() for c in codecs) * 25)
        got = conn.receive(reader, 100)
    assert got == [Response(200, 10), Response(200, 2), Response(404, 9), Response(200, 3)] * 25


def test_target_delay(http_target: tuple[str, int]) -> None:
    codec = Http1Codec(path="/delay/120")
    start = time.monotonic()
    assert roundtrip(http_target[1], codec) == [Response(200, 2)]
    assert time.monotonic() - start >= 0.12


#: SO_TIMESTAMPNS (also the control message's type), from Linux's asm-generic/socket.h:
#: Python's socket module does not name it.
SO_TIMESTAMPNS = 35


def _read_stamped(conn: Connection, codec: Codec) -> int | None:
    """Read one response; when (CLOCK_REALTIME, ns) the kernel received its first bytes,
    or None when that segment carries no stamp."""
    arrived: int | None = None
    first = True
    while (response := codec.next_response()) is None:
        data, ancillary, _, _ = conn.sock.recvmsg(65536, socket.CMSG_SPACE(16))
        assert data, "connection closed before the response"
        for level, kind, stamp in ancillary:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and first:
                seconds, nanoseconds = struct.unpack("qq", stamp[:16])
                arrived = seconds * 1_000_000_000 + nanoseconds
        first = False
        codec.receive_data(memoryview(data))
    assert response == Response(200, 2)
    return arrived


def _stamp_arrivals(conn: Connection) -> None:
    """Have the kernel stamp what this socket receives (SO_TIMESTAMPNS). Linux turns
    stamping on for the whole machine a moment after the first socket asks (a deferred
    static key), so round trips go until one comes back stamped."""
    conn.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        codec = Http1Codec()
        conn.send(codec.request_bytes())
        if _read_stamped(conn, codec) is not None:
            return
        assert time.monotonic() < deadline, "the kernel never stamped a receive"
        time.sleep(0.01)


def _arrival_ns(conn: Connection, codec: Codec) -> int:
    """Read one response; when the kernel received its first bytes (``_stamp_arrivals``
    first): not when this thread got round to reading them."""
    arrived = _read_stamped(conn, codec)
    assert arrived is not None, "no receive stamp"
    return arrived


@pytest.mark.skipif(sys.platform != "linux", reason="kernel receive stamps: Linux's")
def test_target_delay_holds_up_only_its_own_connection(http_target: tuple[str, int]) -> None:
    """A delayed response does not hold up another connection's: the other one's answer
    reaches this machine's kernel first. Arrival times are the kernel's receive stamps, so
    however late this thread is scheduled to read them, the order and gaps are the
    server's: a server that waited out the delay before answering the other connection
    (or answered it in the same breath) would stamp it after, or with, the delayed one."""
    delay_s = 0.4
    slow, fast = Http1Codec(path=f"/delay/{int(delay_s * 1000)}"), Http1Codec()
    with connect(http_target[1]) as waiting, connect(http_target[1]) as other:
        _stamp_arrivals(waiting)
        _stamp_arrivals(other)
        sent_ns = time.time_ns()
        waiting.send(slow.request_bytes())
        other.send(fast.request_bytes())
        fast_ns = _arrival_ns(other, fast)
        slow_ns = _arrival_ns(waiting, slow)
    assert fast_ns < slow_ns
    assert slow_ns - sent_ns >= delay_s * 1e9 * 0.99  # the delay was served as asked


def test_target_request_split_across_receives(http_target: tuple[str, int]) -> None:
    codec = Http1Codec(path="/bytes/5", headers={"X-Padding": "p" * 3000})
    request = codec.request_bytes()
    with connect(http_target[1]) as conn:
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for start in range(0, len(request), 700):
            conn.send(request[start : start + 700])
            time.sleep(0.01)  # let each piece arrive as its own receive
        assert conn.receive(codec, 1) == [Response(200, 5)]


def test_target_close(http_target: tuple[str, int]) -> None:
    codec = Http1Codec(path="/close")
    with connect(http_target[1]) as conn:
        conn.send(codec.request_bytes())
        assert conn.receive(codec, 1) == [Response(200, 2)]
        assert codec.closing
        assert conn.at_eof()


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"GET / HTTP/1.0\r\n\r\n",
    ],
    ids=["Connection: close", "HTTP/1.0"],
)
def test_target_closes_when_asked(http_target: tuple[str, int], request_bytes: bytes) -> None:
    codec = Http1Codec()
    with connect(http_target[1]) as conn:
        conn.send(request_bytes)
        assert conn.receive(codec, 1) == [Response(200, 2)]
        assert codec.closing
        assert conn.at_eof()


def test_target_head_and_post(http_target: tuple[str, int]) -> None:
    port = http_target[1]
    head = Http1Codec(method="HEAD", path="/bytes/1000")
    assert roundtrip(port, head, 5, pipelined=True) == [Response(200, 0)] * 5
    post = Http1Codec(method="POST", path="/bytes/7", body=b"b" * 40_000)
    assert roundtrip(port, post, 5, pipelined=True) == [Response(200, 7)] * 5


def test_target_answers_garbage_with_400_and_closes(http_target: tuple[str, int]) -> None:
    codec = Http1Codec()
    with connect(http_target[1]) as conn:
        conn.send(codec.request_bytes() + b"NOT HTTP\r\n\r\n")
        assert conn.receive(codec, 2) == [Response(200, 2), Response(400, conn_body(conn))]
        assert codec.closing
        assert conn.at_eof()


def conn_body(conn: Connection) -> int:
    """Body size of the last response in ``conn.raw`` (the 400's text is llhttp's)."""
    last = bytes(conn.raw[conn.raw.rindex(b"HTTP/1.1 ") :])
    return len(last) - last.index(b"\r\n\r\n") - 4


def test_target_many_connections(http_target: tuple[str, int]) -> None:
    port = http_target[1]
    codec = Http1Codec()
    conns = [Connection(port) for _ in range(50)]
    try:
        for _ in range(3):
            for conn in conns:
                conn.send(codec.request_bytes())
            for conn in conns:
                assert conn.receive(codec, 1) == [Response(200, 2)]
    finally:
        for conn in conns:
            conn.close()


# --- redis-server ---------------------------------------------------------------------------


def command(port: int, *args: bytes | str | int) -> tuple[Response, RespCodec]:
    codec = RespCodec(args)
    (response,) = roundtrip(port, codec)
    return response, codec


def test_redis_ping_set_get(redis_port: int) -> None:
    assert command(redis_port, "PING")[0] == Response(0, 4)  # +PONG
    value = bytes(range(256)) * 40  # CR and LF inside the value
    assert command(redis_port, "SET", "loadgen:k", value)[0] == Response(0, 2)  # +OK
    assert command(redis_port, "GET", "loadgen:k")[0] == Response(0, len(value))
    assert command(redis_port, "GET", "loadgen:missing")[0] == Response(0, 0)  # null bulk
    assert command(redis_port, "DEL", "loadgen:k")[0] == Response(0, 1)  # :1


def test_redis_error_replies(redis_port: int) -> None:
    response, codec = command(redis_port, "GET")  # wrong number of arguments
    assert response.status == 1 and codec.status_kind(response.status) == "redis_error"
    assert codec.last_error is not None and codec.last_error.startswith("ERR wrong number")
    command(redis_port, "SET", "loadgen:text", "abc")
    response, codec = command(redis_port, "INCR", "loadgen:text")
    assert response.status == 1 and codec.last_error is not None
    assert "not an integer" in codec.last_error
    response, codec = command(redis_port, "NOSUCHCOMMAND")
    assert response.status == 1


def test_redis_pipelined(redis_port: int) -> None:
    set_codec = RespCodec(("SET", "loadgen:p", "v" * 100))
    get_codec = RespCodec(("GET", "loadgen:p"))
    with connect(redis_port) as conn:
        conn.send(set_codec.request_bytes() * 10)
        assert conn.receive(set_codec, 10) == [Response(0, 2)] * 10
        conn.send(get_codec.request_bytes() * 10)
        assert conn.receive(get_codec, 10) == [Response(0, 100)] * 10
        # Mixed, with an error in the middle: replies stay in order.
        reader = RespCodec()
        conn.send(
            b"".join(
                RespCodec(args).request_bytes()
                for args in [("PING",), ("INCR", "loadgen:p"), ("GET", "loadgen:p")] * 5
            )
        )
        replies = conn.receive(reader, 15)
        assert [r.status for r in replies] == [0, 1, 0] * 5
        assert [r.body_bytes for r in replies[::3]] == [4] * 5  # PONG
        assert [r.body_bytes for r in replies[2::3]] == [100] * 5


def test_redis_arrays_and_large_values(redis_port: int) -> None:
    command(redis_port, "DEL", "loadgen:list")
    items = [str(i) * (i % 7 + 1) for i in range(500)]
    assert command(redis_port, "RPUSH", "loadgen:list", *items)[0].status == 0
    response, _ = command(redis_port, "LRANGE", "loadgen:list", 0, -1)
    assert response == Response(0, sum(len(i) for i in items))
    big = b"\r\n" * (512 * 1024)  # 1 MiB, arriving over many receives
    command(redis_port, "SET", "loadgen:big", big)
    assert command(redis_port, "GET", "loadgen:big")[0] == Response(0, len(big))
    response, _ = command(redis_port, "MGET", "loadgen:big", "loadgen:missing", "loadgen:big")
    assert response == Response(0, 2 * len(big))


def test_redis_close_is_clean_between_replies(redis_port: int) -> None:
    codec = RespCodec(("QUIT",))
    with connect(redis_port) as conn:
        conn.send(codec.request_bytes())
        assert conn.receive(codec, 1) == [Response(0, 2)]
        assert conn.at_eof()
        codec.receive_data(b"")  # nothing half-parsed: no eof error


def test_resp_against_an_http_server(nginx_port: int) -> None:
    # nginx answers a RESP command with "HTTP/1.1 400 Bad Request": not RESP.
    with pytest.raises(ProtocolError) as caught:
        roundtrip(nginx_port, RespCodec(("PING",)))
    assert caught.value.kind == "protocol"
