"""Echo protocol with data verification, sans-IO.

Each message is ``message_size`` bytes::

    offset 0   u64 LE  sequence number (counts up per connection from 0)
    offset 8   u32 LE  connection id
    offset 12  u32 LE  message size
    offset 16  ...     pattern: byte i = (connection_id * 31 + i) & 0xFF

One message is in flight per connection, so the whole echo must equal the message sent:
a wrong sequence number (a stale or duplicated echo), a wrong pattern (corruption) or extra
bytes beyond the message are all ``MISMATCH``; a stream that ends before the message is
complete is the caller's ``eof``. Comparison is one ``memcmp`` of the whole message.
"""

from __future__ import annotations

import struct
from enum import IntEnum

from loadgen.protocols.base import Buffer

HEADER = struct.Struct("<QII")
HEADER_BYTES = HEADER.size  # 16
_SEQUENCE = struct.Struct("<Q")


class Verdict(IntEnum):
    INCOMPLETE = 0  # more bytes of the echo are still to come
    COMPLETE = 1  # the echo matches the message byte for byte
    MISMATCH = 2  # the echo differs from what was sent (a `verify` error)


class EchoCodec:
    """Builds one connection's messages and checks their echoes."""

    __slots__ = (
        "_expected",
        "_got",
        "_received",
        "capacity",
        "connection_id",
        "message",
        "sequence",
        "size",
    )

    def __init__(self, connection_id: int, size: int) -> None:
        """``size`` is the message size, or the largest one when sizes vary per request."""
        if size < HEADER_BYTES:
            raise ValueError(f"an echo message needs at least {HEADER_BYTES} bytes, got {size}")
        self.connection_id = connection_id
        self.size = self.capacity = size
        self.sequence = -1
        self.message = bytearray(size)
        HEADER.pack_into(self.message, 0, 0, connection_id & 0xFFFFFFFF, size)
        base = (connection_id * 31) & 0xFF
        self.message[HEADER_BYTES:] = _pattern(base, size)
        self._received = bytearray(size)
        self._expected: bytearray | memoryview = self.message
        self._got = 0

    def next_request(self, size: int | None = None) -> bytearray | memoryview:
        """The next message to send: the whole buffer, or its first ``size`` bytes when
        sizes vary (``HEADER_BYTES <= size <= capacity``). Keep it until sent.

        The buffer doubles as the expected echo; it is rewritten only here, after the
        previous echo was complete (so the kernel has finished sending it).
        """
        self.sequence += 1
        message = self.message
        if size is None:
            size = self.capacity
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

    def receive(self, data: Buffer, n: int) -> Verdict:
        """Feed the first ``n`` bytes of ``data``, received after the last request."""
        got = self._got
        if got == 0 and n == self.size:  # the common case: the whole echo in one read
            return Verdict.COMPLETE if data[:n] == self._expected else Verdict.MISMATCH
        end = got + n
        if end > self.size:
            return Verdict.MISMATCH  # more bytes than we sent
        self._received[got:end] = data[:n]
        self._got = end
        if end < self.size:
            same = self._received[got:end] == self._expected[got:end]
            return Verdict.INCOMPLETE if same else Verdict.MISMATCH
        whole = self._received[:end] == self._expected
        return Verdict.COMPLETE if whole else Verdict.MISMATCH

    @property
    def pending_bytes(self) -> int:
        """Bytes of the current echo not yet received."""
        return self.size - self._got


_BYTE_CYCLE = bytes(range(256))


def _pattern(base: int, size: int) -> bytes:
    """Bytes HEADER_BYTES..size-1 of the message: byte i is (base + i) & 0xFF."""
    start = (base + HEADER_BYTES) & 0xFF
    cycle = _BYTE_CYCLE[start:] + _BYTE_CYCLE[:start]
    return (cycle * (size // 256 + 1))[: size - HEADER_BYTES]
