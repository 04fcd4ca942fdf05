"""Echo with data verification, a sans-IO codec like HTTP's and RESP's (``base.Codec``).

Each message is ``size`` bytes::

    offset 0   u64 LE  sequence number (counts up per connection from 0)
    offset 8   u32 LE  connection id
    offset 12  u32 LE  message size
    offset 16  ...     pattern: byte i = (connection_id * 31 + i) & 0xFF

One message is in flight per connection, so the whole echo must equal the message sent. A
wrong sequence number (a stale or duplicated echo), a wrong pattern (corruption), bytes
beyond the message and bytes while no message is outstanding all raise ``ProtocolError``
of kind ``verify``; a close raises kind ``eof`` (an echo server never ends a connection on
its own). An echo that arrives whole is checked with one ``memcmp``; one that arrives in
pieces is checked piece by piece, so corruption is caught at the first piece that shows it.

Every complete echo is one response (status 0, ``size`` bytes) and never a failed one: a
wrong echo is not a status but a broken stream. Sizes may vary per request (``sizes``
draws one per message, up to the ``size`` given at construction).
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Callable

from loadgen.engine.base import ErrorKind
from loadgen.protocols.base import Buffer, ProtocolError, Response, ResponseCache

HEADER = struct.Struct("<QII")
HEADER_BYTES = HEADER.size  # 16
_SEQUENCE = struct.Struct("<Q")
KIND_VERIFY = ErrorKind.VERIFY.value
KIND_EOF = ErrorKind.EOF.value

_RESPONSES = ResponseCache()


class EchoCodec:
    """One connection's echo: builds its messages and verifies their echoes."""

    __slots__ = (
        "_expected",
        "_got",
        "_queue",
        "_received",
        "_sizes",
        "capacity",
        "closing",
        "connection_id",
        "failures",
        "message",
        "sequence",
        "size",
    )

    def __init__(
        self, connection_id: int, size: int, sizes: Callable[[], int] | None = None
    ) -> None:
        """``size`` is the message size, or the largest one when ``sizes`` draws them."""
        if size < HEADER_BYTES:
            raise ValueError(f"an echo message needs at least {HEADER_BYTES} bytes, got {size}")
        self.connection_id = connection_id
        self.size = self.capacity = size
        self._sizes = sizes
        self.sequence = -1
        self.message = bytearray(size)
        HEADER.pack_into(self.message, 0, 0, connection_id & 0xFFFFFFFF, size)
        base = (connection_id * 31) & 0xFF
        self.message[HEADER_BYTES:] = _pattern(base, size)
        self._received = bytearray(size)
        self._expected: bytearray | memoryview = self.message
        self._got = size  # bytes of the outstanding echo received: none is outstanding
        self._queue: deque[Response] = deque()  # for next_response
        self.failures: list[tuple[int, str]] = []  # always empty: no echo fails by status
        self.closing = False  # an echo server never announces a close

    # --- the Codec protocol ---------------------------------------------------------
    def next_request(self, size: int | None = None) -> bytearray | memoryview:
        """The next message to send: the whole buffer, or its first ``size`` bytes when
        sizes vary (``HEADER_BYTES <= size <= capacity``; default: drawn by ``sizes``).
        Keep it until sent.

        The buffer doubles as the expected echo; it is rewritten only here, after the
        previous echo was complete (so the kernel has finished sending it).
        """
        self.sequence += 1
        message = self.message
        if size is None:
            size = self.capacity if self._sizes is None else self._sizes()
        if not HEADER_BYTES <= size <= self.capacity:
            raise ValueError(f"echo size {size} outside {HEADER_BYTES}..{self.capacity}")
        if size == self.size:
            _SEQUENCE.pack_into(message, 0, self.sequence)  # the common case: same size
        else:
            HEADER.pack_into(message, 0, self.sequence, self.connection_id & 0xFFFFFFFF, size)
            self.size = size
            self._expected = message if size == self.capacity else memoryview(message)[:size]
        self._got = 0
        return self._expected

    def receive(self, data: Buffer | bytes, n: int) -> int:
        """Feed the first ``n`` bytes of ``data``: 1 when they complete the echo, else 0."""
        got = self._got
        size = self.size
        if got == 0 and n == size:  # the common case: the whole echo in one read
            if data[:n] == self._expected:
                self._got = n
                return 1
            raise self._mismatch("differs from the message sent")
        if n == 0:
            where = "in the middle of an echo" if 0 < got < size else "(an echo server never does)"
            raise ProtocolError(f"server closed the connection {where}", KIND_EOF)
        end = got + n
        if end > size:
            if got == size:
                raise self._mismatch("came while no message was outstanding")
            raise self._mismatch(f"is longer than the {size}-byte message sent")
        self._received[got:end] = data[:n]
        self._got = end
        if self._received[got:end] != self._expected[got:end]:
            raise self._mismatch(f"differs from the message sent within bytes {got}..{end}")
        return 1 if end == size else 0

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        if self.receive(data, len(data)):
            self._queue.append(_RESPONSES.get(0, self.size))

    def next_response(self) -> Response | None:
        queue = self._queue
        return queue.popleft() if queue else None

    def reset(self) -> None:
        """A fresh connection: no echo is outstanding (the sequence numbers go on)."""
        self._got = self.size
        self._queue.clear()

    def status_kind(self, status: int) -> str | None:
        return None

    # --- the rest -------------------------------------------------------------------
    @property
    def pending_bytes(self) -> int:
        """Bytes of the current echo not yet received."""
        return self.size - self._got

    def _mismatch(self, what: str) -> ProtocolError:
        return ProtocolError(
            f"the echo of message {self.sequence} of connection {self.connection_id} {what}",
            KIND_VERIFY,
        )


_BYTE_CYCLE = bytes(range(256))


def _pattern(base: int, size: int) -> bytes:
    """Bytes HEADER_BYTES..size-1 of the message: byte i is (base + i) & 0xFF."""
    start = (base + HEADER_BYTES) & 0xFF
    cycle = _BYTE_CYCLE[start:] + _BYTE_CYCLE[:start]
    return (cycle * (size // 256 + 1))[: size - HEADER_BYTES]
