"""Bad input through the commands: a clear error naming where, exit 2, never a traceback."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from loadgen.cli.app import app

runner = CliRunner()
SCENARIO = "name: t\ntarget: 127.0.0.1:9\nconnections: 1\nduration: 1s\n"


def _latin1(tmp_path: Path) -> Path:
    scenario = tmp_path / "latin1.yaml"
    scenario.write_bytes(SCENARIO.encode() + "description: caf\u00e9\n".encode("latin-1"))
    return scenario


def test_validate_names_a_file_that_is_not_utf8(tmp_path: Path) -> None:
    scenario = _latin1(tmp_path)
    outcome = runner.invoke(app, ["validate", str(scenario)])
    assert outcome.exit_code == 2 and outcome.exception is not None
    assert isinstance(outcome.exception, SystemExit)
    assert f"{scenario}:5: not UTF-8 text (byte 0xe9)" in outcome.stderr


def test_run_blames_the_file_not_duration(tmp_path: Path) -> None:
    scenario = _latin1(tmp_path)
    outcome = runner.invoke(app, ["run", str(scenario), "-d", "1s"])
    assert outcome.exit_code == 2
    assert f"{scenario}:5: not UTF-8 text" in outcome.stderr
    assert "--duration" not in outcome.stderr


def test_run_still_blames_a_bad_duration(tmp_path: Path) -> None:
    scenario = tmp_path / "ok.yaml"
    scenario.write_text(SCENARIO)
    outcome = runner.invoke(app, ["run", str(scenario), "-d", "soon"])
    assert outcome.exit_code == 2
    assert outcome.stderr.startswith("error: --duration: expected a duration")


def test_validate_accepts_an_ipv6_target_set(tmp_path: Path) -> None:
    scenario = tmp_path / "ok.yaml"
    scenario.write_text(SCENARIO)
    outcome = runner.invoke(app, ["validate", str(scenario), "--set", "target=[::1]:8080"])
    assert outcome.exit_code == 0, outcome.output
    bad = runner.invoke(app, ["validate", str(scenario), "--set", "name=\x1b"])
    assert bad.exit_code == 2 and isinstance(bad.exception, SystemExit), bad.output
    assert "--set name: name: " in bad.stderr and "use letters, digits" in bad.stderr
