"""The shape request/response codecs share, and the error they raise.

A codec is sans-IO (h11's model): it never touches a socket, a clock or the engine. The
client asks it once for the bytes of a request, sends them as often as it likes (back to
back for pipelining), feeds whatever the socket returns into ``receive_data`` and pulls
finished responses out of ``next_response`` until it returns ``None``:

    codec = Http1Codec(host="127.0.0.1:8080")
    request = codec.request_bytes()          # built once, the same object every time
    ...send request...
    codec.receive_data(view[:n])             # any split: a byte, a response and a half, ten
    while (response := codec.next_response()) is not None:
        kind = codec.status_kind(response.status)   # None = success, else an error kind
    if codec.closing: ...reconnect, then codec.reset()

``Response`` is deliberately tiny (status and body size) so a hot loop can count and time
responses without a per-header Python object; what a status means is the codec's
``status_kind`` (``http_4xx``, ``redis_error``, ...), so the client needs no protocol
knowledge to count errors by kind.

A peer that breaks the protocol raises ``ProtocolError`` from ``receive_data``: ``kind``
is the error kind to count (``protocol`` for bytes that are not the protocol, ``eof`` for
a connection that ended in the middle of a response) and ``message`` says what the *server*
did wrong. Responses that completed before the bad bytes stay available from
``next_response``; the connection itself is done for and must be closed (then ``reset``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

#: Error kinds a codec reports (beside the engine's ``ErrorKind`` values, which they extend).
#: Bytes a codec reads: a receive buffer (or a view of it) as the engine filled it.
Buffer = bytearray | memoryview

KIND_PROTOCOL = "protocol"  # the peer sent bytes that are not the protocol
KIND_EOF = "eof"  # the peer closed in the middle of a response


@dataclass(frozen=True, slots=True)
class Response:
    """One complete response: its status (HTTP status code; RESP 0 = ok, 1 = error reply)
    and the size of its payload in bytes (an HTTP body after de-chunking; RESP data bytes
    without the framing)."""

    status: int
    body_bytes: int


class ProtocolError(Exception):
    """The peer broke the protocol. ``kind`` is the error kind to count, ``message`` says how."""

    def __init__(self, message: str, kind: str = KIND_PROTOCOL) -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind

    def __repr__(self) -> str:
        return f"ProtocolError(kind={self.kind!r}, message={self.message!r})"


class Codec(Protocol):
    """What the client drives: one request shape, a stream of responses, one connection."""

    @property
    def closing(self) -> bool:
        """The peer said it closes the connection after the last response returned."""
        ...

    def request_bytes(self) -> bytes:
        """The encoded request, built once at construction (the same object every call)."""
        ...

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Feed bytes from the connection; ``b""`` means the peer closed it (EOF).

        Raises ``ProtocolError`` when the peer broke the protocol. Never keeps a reference
        to ``data`` after returning, so the caller may reuse its receive buffer.
        """
        ...

    def next_response(self) -> Response | None:
        """The oldest complete response not yet returned, or ``None``."""
        ...

    def reset(self) -> None:
        """Forget the connection (after a reconnect); the request bytes stay."""
        ...

    def status_kind(self, status: int) -> str | None:
        """``None`` when ``status`` is a success, else the error kind to count it under."""
        ...


class ResponseCache:
    """Interned ``Response`` objects: a frozen dataclass costs ~0.3-0.5 us to build, a dict
    hit ~40 ns, and a benchmark sees the same few (status, size) pairs over and over."""

    __slots__ = ("_items",)

    #: Distinct (status, size) pairs kept; beyond this, responses are built and not kept
    #: (a server with random body sizes must not grow the cache without bound).
    MAX_ITEMS = 4096

    def __init__(self) -> None:
        self._items: dict[int, Response] = {}

    def get(self, status: int, body_bytes: int) -> Response:
        key = body_bytes << 16 | status  # statuses are < 1000 (HTTP) or 0/1 (RESP)
        response = self._items.get(key)
        if response is None:
            response = Response(status, body_bytes)
            if len(self._items) < self.MAX_ITEMS:
                self._items[key] = response
        return response
