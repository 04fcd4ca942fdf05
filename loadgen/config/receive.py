"""The receive modes: how a client waits for a peer's bytes on each connection.

* ``buffered``: a receive with a buffer is posted per connection (Windows: its pages are
  locked while it is pending; Linux: the buffer is the process's own memory).
* ``zero-byte``: a zero-length receive (IOCP) or a readiness poll (io_uring POLL_ADD,
  epoll) is posted instead, and the data is drained into a shared buffer when it completes:
  no per-connection buffer is held while waiting.
* ``buffer-ring``: io_uring only (Linux 6.1+): a multishot receive picks a buffer from a
  ring the process provided, so buffers are shared by all connections.

A ``StrEnum``: its members are the strings the YAML, the CLI and the result use.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, Field

from loadgen.config.units import parse_count


class ReceiveMode(StrEnum):
    BUFFERED = "buffered"
    ZERO_BYTE = "zero-byte"
    BUFFER_RING = "buffer-ring"


#: ``ring_buffers`` when the scenario does not give it.
DEFAULT_RING_BUFFERS = 256
#: io_uring's provided-buffer rings hold a power of two of entries below 65,536.
MAX_RING_BUFFERS = 32768


def _power_of_two(value: int) -> int:
    if value & (value - 1):
        below = 1 << (value.bit_length() - 1)
        raise ValueError(
            f"must be a power of two (io_uring's buffer rings are), e.g. {below} or {below * 2}"
        )
    return value


RingBuffers = Annotated[
    int,
    BeforeValidator(parse_count),
    Field(ge=1, le=MAX_RING_BUFFERS),
    AfterValidator(_power_of_two),
]
