"""A target that resets every connection right after accepting it: every receive mode on
every backend counts resets, never ``eof`` (the reset's error may be taken by a send first,
leaving the receive only the end of the stream: ``Backend.end_error`` tells them apart).
A target that closes in order still counts ``eof``."""

from __future__ import annotations

import pytest

from loadgen.config.scenario import parse_scenario
from loadgen.engine import BackendUnavailable, select_backend
from loadgen.run.api import run
from tests.adversarial.servers import bad_target

MODES = [
    ("io_uring", "buffered"),
    ("io_uring", "zero-byte"),
    ("io_uring", "buffer-ring"),
    ("epoll", "buffered"),
    ("epoll", "zero-byte"),
]


def _errors(backend: str, mode: str, abort: bool) -> dict[str, int]:
    try:
        engine = select_backend(backend)
    except BackendUnavailable as exc:
        pytest.skip(str(exc))
    usable = mode != "buffer-ring" or engine.supports_buffer_ring
    engine.shutdown()
    if not usable:
        pytest.skip(f"{backend} here has no provided-buffer rings")
    server = bad_target("reset_on_accept" if abort else "close")  # "close": reads, then FIN
    with server as address:
        scenario = parse_scenario(
            f"name: closes\ntarget: 127.0.0.1:{address[1]}\nconnections: 50\nduration: 1s\n"
            f"receive: {mode}\ntimeouts: {{connect: 500ms, request: 500ms}}\n"
        )
        return run(scenario, backend=backend).summary.errors


@pytest.mark.parametrize(("backend", "mode"), MODES, ids=[f"{b}-{m}" for b, m in MODES])
def test_a_reset_right_after_accept_is_a_reset(backend: str, mode: str) -> None:
    errors = _errors(backend, mode, abort=True)
    assert errors.get("reset", 0) > 50, errors
    assert set(errors) == {"reset"}, errors


@pytest.mark.parametrize(("backend", "mode"), MODES[:2], ids=[f"{b}-{m}" for b, m in MODES[:2]])
def test_an_orderly_close_is_still_eof(backend: str, mode: str) -> None:
    errors = _errors(backend, mode, abort=False)
    assert errors.get("eof", 0) > 50, errors
    assert "reset" not in errors, errors
