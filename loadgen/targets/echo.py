"""The built-in echo server, running on the engine itself.

One accept stays posted on the listening socket; each accepted connection keeps one receive
posted into its own buffer and, when it completes, sends back exactly the bytes received
(re-sending the rest after a partial send) before posting the next receive. A connection
that ends, resets or errs is closed; the server goes on.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

from loadgen.engine import Backend

#: Receive buffer per connection. Echo messages are small; 16 KiB keeps 10,000 connections
#: at 160 MiB while still moving large messages in few operations.
SERVER_BUFFER_BYTES = 16 * 1024
#: Largest backlog the kernel grants by default (net.core.somaxconn is 4096 since 5.4).
LISTEN_BACKLOG = 4096

_ACCEPT, _RECV, _SEND = 0, 1, 2
#: Views of a connection's buffer kept per reply length. The engine pins each buffer object
#: once (io_uring caches its address by object), so a benchmark's fixed-size echoes reuse
#: one view instead of making, pinning and later evicting a new one per reply.
_VIEWS_PER_CONNECTION = 8


class EchoServer:
    """Serve echo on ``host:port`` (port 0 picks a free one) until ``stop()``."""

    def __init__(
        self, engine: Backend, host: str = "127.0.0.1", port: int = 0, *, reuse_port: bool = False
    ) -> None:
        self.engine = engine
        self.listen_handle, self.address = engine.listen_socket(
            host, port, LISTEN_BACKLOG, reuse_port=reuse_port
        )
        self.connections = 0
        self.served_bytes = 0
        self._stopping = False
        self._buffers: dict[int, bytearray] = {}
        self._sent: dict[int, tuple[int, int]] = {}  # handle -> (bytes sent, bytes to send)
        self._ids = itertools.count(1)
        self._handles: dict[int, int] = {}  # connection id -> handle
        self._views: dict[int, dict[int, memoryview]] = {}  # connection id -> length -> view

    def stop(self) -> None:
        self._stopping = True

    def serve(self, on_tick: Callable[[], None] | None = None, tick_s: float = 0.2) -> None:
        engine = self.engine
        engine.accept(self.listen_handle, _ACCEPT)
        handles = self._handles
        buffers = self._buffers
        while not self._stopping:
            completions = engine.wait(tick_s)
            for token, result, _ in completions:
                op = token & 3
                conn_id = token >> 2
                if op == _ACCEPT:
                    if result >= 0:
                        self._start(result)
                    if not self._stopping:
                        engine.accept(self.listen_handle, _ACCEPT)
                    continue
                handle = handles.get(conn_id, -1)
                if handle < 0:
                    continue
                if result <= 0:
                    self._drop(conn_id)
                elif op == _RECV:
                    self._sent[conn_id] = (0, result)
                    views = self._views[conn_id]
                    reply = views.get(result)
                    if reply is None:
                        reply = memoryview(buffers[conn_id])[:result]
                        if len(views) < _VIEWS_PER_CONNECTION:
                            views[result] = reply
                    engine.send(handle, reply, token + 1)
                else:  # _SEND
                    done, total = self._sent[conn_id]
                    done += result
                    self.served_bytes += result
                    if done < total:
                        self._sent[conn_id] = (done, total)
                        engine.send(handle, memoryview(buffers[conn_id])[done:total], token)
                    else:
                        engine.recv(handle, buffers[conn_id], token - 1)
            if on_tick is not None:
                on_tick()
        self.close()

    def _start(self, handle: int) -> None:
        conn_id = next(self._ids)
        self._handles[conn_id] = handle
        self._buffers[conn_id] = buffer = bytearray(SERVER_BUFFER_BYTES)
        self._views[conn_id] = {}
        self.connections += 1
        self.engine.recv(handle, buffer, conn_id << 2 | _RECV)

    def _drop(self, conn_id: int) -> None:
        handle = self._handles.pop(conn_id)
        self._buffers.pop(conn_id, None)
        self._views.pop(conn_id, None)
        self._sent.pop(conn_id, None)
        self.engine.close(handle)

    def close(self) -> None:
        for conn_id in list(self._handles):
            self._drop(conn_id)
        self.engine.close(self.listen_handle)
