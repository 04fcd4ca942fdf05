"""The study over ``buffer-ring`` (io_uring's provided-buffer ring): the ring's posted bytes
are the ring's, whatever the connection count."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from loadgen.cli.app import app
from loadgen.engine import available_backends
from loadgen.study.result import read_study


@pytest.mark.skipif(
    available_backends(["io_uring"]).get("io_uring") is not None,
    reason="buffer-ring needs the io_uring backend, not available here",
)
def test_study_measures_buffer_ring(tmp_path: Path) -> None:
    arguments = ["recv-modes", "-c", "200", "-m", "buffer-ring", "-r", "1", "--settle", "0.5s"]
    arguments += ["--window", "1s", "--backend", "io_uring", "--out", str(tmp_path)]
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 0, result.output
    (path,) = tmp_path.glob("recv-modes-*.json")
    (trial,) = read_study(path).trials
    assert trial.mode == "buffer-ring" and trial.stop_reason == "completed"
    assert trial.errors == {} and trial.requests > 0
    assert trial.idle["kernel"] is not None and trial.idle["posted"] is not None
    # The ring (256 buffers of the 64 KiB default) is posted whatever the connections: the
    # idle window has none of its buffers lent out.
    assert trial.idle["posted"] == 256 * 64 * 1024
