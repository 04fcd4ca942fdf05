"""Length-prefixed pickle frames over a pipe: how a Dask worker's bridge and the host
process it started talk (``loadgen.distributed.bridge`` and ``.host``).

A frame is a 4-byte big-endian length and that many bytes of a pickle. Both ends are
loadgen's own processes on one host, started from the same installation, so pickle is safe
here (nothing from the network is unpickled by this module).
"""

from __future__ import annotations

import pickle
import struct
import threading
from typing import IO, Any

_LENGTH = struct.Struct(">I")


def write_frame(stream: IO[bytes], message: Any, lock: threading.Lock | None = None) -> None:
    """Write one message and flush it (``lock`` serialises writers of several threads)."""
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    if lock is None:
        stream.write(_LENGTH.pack(len(data)) + data)
        stream.flush()
        return
    with lock:
        stream.write(_LENGTH.pack(len(data)) + data)
        stream.flush()


def read_frame(stream: IO[bytes]) -> Any | None:
    """The next message, or None at the end of the stream (the writer closed or died)."""
    header = _read_exactly(stream, _LENGTH.size)
    if header is None:
        return None
    (length,) = _LENGTH.unpack(header)
    data = _read_exactly(stream, length)
    if data is None:
        return None
    return pickle.loads(data)


def _read_exactly(stream: IO[bytes], size: int) -> bytes | None:
    chunks = []
    while size:
        chunk = stream.read(size)
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)
