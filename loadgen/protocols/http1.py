"""HTTP/1.1 client codec, sans-IO, on llhttp (Node's parser) through ``httptools``.

Request side: the request is encoded once, at construction, from method, path, headers,
body and host; ``request_bytes()`` hands out that same ``bytes`` object for every send (and
N copies back to back are N pipelined requests).

Response side: ``receive_data`` feeds llhttp, whose callbacks append a ``Response(status,
body_bytes)`` per finished response; ``next_response`` pops them in order. Framing is
llhttp's: Content-Length, chunked (trailers allowed), no body for 204/304, keep-alive rules
of HTTP/1.0 and 1.1, several responses in one chunk and a response split at any byte. No
response bytes are buffered here: the body is only counted. Whether a status is a success
is the scenario's expectation (``status_kinds``; 200-399 by default): one outside it is an
error of its class (``http_4xx``, ``http_5xx``) or ``http_unexpected``.

A load test asks for the same thing over and over, so a server answers with the same bytes
over and over (until its ``Date`` header ticks): once a chunk that began between responses
held whole, equal, successful keep-alive responses and nothing else, it is kept (one per
length, so a request set's few different responses all stay), and a later chunk that
begins between responses and is the same bytes is counted as that many responses after one
comparison, without llhttp (identical bytes from the same parser state parse the same way);
so is one that is k copies of the last learnt response. Anything else (a cut response,
another status, another body, a close) takes the parser, which learns the new bytes when
they qualify.

Facts this module relies on (checked in ``tests/protocols/test_http1.py``):

* Interim responses (``100 Continue``, ``103 Early Hints``) are complete messages to llhttp;
  they answer nothing, so they are skipped. A ``101`` we did not ask for is a protocol error
  (httptools raises ``HttpParserUpgrade`` for it).
* After a response that ends the connection (``Connection: close``, or HTTP/1.0 without
  keep-alive) llhttp rejects any further byte ("Data after Connection: close"); ``closing``
  turns true once that response has been returned by ``next_response``.
* httptools has no ``llhttp_finish``: the end of the stream is ``receive_data(b"")`` here.
  A response whose headers are done, whose body is not chunked and whose server said it
  would close is then complete (its body ran to the close, as HTTP allows for bodies without
  a length). Any other close mid-response is a ``ProtocolError`` of kind ``eof``. One case
  cannot be told apart without per-header callbacks, which double the parse cost (measured
  ~0.8 -> ~1.6 us for nginx's six headers): a server that says ``Connection: close``,
  announces a Content-Length and closes before sending all of it is taken as a complete,
  shorter response. With keep-alive (the normal case) such a cut is always an ``eof``.
* llhttp cannot be told "this answers a HEAD" (httptools keeps the return value of
  ``on_headers_complete`` to itself), so for HEAD the codec finds each header block's end
  itself and starts a fresh parser after it: such responses never have a body on the wire.
"""

from __future__ import annotations

import functools
import re
from collections import deque
from collections.abc import Mapping, Sequence

import httptools

from loadgen.protocols.base import (
    KIND_EOF,
    Buffer,
    ProtocolError,
    Response,
    ResponseCache,
    first_bytes,
    take_responses,
)

#: The statuses a response may have and count as a success unless a scenario says otherwise
#: (``http.expect.status``): 2xx and 3xx (a redirect is not followed, but it is an answer).
DEFAULT_EXPECTED: tuple[tuple[int, int], ...] = ((200, 399),)
#: Error kinds of a status outside the expectation: its class for 4xx and 5xx, else this.
KIND_UNEXPECTED = "http_unexpected"

#: Methods whose request carries a body by definition: they get ``Content-Length: 0``
#: when the body is empty (RFC 9110 section 8.6; some servers answer 411 otherwise).
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
#: RFC 9110 token characters, for methods and header names.
TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
#: A HEAD response's header block larger than this is taken as garbage, not buffered on.
MAX_HEAD_BLOCK_BYTES = 64 * 1024
#: Default largest response body: far above what a load test's responses carry, far below
#: what an endless body could make a run wait for. Bodies are counted, never stored.
DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024
KIND_REPLY_TOO_LARGE = "reply_too_large"
#: Learnt chunks kept, one per length: a request set's few different responses (and their
#: pipelined multiples) each stay learnt; a server whose every response differs in length
#: only costs a clear now and then.
MAX_LEARNT_CHUNKS = 16

