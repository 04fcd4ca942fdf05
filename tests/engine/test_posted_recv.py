"""posted_recv_bytes: the engine's exact count of receive buffer bytes it holds right now."""

from __future__ import annotations

import socket

from .conftest import Reaper

CONNECTIONS = 40
BUFFER = 16 * 1024


def test_posted_bytes_follow_pending_receives(reaper: Reaper) -> None:
    engine = reaper.engine
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(CONNECTIONS)
    server.settimeout(10)
    handles: list[int] = []
    peers: list[socket.socket] = []
    try:
        for _ in range(CONNECTIONS):
            handle = engine.tcp_socket()
            token = reaper.token()
            engine.connect(handle, server.getsockname(), token)
            assert reaper.take(token)[1] == 0
            handles.append(handle)
            peers.append(server.accept()[0])
        assert engine.posted_recv_bytes() == 0

        buffers = [bytearray(BUFFER) for _ in handles]
        tokens = [reaper.token() for _ in handles]
        for handle, buf, token in zip(handles, buffers, tokens, strict=True):
            engine.recv(handle, buf, token)
        reaper.poll(0.05)  # submitted to the kernel; nothing to read, so all still pending
        assert engine.posted_recv_bytes() == CONNECTIONS * BUFFER

        # Zero-byte receives own no buffer.
        extra = engine.tcp_socket()
        token_connect, token_zero = reaper.token(), reaper.token()
        engine.connect(extra, server.getsockname(), token_connect)
        assert reaper.take(token_connect)[1] == 0
        engine.recv_zero(extra, token_zero)
        reaper.poll(0.05)
        assert engine.posted_recv_bytes() == CONNECTIONS * BUFFER
        engine.cancel(extra, token_zero)
        reaper.take(token_zero)

        # Data completes half of them; the other half are cancelled.
        half = CONNECTIONS // 2
        for peer in peers[:half]:
            peer.sendall(b"x")
        for token in tokens[:half]:
            assert reaper.take(token)[1] == 1
        assert engine.posted_recv_bytes() == (CONNECTIONS - half) * BUFFER
        for handle, token in zip(handles[half:], tokens[half:], strict=True):
            engine.cancel(handle, token)
        for token in tokens[half:]:
            assert reaper.take(token)[1] < 0
        assert engine.posted_recv_bytes() == 0

        # Closing a socket with a receive pending gives its buffer back too.
        token = reaper.token()
        engine.recv(handles[0], buffers[0], token)
        assert engine.posted_recv_bytes() == BUFFER
        engine.close(handles.pop(0))
        reaper.take(token)
        assert engine.posted_recv_bytes() == 0
        engine.close(extra)
    finally:
        for handle in handles:
            engine.close(handle)
        for peer in peers:
            peer.close()
        server.close()
