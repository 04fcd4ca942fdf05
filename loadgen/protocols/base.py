"""The shape request/response codecs share (echo, HTTP/1.1, RESP), and the error they raise.

A codec is sans-IO (h11's model): it never touches a socket, a clock or the engine. The
client asks it for the bytes of each request (``next_request``: the same buffer every time
for a fixed request such as an HTTP GET, which the client may repeat back to back to
pipeline; a fresh numbered message each time for echo), feeds whatever the socket returns
into ``receive_data`` and pulls finished responses out of ``next_response`` until it
returns ``None``:

    codec = Http1Codec(host="127.0.0.1:8080")
    request = codec.next_request()
    ...send request...
    codec.receive_data(view[:n])             # any split: a byte, a response and a half, ten
    while (response := codec.next_response()) is not None:
        kind = codec.status_kind(response.status)   # None = success, else an error kind
    if codec.closing: ...reconnect, then codec.reset()

A load client does the same in one call per received chunk, ``receive(buffer, n)``: it
feeds the first ``n`` bytes of its receive buffer (``n == 0``: the peer closed) and returns
how many responses they completed, leaving in ``failures`` the position (among those) and
error kind of each whose status is not a success (the client counts them and clears the
list). That is the hot path of every run, so it allocates nothing per successful response.

``Response`` is deliberately tiny (status and body size) so a hot loop can count and time
responses without a per-header Python object; what a status means is the codec's
``status_kind`` (``http_4xx``, ``redis_error``, ...), so the client needs no protocol
knowledge to count errors by kind.

A peer that breaks the protocol raises ``ProtocolError`` from ``receive_data`` and
``receive``: ``kind`` is the error kind to count (``protocol`` for bytes that are not the
protocol, ``eof`` for a connection that ended in the middle of a response, ``verify`` for
an echo that differs from what was sent) and ``message`` says what the *server* did
wrong. Responses that completed before the bad bytes stay available from
``next_response``; the connection itself is done for and must be closed (then ``reset``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
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

    #: (index among the responses the last ``receive`` completed, error kind) of each whose
    #: status is not a success, in order; the caller counts them and clears the list.
    failures: list[tuple[int, str]]

    @property
    def closing(self) -> bool:
        """The peer said it closes the connection after the last response returned."""
        ...

    def next_request(self) -> Buffer:
        """The bytes of the next request, in a buffer the engine can send from, kept
        unchanged by the caller until sent. A fixed request (HTTP, RESP) is the same object
        every call (so N copies back to back are N pipelined requests); echo numbers each
        message, one in flight at a time."""
        ...

    def receive(self, data: Buffer | bytes, n: int) -> int:
        """Feed the first ``n`` bytes of ``data`` (``n == 0``: the peer closed) and take the
        responses they complete: return how many, with the failed ones appended to
        ``failures``. Raises ``ProtocolError`` like ``receive_data``."""
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


def take_responses(
    queue: deque[Response],
    failures: list[tuple[int, str]],
    status_kind: Callable[[int], str | None],
) -> int:
    """``Codec.receive``'s second half for codecs that queue ``Response`` objects: empty
    ``queue``, return how many it held, and append (index, error kind) of each failed one to
    ``failures``. Responses are mostly the same interned object, so a run of the same one is
    judged once."""
    count = len(queue)
    if count:
        last: Response | None = None
        kind: str | None = None
        for index, response in enumerate(queue):
            if response is not last:
                last, kind = response, status_kind(response.status)
            if kind is not None:
                failures.append((index, kind))
        queue.clear()
    return count


def first_bytes(data: Buffer | bytes, n: int) -> Buffer | bytes:
    """The first ``n`` bytes of a receive buffer, without a copy (the buffer itself when it
    holds exactly ``n``)."""
    return data if len(data) == n else memoryview(data)[:n]
