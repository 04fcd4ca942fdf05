"""The built-in stream target: the server side of the stream patterns, on the engine itself.

The wire is ``loadgen.protocols.stream``'s. Per accepted connection the server keeps one
receive posted into its own buffer for the whole life of the connection. The first 16 bytes
are the client's header (it may arrive in pieces, or with payload behind it); from then on
every byte received is payload, verified against the pattern at its offset. The server
sends its side (pull, duplex: everything at once; pushpull: a segment for every whole
segment received) in segment-sized sends from the shared pattern buffer, one send in flight
per connection, the rest re-sent after a partial send. When it has received and sent all its
payload it sends the trailer (status and bytes received), and once the trailer is out it
closes gracefully. It never paces: a client with a ``rate`` paces its own sends, and its
reads, which TCP flow control turns into the server's pace.

A connection that breaks the protocol (a bad header, payload beyond the announced size) is
reset. A payload mismatch is told to the client in the trailer where the server sends no
payload (push: the client counts a ``verify`` error); otherwise the data stream cannot carry
the news, so the connection is reset. ``errors`` counts every kind on the server's side.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable

from loadgen.engine import Backend
from loadgen.protocols.stream import (
    HEADER_BYTES,
    MAX_SEGMENT_BYTES,
    STATUS_OK,
    STATUS_VERIFY,
    PayloadPattern,
    StreamHeader,
    StreamProtocolError,
    encode_trailer,
    server_send_limit,
)

#: Receive buffer per connection. 256 KiB: a read on a fast loopback stream returns up to
#: what is queued, and fewer, larger reads are what a Python loop keeps up with (a push on
#: one connection measured about twice as fast as with 64 KiB). 1,000 connections: 256 MiB.
SERVER_BUFFER_BYTES = 256 * 1024
#: Largest backlog the kernel grants by default (net.core.somaxconn is 4096 since 5.4).
LISTEN_BACKLOG = 4096
#: A send is at most one segment, and never more than this (the pattern buffer's chunk).
MAX_SEND_BYTES = 1024 * 1024

_ACCEPT, _RECV, _SEND = 0, 1, 2


class _Conn:
    __slots__ = (
        "buffer",
        "handle",
        "head",
        "head_got",
        "header",
        "limit",
        "received",
        "send_end",
        "sending",
        "sent",
        "status",
        "trailer",
    )

    def __init__(self, handle: int) -> None:
        self.handle = handle
        self.buffer = bytearray(SERVER_BUFFER_BYTES)
        self.head = bytearray(HEADER_BYTES)
        self.head_got = 0
        self.header: StreamHeader | None = None
        self.received = 0
        self.sent = 0
        self.limit = 0  # how far the payload may be sent now
        self.sending = False
        self.send_end = 0  # sent + bytes of the send in flight
        self.status = STATUS_OK
        self.trailer: memoryview | None = None  # the rest of the trailer still to send


class StreamServer:
    """Serve the stream patterns on ``host:port`` (port 0 picks a free one) until ``stop()``."""

    def __init__(
        self, engine: Backend, host: str = "127.0.0.1", port: int = 0, *, reuse_port: bool = False
    ) -> None:
        self.engine = engine
        self.listen_handle, self.address = engine.listen_socket(
            host, port, LISTEN_BACKLOG, reuse_port=reuse_port
        )
        self.connections = 0  # accepted
        self.completed = 0  # transfers that ended with the trailer sent
        self.bytes_received = 0  # payload only (headers and trailers are not counted)
        self.bytes_sent = 0
        self.errors: Counter[str] = Counter()
        self._pattern = PayloadPattern(min(MAX_SEGMENT_BYTES, MAX_SEND_BYTES))
        self._stopping = False
        self._conns: dict[int, _Conn] = {}
        self._ids = itertools.count(1)

    def stop(self) -> None:
        self._stopping = True

    @property
    def open_connections(self) -> int:
        return len(self._conns)

    def serve(self, on_tick: Callable[[], None] | None = None, tick_s: float = 0.2) -> None:
        engine = self.engine
        engine.accept(self.listen_handle, _ACCEPT)
        conns = self._conns
        while not self._stopping:
            for token, result, _ in engine.wait(tick_s):
                op = token & 3
                conn_id = token >> 2
                if op == _ACCEPT:
                    if result >= 0:
                        self._start(result)
                    if not self._stopping:
                        engine.accept(self.listen_handle, _ACCEPT)
                    continue
                conn = conns.get(conn_id)
                if conn is None:
                    continue  # a late completion of a connection already closed
                if result < 0:
                    self._drop(conn_id, engine.error_kind(-result).value)
                elif op == _RECV:
                    if result == 0:
                        self._drop(conn_id, "eof")  # the client left before the end
                    else:
                        self._received(conn_id, conn, result)
                else:
                    self._sent(conn_id, conn, result)
            if on_tick is not None:
                on_tick()
        self.close()

    def _start(self, handle: int) -> None:
        conn_id = next(self._ids)
        conn = self._conns[conn_id] = _Conn(handle)
        self.connections += 1
        self.engine.recv(handle, conn.buffer, conn_id << 2 | _RECV)

    def _drop(self, conn_id: int, kind: str | None, *, abort: bool = True) -> None:
        """Close a connection; ``kind`` names the error it ended with (None: a clean end)."""
        conn = self._conns.pop(conn_id)
        if kind is not None:
            self.errors[kind] += 1
        self.engine.close(conn.handle, abort=abort)

    def _received(self, conn_id: int, conn: _Conn, n: int) -> None:
        start = 0
        header = conn.header
        if header is None:
            take = min(n, HEADER_BYTES - conn.head_got)
            conn.head[conn.head_got : conn.head_got + take] = conn.buffer[:take]
            conn.head_got += take
            start = take
            if conn.head_got < HEADER_BYTES:
                self.engine.recv(conn.handle, conn.buffer, conn_id << 2 | _RECV)
                return
            try:
                header = conn.header = StreamHeader.decode(conn.head)
            except StreamProtocolError:
                self._drop(conn_id, "protocol")
                return
        data = n - start
        if data:
            if conn.received + data > header.client_sends:
                self._drop(conn_id, "protocol")  # more payload than the header announced
                return
            if conn.status == STATUS_OK and not self._pattern.matches(
                conn.buffer, start, data, conn.received
            ):
                conn.status = STATUS_VERIFY
                self.errors["verify"] += 1
                if header.server_sends:
                    self._drop(conn_id, None)  # already counted; the stream cannot say it
                    return
            conn.received += data
            self.bytes_received += data
        self.engine.recv(conn.handle, conn.buffer, conn_id << 2 | _RECV)
        conn.limit = server_send_limit(header, conn.received)
        if not conn.sending:
            self._send_more(conn_id, conn)

    def _send_more(self, conn_id: int, conn: _Conn) -> None:
        """Start the next send: payload up to the limit, else the trailer when all is done."""
        header = conn.header
        assert header is not None
        token = conn_id << 2 | _SEND
        if conn.sent < conn.limit:
            n = min(header.segment, MAX_SEND_BYTES, conn.limit - conn.sent)
            conn.sending = True
            conn.send_end = conn.sent + n
            self.engine.send(conn.handle, self._pattern.view(conn.sent, n), token)
        elif conn.sent == header.server_sends and conn.received == header.client_sends:
            if conn.trailer is None:
                conn.trailer = memoryview(bytearray(encode_trailer(conn.status, conn.received)))
            conn.sending = True
            self.engine.send(conn.handle, conn.trailer, token)

    def _sent(self, conn_id: int, conn: _Conn, n: int) -> None:
        conn.sending = False
        trailer = conn.trailer
        if trailer is not None:
            if n < len(trailer):
                conn.trailer = trailer[n:]
                self._send_more(conn_id, conn)
                return
            self.completed += 1
            # Everything was read before the trailer went out, so this close is a FIN.
            self._drop(conn_id, None, abort=False)
            return
        conn.sent += n
        self.bytes_sent += n
        if conn.sent < conn.send_end:  # partial send: the rest of this chunk
            conn.sending = True
            view = self._pattern.view(conn.sent, conn.send_end - conn.sent)
            self.engine.send(conn.handle, view, conn_id << 2 | _SEND)
            return
        self._send_more(conn_id, conn)

    def close(self) -> None:
        for conn_id in list(self._conns):
            self._drop(conn_id, None)
        self.engine.close(self.listen_handle)
