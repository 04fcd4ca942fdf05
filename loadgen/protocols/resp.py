"""Redis RESP2 client codec, sans-IO.

Requests are RESP arrays of bulk strings (what every Redis client sends)::

    SET k v   ->   *3\\r\\n$3\\r\\nSET\\r\\n$1\\r\\nk\\r\\n$1\\r\\nv\\r\\n

Replies are parsed by a resumable state machine over one receive buffer, so a reply may be
split at any byte and N pipelined replies may arrive in one chunk. The five RESP2 types:

    +OK\\r\\n               simple string        status 0
    -ERR message\\r\\n      error                status 1 (kind ``redis_error``)
    :1000\\r\\n             integer              status 0
    $5\\r\\nhello\\r\\n     bulk string          status 0 ($-1 is the null bulk string)
    *2\\r\\n...             array of replies     status 1 if any element is an error
                                               (*-1 is the null array, *0 the empty one)

Arrays nest; the parser keeps a stack of how many elements each open array still needs, so
a reply of any depth or size is never re-parsed from its start. ``body_bytes`` is the data
in the reply without the framing: the text of simple strings, errors and integers plus the
length of bulk strings (``GET`` of a 1,000-byte value gives 1,000). The text of the most
recent error reply is kept in ``last_error`` for reports.

Bulk string payloads are counted, never stored: once a bulk string's header is parsed, the
payload bytes already received are dropped and ``_skip`` counts how many are still to come;
later chunks are skipped over by that counter, across any number of receive calls, and only
the closing CRLF is checked. A codec's memory is so bounded by ``MAX_LINE_BYTES`` plus one
receive chunk, whatever the reply size, and by ``MAX_ARRAY_DEPTH`` open arrays (arrays
nested deeper are a ``protocol`` error: each level costs the parser a stack entry and adds
no data, so neither ``max_reply`` nor the line limit would stop a peer nesting forever).
A reply whose data would pass ``max_reply_bytes`` (64 MiB unless the scenario says
otherwise) fails the connection with kind ``reply_too_large``.

A load test sends one command over and over, so the server answers with the same bytes
over and over (``+OK\\r\\n`` for SET, ``$3\\r\\nxxx\\r\\n`` for GET): once a chunk that
began between replies held whole, equal, error-free replies and nothing else, those bytes
are kept, and a later chunk that is exactly k copies of them is answered with k copies of
the same response after one comparison, without going through the state machine (per reply,
about 3.5x less codec time for one reply per chunk and 12x less for 16, measured here with
``+OK``). Anything else takes the general path.

Only RESP2 is spoken: a RESP3 type byte (``_ , # % ~ = ( ! > |``) can only come after a
``HELLO 3`` we never send, so it is a protocol error like any other unknown byte.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from itertools import repeat

from loadgen.protocols.base import (
    Buffer,
    ProtocolError,
    Response,
    ResponseCache,
    first_bytes,
    take_responses,
)

KIND_REDIS_ERROR = "redis_error"
STATUS_OK = 0
STATUS_ERROR = 1

#: Longest line (simple string, error, integer, length) accepted before CRLF: real ones are
#: short; a peer streaming bytes without a line break is garbage, not a reply to wait for.
MAX_LINE_BYTES = 64 * 1024
#: Largest bulk string or array length accepted at all: Redis's own proto-max-bulk-len
#: default (512 MiB).
MAX_BULK_BYTES = 512 * 1024 * 1024
#: Arrays open at once (nesting depth) before a reply is taken as garbage: real replies nest
#: a few levels (XREAD: 5); a thousand is far past any of them and costs a few KB of stack.
MAX_ARRAY_DEPTH = 1000
#: Default largest reply (its data bytes): far above what a load test's GET returns, far
#: below what a misbehaving peer could make a run wait for.
DEFAULT_MAX_REPLY_BYTES = 64 * 1024 * 1024
KIND_REPLY_TOO_LARGE = "reply_too_large"

_RESPONSES = ResponseCache()

Argument = bytes | str | int | float


def encode_command(*args: Argument) -> bytes:
    """One command as a RESP array of bulk strings. ``str`` is UTF-8, numbers their text."""
    if not args:
        raise ValueError("a Redis command needs at least its name")
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, bytes):
            data = arg
        elif isinstance(arg, str):
            data = arg.encode()
        elif isinstance(arg, int | float) and not isinstance(arg, bool):
            data = repr(arg).encode()
        else:
            raise TypeError(f"a Redis argument must be bytes, str or a number, not {arg!r}")
        parts.append(b"$%d\r\n%b\r\n" % (len(data), data))
    return b"".join(parts)


class RespCodec:
    """One Redis connection's codec: a fixed command, a stream of replies."""

    __slots__ = (
        "_buffer",
        "_bulk_tail",
        "_bytes",
        "_max_reply_bytes",
        "_queue",
        "_repeat",
        "_repeat_response",
        "_request",
        "_request_buffer",
        "_skip",
        "_stack",
        "_status",
        "failures",
        "last_error",
    )

    def __init__(
        self,
        command: Sequence[Argument] = ("PING",),
        max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES,
    ) -> None:
        self._request = encode_command(*command)
        self._request_buffer = bytearray(self._request)  # what the engine sends from
        self._buffer = bytearray()
        self._queue: deque[Response] = deque()
        self._stack: list[int] = []  # elements still expected by each open array
        self._status = STATUS_OK  # of the reply being parsed
        self._bytes = 0  # data bytes of the reply being parsed
        self._max_reply_bytes = max_reply_bytes
        self._skip = 0  # payload bytes of the open bulk string still to come (not stored)
        self._bulk_tail = False  # the open bulk string's payload is done; its CRLF is next
        self._repeat = b""  # one whole reply the server sends again and again (see header)
        self._repeat_response = _RESPONSES.get(STATUS_OK, 0)  # its response (unused while b"")
        self.last_error: str | None = None
        self.failures: list[tuple[int, str]] = []

    def request_bytes(self) -> bytes:
        """The encoded command, built once at construction (the same object every call)."""
        return self._request

    # --- the Codec protocol ---------------------------------------------------------
    def next_request(self) -> bytearray:
        return self._request_buffer

    def receive(self, data: Buffer | bytes, n: int) -> int:
        self.receive_data(first_bytes(data, n))
        return take_responses(self._queue, self.failures, _status_kind)

    @property
    def closing(self) -> bool:
        return False  # Redis closes only on QUIT or an error, never announced per reply

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            if self._buffer or self._stack or self._skip or self._bulk_tail:
                raise ProtocolError("server closed the connection in the middle of a reply", "eof")
            return
        if self._skip:  # inside a bulk string's payload: count it, keep none of it
            skipped = min(self._skip, len(data))
            self._skip -= skipped
            if not self._skip:
                self._bulk_tail = True
            data = memoryview(data)[skipped:]
            if not data:
                return
        buffer = self._buffer
        if buffer or self._stack or self._bulk_tail:  # in the middle of a reply
            buffer += data
            consumed = self._parse(buffer)
            if consumed:
                del buffer[:consumed]
            return
        queue = self._queue
        size = len(self._repeat)
        if size:
            count, rest = divmod(len(data), size)
            if not rest and data == self._repeat * count:  # the same reply, count times
                queue.extend(repeat(self._repeat_response, count))
                return
        queued = len(queue)
        buffer += data
        consumed = self._parse(buffer)
        if consumed:
            del buffer[:consumed]
        replies = len(queue) - queued
        whole = not (buffer or self._stack or self._skip or self._bulk_tail)
        if replies and whole and len(data) % replies == 0:
            response = queue[-1]
            size = len(data) // replies
            if response.status == STATUS_OK and data == bytes(data[-size:]) * replies:
                self._repeat = bytes(data[-size:])
                self._repeat_response = response

    def next_response(self) -> Response | None:
        queue = self._queue
        return queue.popleft() if queue else None

    def reset(self) -> None:
        self._buffer.clear()
        self._queue.clear()
        self._stack.clear()
        self._status = STATUS_OK
        self._bytes = 0
        self._skip = 0
        self._bulk_tail = False
        self.failures.clear()

    def status_kind(self, status: int) -> str | None:
        return _status_kind(status)

    # --- the parser -----------------------------------------------------------------
    def _parse(self, buffer: bytearray) -> int:
        """Parse every complete element in ``buffer``; return how many bytes were used."""
        pos = 0
        end = len(buffer)
        stack = self._stack
        if self._bulk_tail:  # the CRLF after a skipped bulk payload
            if end < 2:
                return 0
            if buffer[:2] != b"\r\n":
                raise ProtocolError("server sent a bulk string longer than announced")
            self._bulk_tail = False
            pos = 2
            self._element_done()
        while pos < end:
            line_end = buffer.find(b"\r\n", pos + 1)
            if line_end < 0:
                if end - pos > MAX_LINE_BYTES:
                    raise ProtocolError(
                        f"server sent {end - pos} bytes without a line break (not RESP)"
                    )
                break
            kind = buffer[pos]
            if kind == 0x24:  # '$' bulk string
                length = _length(buffer, pos + 1, line_end)
                if length < 0:  # null bulk string
                    pos = line_end + 2
                else:
                    if self._bytes + length > self._max_reply_bytes:
                        raise ProtocolError(
                            f"server sent a reply of more than {self._max_reply_bytes} bytes "
                            f"(a {length}-byte bulk string); raise max_reply to accept it",
                            KIND_REPLY_TOO_LARGE,
                        )
                    self._bytes += length
                    stop = line_end + 2 + length
                    if stop + 2 > end:
                        # The rest is still to come: drop the payload received so far and
                        # count the remainder off as it arrives (receive_data).
                        self._skip = max(stop - end, 0)
                        self._bulk_tail = not self._skip
                        return min(stop, end)
                    if buffer[stop : stop + 2] != b"\r\n":
                        raise ProtocolError("server sent a bulk string longer than announced")
                    pos = stop + 2
            elif kind == 0x2B:  # '+' simple string
                self._bytes += line_end - pos - 1
                pos = line_end + 2
            elif kind == 0x3A:  # ':' integer
                text = bytes(buffer[pos + 1 : line_end])
                if not text.lstrip(b"-").isdigit():
                    raise ProtocolError(f"server sent a malformed RESP integer {text!r}")
                self._bytes += len(text)
                pos = line_end + 2
            elif kind == 0x2D:  # '-' error
                self._status = STATUS_ERROR
                self._bytes += line_end - pos - 1
                self.last_error = buffer[pos + 1 : line_end].decode("utf-8", "replace")
                pos = line_end + 2
            elif kind == 0x2A:  # '*' array
                count = _length(buffer, pos + 1, line_end)
                pos = line_end + 2
                if count > 0:
                    if len(stack) >= MAX_ARRAY_DEPTH:
                        raise ProtocolError(
                            f"server sent RESP arrays nested more than {MAX_ARRAY_DEPTH} deep"
                        )
                    stack.append(count)
                    continue  # its elements follow; the array is not done yet
            else:
                raise ProtocolError(
                    f"server sent {bytes(buffer[pos : pos + 16])!r}..., which is not a RESP2 reply"
                )
            # One element is complete: close every array it completes (as _element_done,
            # inlined on this per-element path).
            while stack:
                stack[-1] -= 1
                if stack[-1]:
                    break
                stack.pop()
            if not stack:
                self._queue.append(_RESPONSES.get(self._status, self._bytes))
                self._status = STATUS_OK
                self._bytes = 0
        return pos

    def _element_done(self) -> None:
        """One element is complete: close every array it completes, queue a whole reply."""
        stack = self._stack
        while stack:
            stack[-1] -= 1
            if stack[-1]:
                return
            stack.pop()
        self._queue.append(_RESPONSES.get(self._status, self._bytes))
        self._status = STATUS_OK
        self._bytes = 0


def _status_kind(status: int) -> str | None:
    return None if status == STATUS_OK else KIND_REDIS_ERROR


def _length(buffer: bytearray, start: int, stop: int) -> int:
    """A bulk string or array length: a decimal count, or -1 for null."""
    text = bytes(buffer[start:stop])
    if text.isdigit():
        length = int(text)
        if length > MAX_BULK_BYTES:
            raise ProtocolError(
                f"server announced a {length}-byte RESP element (Redis's own limit is "
                f"{MAX_BULK_BYTES})",
                KIND_REPLY_TOO_LARGE,
            )
        return length
    if text == b"-1":
        return -1
    raise ProtocolError(f"server sent a malformed RESP length {text!r}")
