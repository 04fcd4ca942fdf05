"""Small TCP servers for tests (mostly misbehaving ones): each runs in a thread on a loopback port.

They are real servers on real sockets; each misbehaves in one way a target can.
"""

from __future__ import annotations

import selectors
import socket
import struct
import threading
from collections.abc import Iterator
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
)
#: The bulk string "resp_huge" answers every request with: large enough that buffering it
#: shows in RSS at once, small enough to cross loopback in well under a second.
HUGE_BULK_BYTES = 200_000_000
#: What "resp_absurd" streams after announcing a 1e9-byte bulk string, unless the client
#: hangs up first (it should at once): a bound so the server never streams forever.
ABSURD_STREAM_BYTES = 64 * 1024 * 1024
_STREAM_CHUNK = b"x" * (1024 * 1024)


def _stream(conn: socket.socket, header: bytes, size: int, trailer: bytes) -> None:
    """Send ``header``, ``size`` filler bytes and ``trailer``; stop when the peer leaves."""
    conn.setblocking(True)
    try:
        conn.sendall(header)
        for _ in range(size // len(_STREAM_CHUNK)):
            conn.sendall(_STREAM_CHUNK)
        conn.sendall(_STREAM_CHUNK[: size % len(_STREAM_CHUNK)] + trailer)
        conn.setblocking(False)
    except OSError:
        pass  # the client hung up


def _serve(server: socket.socket, behaviour: str, stop: threading.Event, peers: list[str]) -> None:
    selector = selectors.DefaultSelector()
    selector.register(server, selectors.EVENT_READ)
    held: list[socket.socket] = []
    while not stop.is_set():
        for key, _ in selector.select(0.05):
            if key.fileobj is server:
                conn, peer = server.accept()
                peers.append(peer[0])
                conn.setblocking(False)
                held.append(conn)
                selector.register(conn, selectors.EVENT_READ)
                continue
            conn = key.fileobj  # type: ignore[assignment]
            try:
                data = conn.recv(65536)
            except OSError:
                data = b""
            if not data:
                selector.unregister(conn)
                conn.close()
            elif behaviour == "echo":
                conn.setblocking(True)
                conn.sendall(data)
                conn.setblocking(False)
            elif behaviour == "http10":  # a body delimited by closing the connection
                conn.setblocking(True)
                conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nhello")
                selector.unregister(conn)
                conn.close()
            elif behaviour == "http_cut":  # promises 100 bytes of body, sends 10, closes
                conn.setblocking(True)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
                selector.unregister(conn)
                conn.close()
            elif behaviour == "resp_huge":  # a valid, very large bulk string per request
                _stream(conn, b"$%d\r\n" % HUGE_BULK_BYTES, HUGE_BULK_BYTES, b"\r\n")
            elif behaviour == "resp_absurd":  # announces 1e9 bytes, then streams filler
                _stream(conn, b"$1000000000\r\n", ABSURD_STREAM_BYTES, b"")
            elif behaviour == "corrupt":
                echo = bytearray(data)
                echo[-1] ^= 0xFF
                conn.sendall(echo)
            elif behaviour in ("close", "reset"):
                if behaviour == "reset":
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                selector.unregister(conn)
                conn.close()
            # "silent": read and never answer
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
