"""An HTTP/1.1 server for tests that records every request it parses, per connection.

It runs in a thread on a loopback port, parses with llhttp (``httptools``, as the built-in
target does: a request whose framing is wrong, e.g. a Content-Length that does not match its
body, breaks the parse and is answered 400 with the connection closed), and answers each
request ``200 ok`` with keep-alive. What loadgen sent is then there to check: the order of
a connection's requests, the values its variables took, headers and bodies.
"""

from __future__ import annotations

import selectors
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import httptools

_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok"
_BAD = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


@dataclass
class Recorded:
    connection: int  # the order in which the server accepted the connection
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Recording:
    requests: list[Recorded] = field(default_factory=list)
    bad_requests: int = 0  # requests the parser rejected
    lock: threading.Lock = field(default_factory=threading.Lock)

    def by_connection(self) -> dict[int, list[Recorded]]:
        with self.lock:
            grouped: dict[int, list[Recorded]] = {}
            for request in self.requests:
                grouped.setdefault(request.connection, []).append(request)
            return grouped

    def snapshot(self) -> list[Recorded]:
        with self.lock:
            return list(self.requests)


class _Parsing:
    """llhttp's callbacks for one connection."""

    def __init__(self, connection: int, recording: Recording) -> None:
        self.connection = connection
        self.recording = recording
        self.parser = httptools.HttpRequestParser(self)
        self.answers = 0
        self._url = b""
        self._headers: dict[str, str] = {}
        self._body = b""

    def on_message_begin(self) -> None:
        self._url, self._headers, self._body = b"", {}, b""

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self._body += body

    def on_message_complete(self) -> None:
        request = Recorded(
            self.connection,
            self.parser.get_method().decode(),
            self._url.decode("latin-1"),
            self._headers,
            self._body,
        )
        with self.recording.lock:
            self.recording.requests.append(request)
        self.answers += 1


def _serve(server: socket.socket, recording: Recording, stop: threading.Event) -> None:
    selector = selectors.DefaultSelector()
    selector.register(server, selectors.EVENT_READ)
    accepted = 0
    while not stop.is_set():
        for key, _ in selector.select(0.05):
            if key.fileobj is server:
                conn, _ = server.accept()
                conn.setblocking(True)
                selector.register(conn, selectors.EVENT_READ, _Parsing(accepted, recording))
                accepted += 1
                continue
            conn = key.fileobj  # type: ignore[assignment]
            parsing: _Parsing = key.data
            try:
                data = conn.recv(65536)
            except OSError:
                data = b""
            if not data:
                selector.unregister(conn)
                conn.close()
                continue
            try:
                parsing.parser.feed_data(data)
            except httptools.HttpParserError:
                with recording.lock:
                    recording.bad_requests += 1
                conn.sendall(_BAD)
                selector.unregister(conn)
                conn.close()
                continue
            if parsing.answers:
                conn.sendall(_OK * parsing.answers)
                parsing.answers = 0
    for key in list(selector.get_map().values()):
        if key.fileobj is not server:
            key.fileobj.close()  # type: ignore[union-attr]
    selector.close()


@contextmanager
def recording_http() -> Iterator[tuple[int, Recording]]:
    """(port on 127.0.0.1, the recording) of a server that answers every request 200."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(128)
    recording = Recording()
    stop = threading.Event()
    thread = threading.Thread(target=_serve, args=(server, recording, stop), daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1], recording
    finally:
        stop.set()
        thread.join(5)
        server.close()
