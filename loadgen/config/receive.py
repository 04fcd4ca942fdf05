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


class ReceiveMode(StrEnum):
    BUFFERED = "buffered"
    ZERO_BYTE = "zero-byte"
    BUFFER_RING = "buffer-ring"
