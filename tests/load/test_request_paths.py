"""The request client's one request path, in every receive mode on every backend: what a
target does (echoes, corrupts, closes, ends a body by closing, cuts a body short) comes out
the same whichever way the bytes were received (``loadgen.load.receive``: a buffer of the
connection's own, a drain after a zero-byte receive, a shared ring of buffers).

Real runs against the small real servers of ``tests.adversarial.servers``.
"""

from __future__ import annotations

import pytest

from loadgen.config.scenario import parse_scenario
from loadgen.run.api import run
from tests.adversarial.servers import bad_target
from tests.engine.conftest import AVAILABLE

#: Receive modes per backend (buffer-ring is io_uring's only).
MODES = [
    (backend, mode)
    for backend in AVAILABLE
    for mode in ("buffered", "zero-byte", "buffer-ring")
    if mode != "buffer-ring" or backend == "io_uring"
]

#: (target behaviour, protocol, the only error kind expected: None when none is).
CASES = [
    ("echo", "echo", None),
    ("corrupt", "echo", "verify"),  # the last byte of every echo flipped
    ("close", "echo", "eof"),  # closes as soon as a request arrives
    ("http10", "http", None),  # a body without a length, ended by closing
    ("http_cut", "http", "eof"),  # promises 100 bytes of body, sends 10, closes
]


@pytest.mark.parametrize(("backend", "mode"), MODES)
@pytest.mark.parametrize(("behaviour", "protocol", "kind"), CASES)
def test_every_receive_mode_gives_the_same_counts(
    backend: str, mode: str, behaviour: str, protocol: str, kind: str | None
) -> None:
    with bad_target(behaviour) as (host, port):
        result = run(
            parse_scenario(
                f"name: paths\ntarget: {host}:{port}\nprotocol: {protocol}\nreceive: {mode}\n"
                "receive_buffer: 4KiB\nconnections: 4\nduration: 400ms\n"
            ),
            backend=backend,
        )
    summary = result.summary
    if kind is None:
        assert summary.errors == {}
        assert summary.requests > 10
        assert summary.bytes_received > 0
    else:
        assert set(summary.errors) == {kind}, summary.errors
        assert summary.errors[kind] > 0
        assert summary.requests == 0  # no failed exchange is timed as a response
