"""A server that resets while a large request is still being sent: each connection counts
only the bytes that left, never more than its one request (on io_uring a send cut short
reports the bytes it sent, after the client counted the whole request when it handed it
over)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loadgen.config.scenario import parse_scenario
from tests.adversarial.conftest import check_result, matrix, run_bounded
from tests.adversarial.servers import bad_target

#: Far more than the socket buffers hold, so the reset comes while the send is under way.
BODY_BYTES = 4 * 1024 * 1024
#: The request line and headers in front of the body.
HEAD_BYTES_AT_MOST = 200


@pytest.mark.parametrize(("backend", "mode"), matrix())
def test_a_send_cut_short_counts_only_what_left(backend: str, mode: str, tmp_path: Path) -> None:
    with bad_target("reset") as (host, port):
        settings = {
            "name": "adversarial-cut-send",
            "target": f"{host}:{port}",
            "protocol": {"http": {"method": "POST", "body": "x" * BODY_BYTES}},
            "connections": 4,
            "duration": "0.5s",
            "receive": mode,
        }
        result = run_bounded(parse_scenario(json.dumps(settings)), backend)
    summary = check_result(result, tmp_path).summary
    assert set(summary.errors) <= {"reset", "eof"} and summary.connects > 0, summary.errors
    # The server answers nothing and resets: one request per connection at the most.
    assert summary.bytes_sent <= summary.connects * (BODY_BYTES + HEAD_BYTES_AT_MOST)
