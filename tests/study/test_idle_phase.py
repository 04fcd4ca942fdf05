"""Idle phases of the closed model: connections open and hold, then start sending (against
the session's shared built-in echo target)."""

from __future__ import annotations

import pytest

from loadgen.config.scenario import ScenarioError, parse_scenario
from loadgen.engine import available_backends
from loadgen.run.api import run

IDLE_THEN_TRAFFIC = """
name: idle-then-traffic
target: TARGET
load:
  connections: 50
  phases:
    - {duration: 2s, idle: true}
    - {duration: 1s}
"""


def test_connections_open_and_send_nothing_until_the_idle_phase_ends(echo_target: str) -> None:
    result = run(parse_scenario(IDLE_THEN_TRAFFIC.replace("TARGET", echo_target)))
    idle = [i for i in result.intervals if i.start_s < 2.0]
    busy = [i for i in result.intervals if i.start_s >= 2.0]
    assert [i.requests for i in idle] == [0, 0]
    assert idle[-1].connections == 50
    assert sum(i.requests for i in busy) > 50
    assert result.summary.errors == {}
    assert result.summary.connects == 50  # the same connections carry the traffic


def test_idle_belongs_to_the_closed_model() -> None:
    text = """
name: open-idle
target: builtin:echo
load:
  model: open
  connections: 5
  phases:
    - {duration: 1s, rate: 10/s, idle: true}
"""
    with pytest.raises(ScenarioError, match=r"idle belongs to the closed model.*rate: 0/s"):
        parse_scenario(text, "open.yaml")


RING = "buffer-ring"


@pytest.mark.parametrize("receive", ["buffered", "zero-byte", RING])
def test_an_idle_phase_between_traffic_stops_every_receive_mode(
    echo_target: str, receive: str
) -> None:
    if receive == RING and available_backends(["io_uring"]).get("io_uring") is not None:
        pytest.skip("buffer-ring needs the io_uring backend, not available here")
    scenario = parse_scenario(
        f"""
name: traffic-idle-traffic
target: {echo_target}
receive: {receive}
load:
  connections: 20
  phases:
    - {{duration: 1s}}
    - {{duration: 2s, idle: true}}
    - {{duration: 1s}}
"""
    )
    result = run(scenario, backend="io_uring" if receive == RING else "auto")
    by_second = {round(i.start_s): i.requests for i in result.intervals}
    assert by_second[0] > 20
    # The requests in flight when the idle phase began are answered within its first
    # second; its second one carries none, whatever the receive mode.
    assert by_second[2] == 0
    assert by_second[3] > 20
    assert result.summary.errors == {}
