"""Source addresses are checked before a run: one this machine cannot bind is a usage error,
not a run of failed connects (``loadgen.run.sources``)."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from loadgen.cli.app import app
from loadgen.run.sources import unusable_source

ROOT = Path(__file__).resolve().parents[2]
#: TEST-NET-1 (RFC 5737): documentation only, assigned to no machine; binding it sends nothing.
NOT_HERE = "192.0.2.1"
QUICK = ["run", str(ROOT / "scenarios" / "quickstart.yaml"), "-p", "1"]


def test_loopback_sources_are_usable() -> None:
    assert unusable_source([]) is None
    assert unusable_source(["127.0.0.1", "127.0.0.2", "127.0.0.1"]) is None


def test_an_address_not_on_this_machine_is_named() -> None:
    problem = unusable_source(["127.0.0.1", NOT_HERE])
    assert problem is not None
    assert problem.startswith(f"{NOT_HERE} cannot be bound on this machine: ")


@pytest.mark.skipif(not socket.has_ipv6, reason="this Python has no IPv6")
def test_an_ipv6_source_is_bound_in_its_own_family() -> None:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    assert unusable_source(["::1"]) is None
    assert unusable_source(["2001:db8::1"]) is not None  # documentation range (RFC 3849)


def test_run_refuses_an_unusable_source_before_any_traffic(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    outcome = CliRunner().invoke(
        app,
        [*QUICK, "-d", "1s", "--set", f"source=[127.0.0.1, {NOT_HERE}]", "--json", str(out)],
    )
    assert outcome.exit_code == 2, outcome.output
    assert f"source: {NOT_HERE} cannot be bound on this machine" in outcome.stderr
    assert not out.exists()


def test_run_with_usable_sources_runs(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    outcome = CliRunner().invoke(
        app,
        [*QUICK, "-d", "300ms", "-q", "--set", "source=127.0.0.2-127.0.0.3", "--json", str(out)],
    )
    assert outcome.exit_code == 0, outcome.output
    assert json.loads(out.read_text())["summary"]["requests"] > 0
