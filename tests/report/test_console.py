"""The terminal summary: nothing cut at 80 columns, and an invalid run says what to do."""

from __future__ import annotations

import re
import shlex
from dataclasses import replace
from pathlib import Path

import pytest
from rich.console import Console

from loadgen.config.scenario import parse_scenario
from loadgen.report.advice import open_model_sets, round_rate, saturation_advice, think_time_sets
from loadgen.report.console import render_summary, render_validity
from loadgen.result.model import LatencySummary, RunResult

from .conftest import SCENARIOS, RunFile

ROOT = Path(__file__).resolve().parents[2]


def _render(result: RunResult, width: int) -> str:
    console = Console(width=width, record=True, color_system=None, force_terminal=False)
    render_summary(result, console)
    return console.export_text()


def _with_long_latencies(result: RunResult) -> RunResult:
    """The widest cells a latency row can have: 7-digit counts and 6-character values."""
    wide = LatencySummary(1_234_567, 10.65e3, 355.5e3, 99.95e3, 105.5e3, 10.65e6, 55.49e6, 99.9e6)
    summary = replace(
        result.summary,
        latency_us=wide,
        latency_corrected_us=wide if result.summary.latency_corrected_us else None,
        connect_latency_us=wide,
        schedule_lag_us=wide if result.summary.schedule_lag_us else None,
    )
    return replace(result, summary=summary)


@pytest.mark.parametrize("name", ["closed", "open"])
def test_the_summary_keeps_every_digit_at_80_columns(
    real_runs: dict[str, RunFile], name: str
) -> None:
    result = _with_long_latencies(real_runs[name].result)
    text = _render(result, 80)
    assert "…" not in text and "..." not in text, text
    assert max(len(line) for line in text.splitlines()) <= 80
    rows = [
        line for line in text.splitlines() if re.match(r"\s*(request|corrected|connect)\b", line)
    ]
    assert rows, text
    for row in rows:  # each latency row holds all 9 cells on one line
        assert row.split()[1:] == [
            "1,234,567",
            "10.7ms",
            "356ms",
            "100ms",
            "106ms",
            "10.7s",
            "55.5s",
            "99.9s",
        ], row


def test_a_narrow_terminal_folds_cells_instead_of_cutting_them(
    real_runs: dict[str, RunFile],
) -> None:
    text = _render(_with_long_latencies(real_runs["closed"].result), 50)
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= 50


def _invalid(result: RunResult) -> RunResult:
    assert result.self_check is not None
    check = replace(result.self_check, valid=False, reasons=["generator CPU 97% over the run"])
    return replace(result, self_check=check)


def test_an_invalid_run_says_what_to_do(real_runs: dict[str, RunFile]) -> None:
    result = _invalid(real_runs["closed"].result)
    console = Console(width=200, record=True, color_system=None)
    render_validity(result, console)
    text = console.export_text()
    assert "INVALID RUN" in text and "What to do" in text
    assert "think time" in text and "--set" in text
    assert "open model" in text and "rate:" in text
    assert "the target elsewhere" in text and "loadgen serve echo" in text
    assert "--allow-saturated" in text


def test_a_valid_run_gets_no_advice(real_runs: dict[str, RunFile]) -> None:
    """The real run's own verdict decides whether it is valid; on a starved machine it may
    not be, so the same run is judged both ways: advice exactly when it is invalid."""
    result = real_runs["closed"].result
    assert result.self_check is not None
    valid = replace(result, self_check=replace(result.self_check, valid=True, reasons=[]))
    invalid = replace(result, self_check=replace(result.self_check, valid=False))
    assert saturation_advice(valid) == []
    assert saturation_advice(invalid) != []


QUICKSTART = (ROOT / "scenarios" / "quickstart.yaml").read_text()
FORMS = {
    "shorthand": SCENARIOS["closed"],
    "full closed": QUICKSTART,
    "full closed, no think time": QUICKSTART.replace("  think_time: 10ms\n", ""),
    "open": SCENARIOS["open"],
    "network target": SCENARIOS["closed"].replace("builtin:echo", "127.0.0.1:8080"),
}


def _sets(command: str) -> list[str]:
    words = shlex.split(command)
    return [words[i + 1] for i, word in enumerate(words) if word == "--set"]


@pytest.mark.parametrize("form", FORMS)
def test_the_suggested_sets_work_on_the_scenario_as_written(form: str) -> None:
    text = FORMS[form]
    scenario = parse_scenario(text).to_dict()
    rate = round_rate(3_100)
    opened = parse_scenario(text, "s.yaml", _sets(open_model_sets(scenario, rate)))
    assert opened.load_section.model == "open"
    assert opened.load_section.phases[0].rate == (2000.0, 2000.0)
    assert opened.load_section.duration == pytest.approx(
        parse_scenario(text).load_section.duration, rel=0.01
    )
    if opened.load_section.model == "open" and parse_scenario(text).load_section.model == "closed":
        thought = parse_scenario(text, "s.yaml", _sets(think_time_sets(scenario)))
        assert thought.load_section.think_time == 0.01
        assert thought.load_section.connections == parse_scenario(text).load_section.connections


def test_every_advice_line_with_a_set_works(real_runs: dict[str, RunFile]) -> None:
    for name in ("closed", "open"):
        result = _invalid(real_runs[name].result)
        for line in saturation_advice(result):
            sets = _sets(line.split(": ", 1)[1].split(";")[0]) if "--set" in line else []
            if sets:
                parse_scenario(SCENARIOS[name], "s.yaml", sets)


@pytest.mark.parametrize(
    ("rate", "rounded"), [(0.4, 1), (7, 5), (15, 10), (3_959, 2_000), (5e4, 5e4)]
)
def test_round_rate(rate: float, rounded: int) -> None:
    assert round_rate(rate) == rounded
