"""The request client sends quietly (``send_quiet``): no send completion comes back on any
backend, and every request's bytes are counted once, when handed over.

Real runs against a real echo target (``tests.bad_targets``) on every backend.
"""

from __future__ import annotations

import time

import pytest

from loadgen.engine import Completion, select_backend
from loadgen.load.client_config import ClientConfig
from loadgen.load.recorder import Recorder
from loadgen.load.requests import LoadClient
from loadgen.load.tokens import OP_MASK, OP_SEND
from tests.adversarial.servers import bad_target
from tests.engine.conftest import AVAILABLE

MESSAGE_BYTES = 64


@pytest.mark.parametrize("backend", AVAILABLE)
def test_no_send_completion_and_each_request_counted_once(backend: str) -> None:
    engine = select_backend(backend)
    with bad_target("echo") as address:
        config = ClientConfig([address], 8, MESSAGE_BYTES, "buffered", 4096, 5.0, 5.0)
        recorder = Recorder(time.perf_counter_ns())
        client = LoadClient(engine, config, recorder)
        handled: list[Completion] = []
        handle = client._handle

        def watching(completions: list[Completion], now_ns: int) -> None:
            handled.extend(completions)
            handle(completions, now_ns)

        client._handle = watching  # type: ignore[method-assign]
        client.preconnect()
        start = time.perf_counter_ns()
        client.rebase(start)
        client.run(start + 300_000_000)
        recorder.finish(time.perf_counter_ns())
        in_flight = client.in_flight
        client.close_all()
        engine.shutdown()
    responses = recorder.latency.total_count
    assert not recorder.errors and responses > 50
    assert [c for c in handled if c[0] & OP_MASK == OP_SEND] == []
    assert recorder.bytes_received == MESSAGE_BYTES * responses
    # Requests still in flight at the end were handed over: their bytes count as sent.
    assert recorder.bytes_sent == MESSAGE_BYTES * (responses + in_flight)
