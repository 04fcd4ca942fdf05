"""A TLS HTTP server that records how each connection ended: the test of a client's
close_notify (``tests/load/test_tls.py``, and on IOCP ``tests/load/test_tls_windows.py``).
Python's own ``ssl``, a thread per connection; nothing here needs more than the standard
library, so Windows CPython under Wine runs it too."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

#: The server waits this long before each answer, so at the end of a run every connection
#: waits for a response rather than having a send of its own in flight.
ANSWER_DELAY_S = 0.05
ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


@contextmanager
def tls_server_recording_endings(
    cert: Path, key: Path | None = None
) -> Iterator[tuple[int, list[str]]]:
    """(port, endings) of a server on 127.0.0.1 presenting ``cert`` (``key``: its key,
    unless in the same file). Each connection appends how it ended: "close_notify" (the
    client ended the session in order), "eof" (the TCP connection ended without it), or
    the name of the error that ended it."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))
    endings: list[str] = []

    def serve(sock: socket.socket) -> None:
        ending = "eof"
        try:
            with context.wrap_socket(sock, server_side=True, suppress_ragged_eofs=False) as tls:
                pending = b""
                while data := tls.recv(4096):
                    pending += data
                    while b"\r\n\r\n" in pending:
                        pending = pending.split(b"\r\n\r\n", 1)[1]
                        time.sleep(ANSWER_DELAY_S)
                        tls.sendall(ANSWER)
                ending = "close_notify"  # recv returns b"" only after the alert
        except ssl.SSLEOFError:
            ending = "eof"
        except OSError as exc:
            ending = type(exc).__name__
        endings.append(ending)

    def accept() -> None:
        while True:
            try:
                sock, _ = listener.accept()
            except OSError:
                return  # closed: the test is over
            threading.Thread(target=serve, args=(sock,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield listener.getsockname()[1], endings
    finally:
        listener.close()


def wait_for_endings(endings: list[str], count: int, timeout_s: float = 10.0) -> None:
    """Until ``count`` connections have ended (the server's threads see the ends after the
    run returns), at most ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while len(endings) < count and time.monotonic() < deadline:
        time.sleep(0.01)
