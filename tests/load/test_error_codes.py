"""Errors keep the OS's own code beside their kind, on every backend; a socket the OS will
not bind is an error counted, never a crashed run.

Real runs through ``run()`` on each backend available here (IOCP under Wine, through
``tests/test_wine.py``).
"""

from __future__ import annotations

import errno
import socket
import sys
from pathlib import Path

import pytest

from loadgen.config.scenario import parse_scenario
from loadgen.engine import select_backend
from loadgen.result.model import RunResult
from loadgen.run.api import run
from tests.engine.conftest import AVAILABLE

#: TEST-NET-1 (RFC 5737): documentation addresses, owned by no host.
NOT_OURS = "192.0.2.1"


def _closed_port() -> int:
    """A loopback port nothing listens on (bound once, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def _codes_match_kinds(result: RunResult, backend: str) -> None:
    """Every kind's codes add up to its count and are the codes of that kind."""
    summary = result.summary
    engine = select_backend(backend)
    try:
        for kind, codes in summary.error_codes.items():
            assert sum(codes.values()) == summary.errors[kind], summary
            assert {engine.error_kind(int(code)).value for code in codes} == {kind}, codes
    finally:
        engine.shutdown()


@pytest.mark.parametrize("backend", AVAILABLE)
def test_refused_connects_keep_their_os_code(backend: str) -> None:
    scenario = parse_scenario(
        f"name: refused\ntarget: 127.0.0.1:{_closed_port()}\nconnections: 4\n"
        "duration: 1s\nmessage_size: 64B\n"
    )
    result = run(scenario, backend=backend)
    assert result.stop_reason == "completed" and not result.partial
    refused = result.summary.errors.get("refused", 0)
    assert refused >= 4, result.summary.errors
    assert set(result.summary.error_codes) == {"refused"}, result.summary.error_codes
    _codes_match_kinds(result, backend)
    assert RunResult.from_dict(result.to_dict()) == result


@pytest.mark.skipif(
    sys.platform == "linux"
    and Path("/proc/sys/net/ipv4/ip_nonlocal_bind").read_text().strip() != "0",
    reason="ip_nonlocal_bind is on here: binding any address succeeds",
)
@pytest.mark.parametrize("backend", AVAILABLE)
def test_a_bind_the_os_refuses_is_counted_and_the_run_goes_on(backend: str) -> None:
    scenario = parse_scenario(
        f"name: unbindable\ntarget: builtin:echo\nsource: {NOT_OURS}\nconnections: 3\n"
        "duration: 1s\nmessage_size: 64B\n"
    )
    result = run(scenario, backend=backend)
    assert result.stop_reason == "completed", result.stop_reason
    errors = result.summary.errors
    assert set(errors) == {"address_unavailable"} and errors["address_unavailable"] >= 3
    _codes_match_kinds(result, backend)


@pytest.mark.skipif(sys.platform == "win32", reason="shard processes under Wine take a minute")
def test_codes_of_several_processes_are_added() -> None:
    scenario = parse_scenario(
        f"name: refused\ntarget: 127.0.0.1:{_closed_port()}\nconnections: 4\n"
        "duration: 1s\nmessage_size: 64B\n"
    )
    result = run(scenario, processes=2)
    assert result.environment.processes == 2
    refused = result.summary.errors["refused"]
    assert result.summary.error_codes == {"refused": {str(errno.ECONNREFUSED): refused}}
