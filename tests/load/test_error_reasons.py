"""Why errors happened, kept beside their counts: a misbehaving target's reason reaches the
result (``Summary.error_reasons``), bounded per kind, and adds up across processes."""

from __future__ import annotations

import json

from loadgen.config.scenario import parse_scenario
from loadgen.load.recorder import MAX_REASONS_PER_KIND, Recorder
from loadgen.result.model import OTHER_REASONS
from loadgen.run.api import run
from loadgen.run.merge import add_per_kind
from tests.adversarial.servers import bad_target
from tests.engine.conftest import AVAILABLE


def test_a_protocol_error_keeps_what_the_server_did_wrong() -> None:
    """An echo server answers an HTTP request with the request itself: not a status line."""
    with bad_target("echo") as (host, port):
        settings = {"name": "why", "target": f"{host}:{port}", "protocol": "http"}
        settings |= {"connections": 2, "duration": "0.4s"}
        result = run(parse_scenario(json.dumps(settings)), backend=AVAILABLE[0])
    summary = result.summary
    assert set(summary.errors) == {"protocol"}
    reasons = summary.error_reasons["protocol"]
    assert sum(reasons.values()) == summary.errors["protocol"]
    assert all(reason.startswith("server sent invalid HTTP/1.1") for reason in reasons), reasons


def test_reasons_are_bounded_per_kind() -> None:
    recorder = Recorder(0)
    for number in range(MAX_REASONS_PER_KIND + 5):
        recorder.error("protocol", reason=f"bad byte at {number}")
    recorder.error("reset")  # no reason known
    reasons = recorder.error_reasons["protocol"]
    assert len(reasons) == MAX_REASONS_PER_KIND + 1
    assert reasons[OTHER_REASONS] == 5
    assert recorder.errors == {"protocol": MAX_REASONS_PER_KIND + 5, "reset": 1}
    assert "reset" not in recorder.error_reasons


def test_reasons_add_across_processes() -> None:
    merged = add_per_kind([{"tls": {"a": 2}}, {"tls": {"a": 1, "b": 4}, "timeout": {"c": 1}}])
    assert merged == {"timeout": {"c": 1}, "tls": {"a": 3, "b": 4}}