_RESPONSES = ResponseCache()

HeaderItems = Mapping[str, str] | Sequence[tuple[str, str]]


@functools.lru_cache(maxsize=64)
def status_kinds(
    expected: tuple[tuple[int, int], ...] = DEFAULT_EXPECTED,
) -> tuple[str | None, ...]:
    """The error kind of every status 0-999 (indexed by status): ``None`` for a status in one
    of the ``expected`` (low, high) ranges, else ``http_4xx``, ``http_5xx`` or
    ``http_unexpected``. Built once per expectation: a lookup per response."""
    kinds: list[str | None] = []
    for status in range(1000):
        if any(low <= status <= high for low, high in expected):
            kinds.append(None)
        elif status // 100 in (4, 5):
            kinds.append(f"http_{status // 100}xx")
        else:
            kinds.append(KIND_UNEXPECTED)
    return tuple(kinds)


def status_kind(
    status: int, expected: tuple[tuple[int, int], ...] = DEFAULT_EXPECTED
) -> str | None:
    """``None`` for an expected status, else its error kind (``status_kinds``)."""
    return status_kinds(expected)[status] if 0 <= status < 1000 else KIND_UNEXPECTED


def encode_request(
    method: str = "GET",
    path: str = "/",
    headers: HeaderItems = (),
    body: bytes = b"",
    host: str = "localhost",
) -> bytes:
    """One HTTP/1.1 request. ``Host`` comes from ``host`` unless ``headers`` has one;
    ``Content-Length`` is added for a body (or an empty POST/PUT/PATCH). Values that would
    break the framing (CR, LF, NUL, non-token names) raise ``ValueError``."""
    if not TOKEN.match(method):
        raise ValueError(f"HTTP method {method!r} is not a token")
    if not path or any(c in path for c in " \r\n\0") or not (path[0] == "/" or path == "*"):
        raise ValueError(f"HTTP path {path!r} must start with / and contain no spaces")
    items = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
    names = {name.lower() for name, _ in items}
    if "host" not in names:
        items.insert(0, ("Host", host))
    if "content-length" in names or "transfer-encoding" in names:
        raise ValueError("Content-Length and Transfer-Encoding are set by loadgen from the body")
    if body or method in BODY_METHODS:
        items.append(("Content-Length", str(len(body))))
    lines = [f"{method} {path} HTTP/1.1"]
    for name, value in items:
        if not TOKEN.match(name):
            raise ValueError(f"HTTP header name {name!r} is not a token")
        if any(c in value for c in "\r\n\0"):
            raise ValueError(f"HTTP header {name!r} has a line break or NUL in its value")
        lines.append(f"{name}: {value}")
    try:
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    except UnicodeEncodeError as exc:
        raise ValueError(f"HTTP request head is not Latin-1: {exc.object!r}") from None
    return head + body


class _Events:
    """llhttp's callbacks (httptools finds them by name). Kept apart from the codec so the
    codec's public surface is only the ``Codec`` methods."""

    __slots__ = (
        "body",
        "chunked",
        "close_seen",
        "head",
        "headers_done",
        "in_message",
        "max_body",
        "parser",
        "queue",
        "responses",
    )

    def __init__(self, head: bool, max_body: int) -> None:
        self.max_body = max_body  # bytes; past it the connection fails (checked after a feed)
        self.queue: deque[Response] = deque()
        self.responses = _RESPONSES
        self.head = head  # answering HEAD: no body, whatever the headers say
        self.body = 0
        self.in_message = False  # a response has started and not finished
        self.headers_done = False  # ... and its headers have been parsed
        self.chunked = False  # ... and its body is chunked
        self.close_seen = False  # a finished response said the connection closes after it
        self.parser = httptools.HttpResponseParser(self)

    def on_message_begin(self) -> None:
        self.in_message = True
        self.headers_done = self.chunked = False
        self.body = 0

    def on_headers_complete(self) -> None:
        self.headers_done = True
        if self.head:
            status = self.parser.get_status_code()
            if status >= 200:  # interim 1xx are skipped, as below
                self.finish(status)

    def on_chunk_header(self) -> None:
        self.chunked = True

    def on_body(self, body: bytes) -> None:
        self.body += len(body)
        if self.body > self.max_body:
            raise ProtocolError(
                f"server sent a response body of more than {self.max_body} bytes; "
                "raise max_body to accept it",
                KIND_REPLY_TOO_LARGE,
            )

    def on_message_complete(self) -> None:
        if self.head:
            self.in_message = False
            return  # already reported at the end of its headers
        status = self.parser.get_status_code()
        if status >= 200:
            self.finish(status)
        else:
            self.in_message = False  # interim response: the real one follows

    def finish(self, status: int) -> None:
        self.in_message = False
        self.queue.append(self.responses.get(status, self.body))
        if not self.parser.should_keep_alive():
            self.close_seen = True


