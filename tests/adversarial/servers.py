"""Small TCP servers for tests (mostly misbehaving ones): each runs in a thread on a loopback port.

They are real servers on real sockets; each misbehaves in one way a target can. The
adversarial suite (``tests/adversarial``) runs every backend and receive mode against them;
other tests use them for one behaviour each.

* ``echo``: the good one (echoes what it reads); ``corrupt``: echoes with the last byte
  flipped; ``close``: reads, then closes in order (FIN); ``reset``: reads, then resets
  (SO_LINGER 0: RST); ``silent``: reads and never answers;
* ``reset_on_accept``: resets each connection as soon as it accepts it, before reading;
* HTTP: ``http10`` (a body delimited by the close), ``http_cut`` (promises more body than it
  sends), ``http_malformed`` (a Content-Length that is not a number), ``http_endless`` (a
  chunked body that goes on until the client hangs up, or ``ENDLESS_STREAM_BYTES``);
* RESP: ``resp_huge`` (a valid, very large bulk string), ``resp_absurd`` (announces 1e9
  bytes and streams), ``resp_malformed`` (a reply whose type byte is no RESP type),
  ``resp_nested`` (arrays of one array, nested on and on: ``*1\r\n`` repeated),
  ``resp_dense`` (an array of 500 million one-digit integers: the costliest bytes to parse,
  4 bytes an element, streamed until the client hangs up or ``ENDLESS_STREAM_BYTES``).

``KillableServer`` is an echo server that can be killed (its listener and every connection
closed, as the kernel does for a killed process) and restarted on the same port.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import struct
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

BEHAVIOURS = (
    "echo",
    "corrupt",
    "close",
    "reset",
    "silent",
    "http10",
    "http_cut",
    "resp_huge",
    "resp_absurd",
    "http_malformed",
    "http_endless",
    "resp_malformed",
    "resp_nested",
    "resp_dense",
    "reset_on_accept",
)
#: The bulk string "resp_huge" answers every request with: large enough that buffering it
#: shows in RSS at once, small enough to cross loopback in well under a second.
HUGE_BULK_BYTES = 200_000_000
#: What "resp_absurd" streams after announcing a 1e9-byte bulk string, unless the client
#: hangs up first (it should at once): a bound so the server never streams forever.
ABSURD_STREAM_BYTES = 64 * 1024 * 1024
_STREAM_CHUNK = b"x" * (1024 * 1024)
#: What "http_endless" streams at most (chunks of ``_STREAM_CHUNK``) unless the client
#: hangs up first, as it should once the body passes its ``max_body``.
ENDLESS_STREAM_BYTES = 64 * 1024 * 1024
_ENDLESS_CHUNK = b"%x\r\n%s\r\n" % (len(_STREAM_CHUNK), _STREAM_CHUNK)
#: What "resp_nested" streams at most (``*1\r\n``, 4 bytes a level): far deeper than any
#: reply, small enough to send at once.
NESTED_STREAM_BYTES = 1024 * 1024
#: A status line and headers whose Content-Length is not a number: no HTTP/1.1 parser can
#: frame the body.
HTTP_MALFORMED_REPLY = b"HTTP/1.1 200 OK\r\nContent-Length: twelve\r\n\r\nhello world!"
#: "?" is no RESP2 type byte (``+ - : $ *``).
RESP_MALFORMED_REPLY = b"?what\r\n"
_FIXED_REPLIES = {"http_malformed": HTTP_MALFORMED_REPLY, "resp_malformed": RESP_MALFORMED_REPLY}


def _stream(conn: socket.socket, pieces: Iterable[bytes]) -> None:
    """Send ``pieces`` one after another (``OSError`` if the peer leaves meanwhile)."""
    conn.setblocking(True)
    for piece in pieces:
        conn.sendall(piece)
    conn.setblocking(False)


def _filler(header: bytes, size: int, trailer: bytes) -> Iterator[bytes]:
    """``header``, ``size`` filler bytes and ``trailer``, a chunk at a time."""
    yield header
    for _ in range(size // len(_STREAM_CHUNK)):
        yield _STREAM_CHUNK
    yield _STREAM_CHUNK[: size % len(_STREAM_CHUNK)] + trailer


def _answer(conn: socket.socket, behaviour: str, data: bytes) -> bool:
    """Answer what ``conn`` sent as ``behaviour`` does; False when the connection is done
    (closed by the behaviour). An ``OSError`` means the client left meanwhile."""
    if behaviour == "echo":
        _stream(conn, [data])
    elif behaviour == "http10":  # a body delimited by closing the connection
        _stream(conn, [b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nhello"])
        return False
    elif behaviour == "http_cut":  # promises 100 bytes of body, sends 10, closes
        _stream(conn, [b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789"])
        return False
    elif behaviour == "resp_huge":  # a valid, very large bulk string per request
        _stream(conn, _filler(b"$%d\r\n" % HUGE_BULK_BYTES, HUGE_BULK_BYTES, b"\r\n"))
    elif behaviour in _FIXED_REPLIES:  # the same malformed reply to anything
        _stream(conn, [_FIXED_REPLIES[behaviour]])
    elif behaviour == "corrupt":
        echo = bytearray(data)
        echo[-1] ^= 0xFF
        _stream(conn, [bytes(echo)])
    elif behaviour in ("close", "reset"):
        if behaviour == "reset":
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        return False
    # "silent": read and never answer
    return True


def _endless(behaviour: str) -> Iterator[bytes]:
    """What an endless behaviour streams (a reply the client must give up on)."""
    if behaviour == "resp_absurd":  # announces 1e9 bytes, then streams filler
        yield from _filler(b"$1000000000\r\n", ABSURD_STREAM_BYTES, b"")
    elif behaviour == "http_endless":  # a chunked body with no last chunk in sight
        yield b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        yield from [_ENDLESS_CHUNK] * (ENDLESS_STREAM_BYTES // len(_STREAM_CHUNK))
    elif behaviour == "resp_nested":  # an array of an array of an array of ...
        levels = b"*1\r\n" * (len(_STREAM_CHUNK) // 4 // 16)  # 64 KiB of them
        yield from [levels] * (NESTED_STREAM_BYTES // len(levels))
    elif behaviour == "resp_dense":  # a valid array, as costly to parse as bytes can be
        integers = b":1\r\n" * (len(_STREAM_CHUNK) // 4)
        yield b"*500000000\r\n"
        yield from [integers] * (ENDLESS_STREAM_BYTES // len(integers))


#: Behaviours whose one answer streams until the client gives up: each connection gets a
#: thread of its own for it, so one slow reader never holds up the others' answers.
ENDLESS = ("resp_absurd", "http_endless", "resp_nested", "resp_dense")


def _stream_endless(conn: socket.socket, behaviour: str) -> None:
    with contextlib.suppress(OSError):  # the client hung up (or the server was stopped)
        _stream(conn, _endless(behaviour))
    conn.close()


def _serve(server: socket.socket, behaviour: str, stop: threading.Event, peers: list[str]) -> None:
    """Serve until ``stop``; a client that misbehaves in turn (leaves mid-answer, resets)
    loses its connection, never the server its thread."""
    selector = selectors.DefaultSelector()
    selector.register(server, selectors.EVENT_READ)
    held: list[socket.socket] = []
    while not stop.is_set():
        for key, _ in selector.select(0.05):
            if key.fileobj is server:
                try:
                    conn, peer = server.accept()
                except OSError:  # the client gave up between its SYN and our accept
                    continue
                peers.append(peer[0])
                if behaviour == "reset_on_accept":
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    conn.close()
                    continue
                conn.setblocking(False)
                held.append(conn)
                selector.register(conn, selectors.EVENT_READ)
                continue
            conn = key.fileobj  # type: ignore[assignment]
            try:
                data = conn.recv(65536)
                if data and behaviour in ENDLESS:  # the connection is the thread's now
                    selector.unregister(conn)
                    streamer = threading.Thread(
                        target=_stream_endless, args=(conn, behaviour), daemon=True
                    )
                    streamer.start()
                    continue
                keep = bool(data) and _answer(conn, behaviour, data)
            except OSError:  # reset by the client, or it left in the middle of an answer
                keep = False
            if not keep:
                selector.unregister(conn)
                conn.close()
    for conn in held:
        conn.close()
    selector.close()


@contextmanager
def bad_target(behaviour: str, peers: list[str] | None = None) -> Iterator[tuple[str, int]]:
    """A server on 127.0.0.1 that behaves as named in ``BEHAVIOURS`` ("echo" is the good
    one); the address of every peer it accepts is appended to ``peers``."""
    assert behaviour in BEHAVIOURS
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(128)
    stop = threading.Event()
    thread = threading.Thread(
        target=_serve, args=(server, behaviour, stop, [] if peers is None else peers), daemon=True
    )
    thread.start()
    try:
        yield server.getsockname()
    finally:
        stop.set()
        thread.join(5)
        server.close()


def free_port() -> int:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port: int = probe.getsockname()[1]
    probe.close()
    return port


class KillableServer:
    """A server (``behaviour``, default echo) on a fixed 127.0.0.1 port that can be killed and
    restarted: ``kill()`` closes its listener and every connection at once, as the kernel does
    when a server process dies (connects are then refused), and ``restart()`` listens on the
    same port again. Use it as a context manager; it listens on entry."""

    def __init__(self, behaviour: str = "echo") -> None:
        assert behaviour in BEHAVIOURS
        self.behaviour = behaviour
        self.port = 0  # chosen by the first bind, kept by every restart
        self.peers: list[str] = []  # the address of every connection accepted, all lives
        self._server: socket.socket | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    @property
    def alive(self) -> bool:
        return self._server is not None

    def restart(self) -> None:
        assert self._server is None, "already listening"
        server = socket.socket()
        # The killed listener's port may still have connections in TIME_WAIT.
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen(128)
        self.port = server.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=_serve, args=(server, self.behaviour, self._stop, self.peers), daemon=True
        )
        self._thread.start()
        self._server = server

    def kill(self) -> None:
        assert self._server is not None and self._thread is not None, "not listening"
        self._stop.set()
        self._thread.join(5)
        self._server.close()
        self._server = None

    def __enter__(self) -> KillableServer:
        self.restart()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._server is not None:
            self.kill()
