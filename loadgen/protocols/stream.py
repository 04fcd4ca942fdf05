"""Stream patterns for raw TCP throughput (ctsTraffic's model), sans-IO.

A stream connection moves a fixed number of payload bytes and then ends; the client opens a
fresh connection in its place. Everything both sides need to agree on is here: no sockets.

The wire, in order::

    client -> server   header, 16 bytes (below), once, first thing on the connection
    data               `bytes` payload bytes in each direction the pattern uses:
                         push      client -> server
                         pull      server -> client
                         duplex    both at once
                         pushpull  alternating: the client sends a segment, then receives a
                                   segment, until `bytes` went each way (the last segment of
                                   each direction may be short)
    server -> client   trailer, 16 bytes, once the server has received and sent all its data
    server             closes (FIN): it reads everything first, so its close never resets

Header (little endian, ``HEADER``)::

    offset 0   2s   magic b"LS"
    offset 2   u8   version (1)
    offset 3   u8   pattern (``PATTERN_CODES``)
    offset 4   u32  segment size in bytes (pushpull's turn size; the server's send size)
    offset 8   u64  payload bytes per direction

Trailer (``TRAILER``, same layout)::

    offset 0   2s   magic b"LE"
    offset 2   u8   version (1)
    offset 3   u8   status: 0 ok, 1 the payload the server received failed verification
    offset 4   u32  reserved (0)
    offset 8   u64  payload bytes the server received

The trailer is what lets the client time a push honestly (its last send completes when the
kernel took the bytes, not when the server had them) and check that both sides agree.

Payload: byte ``o`` of a direction's stream is ``BLOCK[o % BLOCK_BYTES]``, where ``BLOCK`` is
64 KiB of SHA-256 output in counter mode (fixed by this module, so any implementation can
produce it; without short-period structure, so a shifted, dropped or repeated piece shorter
than 64 KiB fails verification). ``PayloadPattern`` holds the block twice over (plus room
for the largest chunk), so the expected bytes of *any* chunk at *any* offset are one slice,
and checking a receive is one ``memcmp``: ``buf.startswith(expected_view, start)``.
(``memoryview == memoryview`` compares element by element: ~700 µs for 64 KiB here, against
~2 µs for ``bytearray.startswith``.)
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from typing import Final

from loadgen.protocols.base import Buffer

HEADER: Final = struct.Struct("<2sBBIQ")
TRAILER: Final = HEADER  # the same layout, a different magic and meaning
HEADER_BYTES: Final = HEADER.size  # 16
TRAILER_BYTES: Final = TRAILER.size  # 16
HEADER_MAGIC: Final = b"LS"
TRAILER_MAGIC: Final = b"LE"
VERSION: Final = 1

PATTERNS: Final = ("push", "pull", "pushpull", "duplex")
PATTERN_CODES: Final = {name: code for code, name in enumerate(PATTERNS, start=1)}

STATUS_OK: Final = 0
STATUS_VERIFY: Final = 1

#: The payload repeats every 64 KiB: long enough that no plausible misplacement of data
#: lines up with itself, small enough to stay in cache while it is compared against.
BLOCK_BYTES: Final = 64 * 1024
#: A segment must fit the header's u32; 64 MiB is plenty for a turn or a send.
MAX_SEGMENT_BYTES: Final = 64 * 1024 * 1024
#: The header's u64, kept within a signed 64-bit integer for every language's sake.
MAX_STREAM_BYTES: Final = (1 << 63) - 1


class StreamProtocolError(ValueError):
    """A header or trailer that is not this protocol; the message says what was wrong."""


@dataclass(frozen=True, slots=True)
class StreamHeader:
    pattern: str  # one of PATTERNS
    total_bytes: int  # payload bytes per direction
    segment: int

    def encode(self) -> bytes:
        return HEADER.pack(
            HEADER_MAGIC, VERSION, PATTERN_CODES[self.pattern], self.segment, self.total_bytes
        )

    @classmethod
    def decode(cls, data: Buffer | bytes) -> StreamHeader:
        if len(data) != HEADER_BYTES:
            raise StreamProtocolError(f"a header is {HEADER_BYTES} bytes, got {len(data)}")
        magic, version, code, segment, total = HEADER.unpack(data)
        if magic != HEADER_MAGIC:
            raise StreamProtocolError(f"not a loadgen stream header (magic {bytes(magic)!r})")
        if version != VERSION:
            raise StreamProtocolError(f"stream protocol version {version} (this is {VERSION})")
        if not 1 <= code <= len(PATTERNS):
            raise StreamProtocolError(f"unknown pattern code {code}")
        if not 1 <= segment <= MAX_SEGMENT_BYTES:
            raise StreamProtocolError(f"segment of {segment} bytes is out of range")
        if total > MAX_STREAM_BYTES:
            raise StreamProtocolError(f"{total} bytes is out of range")
        return cls(PATTERNS[code - 1], total, segment)

    # --- what each side moves -------------------------------------------------------
    @property
    def client_sends(self) -> int:
        """Payload bytes the client sends (= the server receives)."""
        return 0 if self.pattern == "pull" else self.total_bytes

    @property
    def server_sends(self) -> int:
        """Payload bytes the server sends (= the client receives)."""
        return 0 if self.pattern == "push" else self.total_bytes


def client_send_limit(header: StreamHeader, received: int) -> int:
    """How far the client may have sent, having received ``received`` payload bytes.

    pushpull: one segment ahead of every whole segment received back; otherwise everything.
    """
    sends = header.client_sends
    if header.pattern != "pushpull":
        return sends
    return min(sends, (received // header.segment + 1) * header.segment)


def server_send_limit(header: StreamHeader, received: int) -> int:
    """How far the server may have sent, having received ``received`` payload bytes.

    pushpull: as far as every whole segment received (all of it once the last, short,
    segment is in); otherwise everything.
    """
    sends = header.server_sends
    if header.pattern != "pushpull":
        return sends
    if received >= header.client_sends:
        return sends
    return min(sends, (received // header.segment) * header.segment)


def encode_trailer(status: int, received: int) -> bytes:
    return TRAILER.pack(TRAILER_MAGIC, VERSION, status, 0, received)


def decode_trailer(data: Buffer | bytes) -> tuple[int, int]:
    """(status, payload bytes the server received) of a complete trailer."""
    if len(data) != TRAILER_BYTES:
        raise StreamProtocolError(f"a trailer is {TRAILER_BYTES} bytes, got {len(data)}")
    magic, version, status, _reserved, received = TRAILER.unpack(data)
    if magic != TRAILER_MAGIC or version != VERSION:
        raise StreamProtocolError(f"not a loadgen stream trailer (magic {bytes(magic)!r})")
    if status not in (STATUS_OK, STATUS_VERIFY):
        raise StreamProtocolError(f"unknown trailer status {status}")
    return status, received


def payload_block() -> bytes:
    """The 64 KiB block the payload repeats: SHA-256 of b"loadgen-stream" + u32 LE counter."""
    return b"".join(
        hashlib.sha256(b"loadgen-stream" + i.to_bytes(4, "little")).digest()
        for i in range(BLOCK_BYTES // 32)
    )


class PayloadPattern:
    """The payload of any stream, sliceable at any offset without copying.

    ``view(offset, n)`` is the ``n`` bytes at stream offset ``offset`` (``n <= max_chunk``):
    a slice of one buffer that holds the block repeated, shared by every connection (the
    kernel only reads it). Views are cached per (start, length) so a send of the same
    chunk hands the engine the same object each time (the io_uring backend caches buffer
    addresses per object).
    """

    __slots__ = ("_buffer", "_cache", "_view", "max_chunk")

    #: Distinct (start, length) views kept; chunks usually start at few offsets.
    CACHE_ENTRIES: Final = 4096

    def __init__(self, max_chunk: int) -> None:
        if max_chunk < 1:
            raise ValueError(f"max_chunk must be at least 1, got {max_chunk}")
        self.max_chunk = max_chunk
        block = payload_block()
        repeats = (BLOCK_BYTES + max_chunk + BLOCK_BYTES - 1) // BLOCK_BYTES
        # A bytearray, not bytes: every backend can take its address (IOCP needs writable).
        self._buffer = bytearray(block * repeats)
        self._view = memoryview(self._buffer)
        self._cache: dict[int, memoryview] = {}

    def view(self, offset: int, n: int) -> memoryview:
        """The payload bytes ``offset .. offset + n`` (cached: send these)."""
        start = offset % BLOCK_BYTES
        key = start << 32 | n  # n <= max_chunk <= 64 MiB < 2**32
        found = self._cache.get(key)
        if found is None:
            if n > self.max_chunk:
                raise ValueError(f"a chunk of {n} bytes exceeds max_chunk {self.max_chunk}")
            if len(self._cache) >= self.CACHE_ENTRIES:
                self._cache.clear()
            found = self._cache[key] = self._view[start : start + n]
        return found

    def matches(self, data: bytearray | bytes, start: int, n: int, offset: int) -> bool:
        """True when ``data[start:start + n]`` is the payload at stream ``offset``.

        ``n`` may exceed ``max_chunk`` (a large receive buffer): it is checked in pieces.
        """
        view = self._view
        while n > 0:
            piece = min(n, self.max_chunk)
            begin = offset % BLOCK_BYTES
            # Uncached slice: receives land at arbitrary offsets; one slice is ~150 ns.
            if not data.startswith(view[begin : begin + piece], start):
                return False
            start += piece
            offset += piece
            n -= piece
        return True
