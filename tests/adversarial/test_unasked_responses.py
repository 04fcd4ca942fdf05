"""A server that answers every request twice: the extra response is a ``protocol`` error
whose reason says what happened, on every backend and receive mode."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loadgen.config.scenario import parse_scenario
from tests.adversarial.conftest import check_result, matrix, run_bounded
from tests.adversarial.servers import bad_target

#: The reasons ``LoadClient`` gives: the extra response came in the same read as the one
#: asked for, or in a read of its own after the exchange had ended.
REASONS = ("more than were asked for", "while no request was in flight")


@pytest.mark.parametrize(("backend", "mode"), matrix())
def test_a_response_nobody_asked_for_is_a_protocol_error_with_its_reason(
    backend: str, mode: str, tmp_path: Path
) -> None:
    with bad_target("http_twice") as (host, port):
        settings = {
            "name": "adversarial-twice",
            "target": f"{host}:{port}",
            "protocol": "http",
            "connections": 2,
            "duration": "0.3s",
            "receive": mode,
            "timeouts": {"connect": "500ms", "request": "5s"},
        }
        summary = check_result(
            run_bounded(parse_scenario(json.dumps(settings)), backend), tmp_path
        ).summary
    assert set(summary.errors) == {"protocol"}, summary.errors
    reasons = summary.error_reasons["protocol"]
    assert reasons and all(any(text in reason for text in REASONS) for reason in reasons), reasons
