"""IPv6 targets: each connection's socket is made in its target's address family, so
``[::1]:PORT`` works alone and in a list with IPv4 targets; a ``source`` of the wrong family
for a target is refused before the run (``loadgen.load.pool``, ``loadgen.run.sources``)."""

from __future__ import annotations

import json
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from loadgen.cli.app import app
from loadgen.config.targets import expand_address_range
from loadgen.run.sources import mismatched_source
from loadgen.targets.process import builtin_target

ROOT = Path(__file__).resolve().parents[2]
#: Every completion backend of the platform (tests/test_wine.py runs this file on Windows).
BACKENDS = ["iocp"] if sys.platform == "win32" else ["io_uring", "epoll"]


def _ipv6_loopback() -> str | None:
    """Why ::1 cannot be used here, or None when it can."""
    if not socket.has_ipv6:
        return "this Python has no IPv6"
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError as exc:
        return f"no IPv6 loopback on this machine: {exc}"
    return None


NO_IPV6 = _ipv6_loopback()
pytestmark = pytest.mark.skipif(NO_IPV6 is not None, reason=NO_IPV6 or "")


@pytest.fixture(scope="module")
def echo_v6() -> Iterator[int]:
    """The port of a built-in echo target listening on ::1 only."""
    with builtin_target("echo", host="::1") as (_, port):
        yield port


@pytest.fixture(scope="module")
def http_v6() -> Iterator[int]:
    with builtin_target("http", host="::1") as (_, port):
        yield port


def _run(args: list[str], out: Path) -> dict[str, Any]:
    """The run's summary. Saturation on a busy machine is allowed: not what these test."""
    command = [*args, "-p", "1", "-q", "--allow-saturated", "--json", str(out)]
    outcome = CliRunner().invoke(app, command)
    assert outcome.exit_code == 0, outcome.output
    summary: dict[str, Any] = json.loads(out.read_text())["summary"]
    return summary


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_ipv6_echo_target_runs_without_errors(
    backend: str, echo_v6: int, tmp_path: Path
) -> None:
    quick = str(ROOT / "scenarios" / "quickstart.yaml")
    args = ["run", quick, "-d", "500ms", "--backend", backend, "--set", f"target=[::1]:{echo_v6}"]
    summary = _run(args, tmp_path / "r.json")
    assert summary["requests"] > 0
    assert summary["errors"] == {}


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_ipv6_http_url_target_runs_without_errors(
    backend: str, http_v6: int, tmp_path: Path
) -> None:
    scenario = tmp_path / "http.yaml"
    scenario.write_text(
        f"name: v6-http\ntarget: http://[::1]:{http_v6}/bytes/64\nprotocol: http\nconnections: 8\n"
        "duration: 500ms\n"
    )
    summary = _run(["run", str(scenario), "--backend", backend], tmp_path / "r.json")
    assert summary["requests"] > 0
    assert summary["errors"] == {}


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_mixed_ipv4_and_ipv6_target_list_runs_without_errors(
    backend: str, echo_v6: int, echo_target: str, tmp_path: Path
) -> None:
    scenario = tmp_path / "mixed.yaml"
    scenario.write_text(
        f'name: mixed\ntarget: ["{echo_target}", "[::1]:{echo_v6}"]\n'
        "protocol: echo\nmessage_size: 64B\nconnections: 8\nduration: 500ms\n"
    )
    summary = _run(["run", str(scenario), "--backend", backend], tmp_path / "r.json")
    assert summary["requests"] > 0
    assert summary["errors"] == {}


def test_sources_of_both_families_serve_a_mixed_list(
    echo_v6: int, echo_target: str, tmp_path: Path
) -> None:
    """Each connection binds a source of its own target's family."""
    scenario = tmp_path / "mixed.yaml"
    scenario.write_text(
        f'name: sources\ntarget: ["{echo_target}", "[::1]:{echo_v6}"]\n'
        'source: ["127.0.0.1", "::1"]\n'
        "protocol: echo\nmessage_size: 64B\nconnections: 8\nduration: 500ms\n"
    )
    summary = _run(["run", str(scenario)], tmp_path / "r.json")
    assert summary["requests"] > 0
    assert summary["errors"] == {}


def test_an_ipv4_source_for_an_ipv6_target_is_refused_before_the_run(
    echo_v6: int, tmp_path: Path
) -> None:
    out = tmp_path / "r.json"
    quick = str(ROOT / "scenarios" / "quickstart.yaml")
    target = f"target=[::1]:{echo_v6}"
    args = ["run", quick, "-d", "1s", "-p", "1", "--set", target, "--set", "source=127.0.0.1"]
    outcome = CliRunner().invoke(app, [*args, "--json", str(out)])
    assert outcome.exit_code == 2, outcome.output
    assert f"target [::1]:{echo_v6} is IPv6 but every source is IPv4" in outcome.stderr
    assert not out.exists()


def test_mismatched_source_names_the_first_target_without_a_source() -> None:
    assert mismatched_source([], [("::1", 80)]) is None
    assert mismatched_source(["::1"], [("::1", 80), ("example.com", 80)]) is None
    problem = mismatched_source(["::1"], [("::1", 80), ("127.0.0.1", 81)])
    assert problem is not None and problem.startswith("target 127.0.0.1:81 is IPv4")


def test_ipv6_source_addresses_keep_their_family() -> None:
    """``::1`` is the integer 1: a range rebuilt from integers read it as 0.0.0.1."""
    assert expand_address_range("::1") == ["::1"]
    assert expand_address_range("::1-::3") == ["::1", "::2", "::3"]
    assert expand_address_range("127.0.0.1-127.0.0.2") == ["127.0.0.1", "127.0.0.2"]