class Http1Codec:
    """One HTTP/1.1 connection's codec: a fixed request, a stream of responses."""

    __slots__ = (
        "_chunks",
        "_events",
        "_head_buffer",
        "_is_head",
        "_kinds",
        "_repeat",
        "_request",
        "_request_buffer",
        "closing",
        "failures",
        "method",
    )

    def __init__(
        self,
        host: str = "localhost",
        method: str = "GET",
        path: str = "/",
        headers: HeaderItems = (),
        body: bytes = b"",
        expected: tuple[tuple[int, int], ...] = DEFAULT_EXPECTED,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        method = method.upper()
        if method == "CONNECT":
            raise ValueError("CONNECT opens a tunnel, not a request/response exchange")
        self.method = method
        self._request = encode_request(method, path, headers, body, host)
        self._request_buffer = bytearray(self._request)  # what the engine sends from
        self._kinds = status_kinds(tuple(expected))
        self._is_head = method == "HEAD"
        self._head_buffer = bytearray()
        self._events = _Events(self._is_head, max_body_bytes)
        self.failures: list[tuple[int, str]] = []
        #: The peer said it closes the connection after the last response handed out
        #: (a plain attribute: the client reads it after every response).
        self.closing = False
        # The identical-response fast path (module header): the last learnt response's
        # bytes, and by length the chunks learnt (that chunk, how many responses it is).
        self._repeat = b""
        self._chunks: dict[int, tuple[bytes, int]] = {}

    def request_bytes(self) -> bytes:
        """The encoded request, built once at construction (the same object every call)."""
        return self._request

    # --- the Codec protocol ---------------------------------------------------------
    def next_request(self) -> bytearray:
        return self._request_buffer

    def receive(self, data: Buffer | bytes, n: int) -> int:
        events = self._events
        if n and not events.in_message and not events.close_seen:
            # Between responses: the same response(s) as before are counted after one
            # comparison (module header), without the parser.
            learnt = self._chunks.get(n)
            if learnt is not None:
                if type(data) is memoryview:
                    if bytes(data[:n]) == learnt[0]:
                        return learnt[1]
                elif data.startswith(learnt[0]):
                    return learnt[1]
            if self._repeat:
                count = self._repeat_copies(data, n)
                if count:
                    return count
            if not self._is_head:
                view = first_bytes(data, n)
                self.receive_data(view)
                if events.queue:
                    self._learn(view, events.queue)
                count = take_responses(events.queue, self.failures, self.status_kind)
                self.closing = events.close_seen  # whatever it held, it was all handed out
                return count
        self.receive_data(first_bytes(data, n))
        events = self._events
        count = take_responses(events.queue, self.failures, self.status_kind)
        self.closing = events.close_seen
        return count

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            self._receive_eof()
        elif self._is_head:
            self._receive_head(data)
        else:
            self._feed(data)
        self._settle_closing()

    def next_response(self) -> Response | None:
        queue = self._events.queue
        if not queue:
            return None
        response = queue.popleft()
        self._settle_closing()
        return response

    def reset(self) -> None:
        self._events = _Events(self._is_head, self._events.max_body)
        self._head_buffer.clear()
        self.failures.clear()
        self.closing = False

    def status_kind(self, status: int) -> str | None:
        return self._kinds[status] if 0 <= status < 1000 else KIND_UNEXPECTED

    # --- internals ------------------------------------------------------------------
    def _settle_closing(self) -> None:
        # Nothing may follow a response that closes the connection (llhttp enforces it),
        # so it is the last queued one: closing is true once it has been handed out.
        events = self._events
        self.closing = events.close_seen and not events.queue

    def _repeat_copies(self, data: Buffer | bytes, n: int) -> int:
        """How many copies of ``_repeat`` the first ``n`` bytes of ``data`` are (0: they
        are something else). A match becomes the chunk the next receive compares first."""
        size = len(self._repeat)
        count, rest = divmod(n, size)
        if rest or not count:
            return 0
        chunk = self._repeat * count
        head = bytes(data[:n]) if type(data) is memoryview else data
        if not head.startswith(chunk):
            return 0
        self._keep(chunk, count)
        return count

    def _keep(self, chunk: bytes, count: int) -> None:
        """Learn ``chunk`` as ``count`` responses: the one kept for its length."""
        chunks = self._chunks
        if len(chunks) >= MAX_LEARNT_CHUNKS and len(chunk) not in chunks:
            chunks.clear()  # many lengths: start over rather than search
        chunks[len(chunk)] = (chunk, count)

    def _learn(self, view: Buffer | bytes, queue: deque[Response]) -> None:
        """A chunk that began between responses was just parsed: when it held whole, equal,
        successful, keep-alive responses and nothing else (what a benchmark's server sends
        over and over), keep one's bytes for the fast path."""
        events = self._events
        if events.in_message or events.close_seen:
            return  # it ended inside a response, or the connection ends after it
        response = queue[-1]
        if self.status_kind(response.status) is not None:
            return  # failures are counted the long way
        count = len(queue)
        if any(other is not response for other in queue):
            return
        size, rest = divmod(len(view), count)
        if rest:
            return
        data = bytes(view)
        one = data[-size:]
        if data != one * count:
            return  # equal status and size, different bytes (a body, a date)
        self._repeat = one
        self._keep(data, count)

    @property
    def in_response(self) -> bool:
        """A response has begun and is not complete yet."""
        return self._events.in_message or bool(self._head_buffer)

    def _feed(self, data: bytes | bytearray | memoryview) -> None:
        try:
            self._events.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            raise ProtocolError(
                "server switched protocols (101) although the request asked for no upgrade"
            ) from None
        except httptools.HttpParserError as exc:
            if isinstance(exc.__context__, ProtocolError):  # raised by a callback (on_body)
                raise exc.__context__ from None
            raise ProtocolError(f"server sent invalid HTTP/1.1: {exc}") from None

    def _receive_head(self, data: bytes | bytearray | memoryview) -> None:
        buffer = self._head_buffer
        buffer += data
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > MAX_HEAD_BLOCK_BYTES:
                    raise ProtocolError(
                        f"server sent more than {MAX_HEAD_BLOCK_BYTES} bytes "
                        "without ending a response head"
                    )
                return
            end += 4
            block = bytes(buffer[:end])
            del buffer[:end]
            events = self._events
            self._feed(block)
            # A fresh parser for the next response: this one may be waiting for a body
            # that a HEAD response never sends. The closing flag carries over.
            close_seen = events.close_seen
            self._events = _Events(True, events.max_body)
            self._events.queue = events.queue
            self._events.close_seen = close_seen
            if close_seen and buffer:
                raise ProtocolError("server sent data after a response with Connection: close")

    def _receive_eof(self) -> None:
        events = self._events
        if self._head_buffer:
            raise ProtocolError(
                "server closed the connection in the middle of a response head", KIND_EOF
            )
        if not events.in_message:
            return
        status = events.parser.get_status_code()
        # A body with neither a length nor chunking (so no keep-alive) runs to the close:
        # that response is complete. llhttp's keep-alive verdict is final once the headers
        # are done.
        if events.headers_done and not events.chunked and not events.parser.should_keep_alive():
            events.finish(status)
            return
        raise ProtocolError(
            f"server closed the connection in the middle of a response "
            f"(status {status or 'not yet sent'}, {events.body} body bytes received)",
            KIND_EOF,
        )
