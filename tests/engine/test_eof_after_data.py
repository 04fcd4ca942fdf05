"""A peer's FIN queued behind data is still reported after the data is read in pieces.

Found by the stream tests: on the epoll backend a short receive cleared the socket's
"readable" flag, and when the FIN's edge had already been consumed (reaped while no receive
was posted) the EOF was never reported: the next receive waited forever.
"""

from __future__ import annotations

import socket
import time

from .conftest import Reaper


def test_eof_behind_data_read_in_pieces(reaper: Reaper) -> None:
    engine = reaper.engine
    with socket.create_server(("127.0.0.1", 0)) as listener:
        handle = engine.tcp_socket()
        token = reaper.token()
        engine.connect(handle, listener.getsockname(), token)
        assert reaper.take(token)[1] == 0
        peer, _ = listener.accept()
        with peer:
            peer.sendall(b"x" * 70_000)
            peer.shutdown(socket.SHUT_WR)  # FIN behind the data
            time.sleep(0.05)
            reaper.poll(0.05)  # the readiness edges arrive while no receive is posted
            buf = bytearray(65536)
            got = []
            for _ in range(3):
                token = reaper.token()
                engine.recv(handle, buf, token)
                got.append(reaper.take(token, timeout_s=2.0)[1])
                if got[-1] <= 0:
                    break
            assert sum(got[:-1]) == 70_000 and got[-1] == 0, got
        engine.close(handle)
