"""Help screens a new user reads: no type names, readable usage, defaults, an example each."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from loadgen import __version__
from loadgen.cli.app import app

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()
COMMANDS = [
    [],
    ["run"],
    ["report"],
    ["compare"],
    ["validate"],
    ["doctor"],
    ["recv-modes"],
    ["version"],
    ["serve"],
    ["serve", "echo"],
    ["serve", "http"],
    ["serve", "stream"],
]
#: What typer prints for an option without a metavar: <bool>, <str>, <list[str]>, <int range>.
TYPE_NAMES = re.compile(r"<(bool|str|int|float|path|list|Path)[^>]*>|\bint range\b|\[x>=")


def _help(command: list[str]) -> str:
    result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "loadgen")
def test_help_has_no_type_names_and_an_example(command: list[str]) -> None:
    text = _help(command)
    assert not TYPE_NAMES.search(text), TYPE_NAMES.search(text)
    assert "Examples:" in text
    usage = next(line for line in text.splitlines() if "Usage:" in line)
    assert "{" not in usage, usage


def test_usage_lines_read_plainly() -> None:
    assert re.search(r"Usage: \S+ run \[OPTIONS\] SCENARIO\s*$", _help(["run"]), re.M)
    assert re.search(r"report \[OPTIONS\] RESULT\.json\.\.\.\s*$", _help(["report"]), re.M)


def test_compare_help_lists_both_sides() -> None:
    text = _help(["compare"])
    assert "--baseline" in text and "--current" in text and "--tolerance" in text


def test_defaults_are_shown_even_when_the_scenario_decides() -> None:
    run_help = " ".join(_help(["run"]).replace("│", " ").split())
    for option, default in (
        ("--recv-mode", "the scenario's receive, buffered if it has none"),
        ("--json", "reports/NAME-TIME.json"),
        ("--metrics-bind", "127.0.0.1"),
    ):
        assert option in run_help and default in run_help


def test_set_is_described_the_same_everywhere() -> None:
    def set_help(command: str) -> str:
        text = " ".join(_help([command]).replace("│", " ").split())
        start = text.index("--set KEY=VALUE")
        return text[start : text.index("(repeatable).", start)]

    assert set_help("run") == set_help("validate") == set_help("recv-modes")


def test_version_is_an_option_too() -> None:
    for args in (["--version"], ["-V"], ["version"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0 and result.output.strip() == __version__


def test_shell_completion_is_offered() -> None:
    text = _help([])
    assert "--install-completion" in text and "--show-completion" in text


def test_dash_h_is_help() -> None:
    assert runner.invoke(app, ["run", "-h"]).exit_code == 0
