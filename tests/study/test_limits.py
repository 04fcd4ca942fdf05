"""Connection counts this machine cannot hold are refused up front, naming the limit."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from loadgen.cli.app import app
from loadgen.run.limits import ConnectionLimitError, check_ports, nofile_limits

# Linux-only (skipped below), but Windows must still collect it: no `resource` there.
resource = pytest.importorskip("resource", reason="RLIMIT_NOFILE: a Unix module, not on Windows")
pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_NOFILE and /proc")


def _past_hard_limit() -> int:
    limits = nofile_limits()
    assert limits is not None
    if limits[1] == resource.RLIM_INFINITY or limits[1] > 10_000_000:
        pytest.skip("RLIMIT_NOFILE has no usable hard limit here")
    return limits[1] + 1


def test_study_refuses_more_connections_than_descriptors(tmp_path: Path) -> None:
    count = _past_hard_limit()
    arguments = ["recv-modes", "--connections", f"100,{count}", "--modes", "buffered"]
    arguments += ["--processes", "1"]  # one process asked for: the count cannot be spread
    result = CliRunner().invoke(app, [*arguments, "--repeat", "1", "--out", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert "RLIMIT_NOFILE" in result.output and "hard" in result.output
    assert "ulimit -Hn" in result.output  # how to raise it
    assert "--processes 2" in result.output  # or how to spread it
    assert list(tmp_path.iterdir()) == []  # refused before anything ran


def test_run_refuses_more_connections_than_descriptors(tmp_path: Path) -> None:
    count = _past_hard_limit()
    if count > 1_000_000:
        pytest.skip("the hard limit is past a scenario's largest connection count (1,000,000)")
    scenario = tmp_path / "big.yaml"
    scenario.write_text(f"name: big\ntarget: builtin:echo\nconnections: {count}\nduration: 1s\n")
    arguments = ["run", str(scenario), "-q", "--json", str(tmp_path / "r"), "--processes", "1"]
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 2, result.output
    assert "RLIMIT_NOFILE" in result.output and "--processes 2" in result.output
    assert not (tmp_path / "r").exists()


def test_ports_are_counted_per_source_address_and_target() -> None:
    ports = (32768, 60999)  # 28,232, Linux's default
    check_ports(28_232, 0, 1, port_range=ports)
    check_ports(2 * 28_232, 2, 1, port_range=ports)
    check_ports(2 * 28_232, 1, 2, port_range=ports)
    with pytest.raises(ConnectionLimitError) as caught:
        check_ports(28_233, 1, 1, port_range=ports)
    message = str(caught.value)
    assert "32768-60999" in message and "28,232" in message
    assert "source address" in message and "ip_local_port_range" in message


def test_unknown_mode_is_refused_with_the_known_ones(tmp_path: Path) -> None:
    arguments = ["recv-modes", "--connections", "10", "--modes", "buffered,bogus"]
    result = CliRunner().invoke(app, [*arguments, "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "bogus" in result.output and "buffered, zero-byte" in result.output
