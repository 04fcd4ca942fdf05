"""The study on the IOCP backend: it completes and says the pool counters are not
measurable when they are not (Wine has no kernel pool).

Runs under Windows CPython: on real Windows directly, and on Linux under Wine through
``tests/test_wine.py`` (which CI runs), so this skip on Linux hides nothing. Tiny on
purpose (50 connections, one repeat): Wine is slow to start processes.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from loadgen.cli.app import app
from loadgen.engine import win32
from loadgen.study.result import read_study

pytestmark = pytest.mark.skipif(
    sys.platform != "win32",
    reason="IOCP needs Windows CPython; tests/test_wine.py runs this file under Wine",
)


def test_study_completes_on_iocp(tmp_path: Path) -> None:
    arguments = ["recv-modes", "--connections", "50", "--modes", "buffered,zero-byte"]
    # A 1 s window holds the sample taken a second into it (the run samples once a second).
    arguments += ["--repeat", "1", "--settle", "0.5s", "--window", "1s", "--buffer", "4KiB"]
    arguments += ["--backend", "iocp", "--out", str(tmp_path)]
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 0, result.output
    (json_path,) = tmp_path.glob("recv-modes-*.json")
    assert len(list(tmp_path.glob("recv-modes-*.html"))) == 1
    study = read_study(json_path)
    assert study.environment["backend"] == "iocp"
    assert [(t.mode, t.stop_reason) for t in study.trials] == [
        ("buffered", "completed"),
        ("zero-byte", "completed"),
    ]
    by_mode = {t.mode: t for t in study.trials}
    assert by_mode["buffered"].idle["posted"] == 50 * 4096  # the engine's own count
    assert by_mode["zero-byte"].idle["posted"] == 0
    assert all(t.requests > 0 for t in study.trials)
    kernel = study.metric("kernel")
    assert kernel.label == "nonpaged quota"
    if win32.wine_version() is not None:
        assert kernel.reason is not None and "not measurable here" in kernel.reason
        assert study.metric("system_nonpaged").reason is not None
        for trial in study.trials:
            assert trial.per_connection["idle"]["kernel"] is None  # never a stand-in 0
            assert trial.returned is None
        assert "not measurable here" in result.output
    assert "not measurable here" in (study.metric("rss").reason or "")
