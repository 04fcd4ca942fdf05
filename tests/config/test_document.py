"""Scenario documents that are hostile or odd: alias bombs, cycles, deep nesting, bytes
that are not UTF-8, ``--set`` values that are not YAML. Each ends in a clear error naming
where (or a scenario), quickly."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from loadgen.config.document import MAX_EXPANDED_NODES, index_lines
from loadgen.config.scenario import ScenarioError, load_scenario, parse_scenario

BASE = """\
name: t
target: builtin:echo
connections: 10
duration: 2s
"""


def _error(text: str, overrides: tuple[str, ...] = ()) -> str:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text, "s.yaml", overrides)
    return str(caught.value)


def _laughs(levels: int, first_key: str = "a") -> str:
    """A "billion laughs": each level a list of nine aliases of the level below."""
    lines = [f'{first_key}: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, levels):
        lines.append(f"l{level}: &l{level} [" + ", ".join([f"*l{level - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_is_refused_at_once() -> None:
    text = _laughs(6)  # 9**6 = 531,441 values from 300 bytes
    assert MAX_EXPANDED_NODES < 9**6
    began = time.perf_counter()
    message = _error(text)
    assert time.perf_counter() - began < 1.0  # the whole graph is never walked per path
    assert message == (
        f"s.yaml:6: document refused: it expands to more than {MAX_EXPANDED_NODES:,} values"
    )


def test_a_bomb_in_a_set_value_is_refused() -> None:
    value = _laughs(6, "x").replace("\n", ", ")
    message = _error(BASE, (f"description={{{value}}}",))
    assert message.startswith("--set description:1: document refused: it expands")


def test_the_line_index_visits_each_node_once() -> None:
    import yaml

    node = yaml.compose(_laughs(5), Loader=yaml.SafeLoader)
    lines = index_lines(node)
    # Each level's key and its nine items, and the root: never 9**5 paths.
    assert len(lines) == 1 + 5 * 10
    assert lines[("l4",)] == 5 and ("l4", 8) in lines and ("l4", 8, 0) not in lines


def test_an_aliased_value_in_an_error_is_shown_short() -> None:
    text = BASE + _laughs(4) + "description: *l3\n"  # 6,561 strings, within the bound
    began = time.perf_counter()
    message = _error(text)
    assert time.perf_counter() - began < 2.0
    line = next(line for line in message.splitlines() if ": description: " in line)
    assert line.startswith("s.yaml:9: description: expected text, got [[[["), line
    assert len(line) < 200, line
    assert all(len(line) < 400 for line in message.splitlines()), message


def test_a_cycle_is_refused() -> None:
    assert _error(BASE + "description: &x [1, *x]\n") == (
        "s.yaml:5: document refused: an alias refers to the node that contains it (a cycle)"
    )


def test_deep_nesting_is_refused() -> None:
    assert _error(BASE + "description: " + "[" * 60 + "]" * 60 + "\n") == (
        "s.yaml:5: document refused: it nests deeper than 50 levels"
    )
    assert "nests deeper than" in _error("[" * 1000 + "]" * 1000)  # past PyYAML's stack


def test_many_problems_are_listed_up_to_a_limit() -> None:
    text = BASE + "thresholds: [" + ", ".join(["1"] * 50) + "]\n"
    lines = _error(text).splitlines()
    assert len(lines) == 21 and lines[-1] == "s.yaml: ... and 30 more problems"


def test_a_file_that_is_not_utf8_is_named_with_its_line(tmp_path: Path) -> None:
    scenario = tmp_path / "latin1.yaml"
    scenario.write_bytes(BASE.encode() + "description: caf\u00e9\n".encode("latin-1"))
    with pytest.raises(ScenarioError) as caught:
        load_scenario(scenario)
    assert str(caught.value) == f"{scenario}:5: not UTF-8 text (byte 0xe9); save it as UTF-8"


def test_an_ipv6_target_can_be_set() -> None:
    scenario = parse_scenario(BASE, "s.yaml", ("target=[::1]:8080",))
    assert scenario.target_addresses() == [("::1", 8080)]


def test_a_set_value_that_is_not_yaml_is_taken_as_text() -> None:
    assert (
        "--set load.phases: load.phases: expected a list, got '[{duration: 1s}'"
        in _error(BASE, ("load.phases=[{duration: 1s}",)).splitlines()
    )
    assert parse_scenario(BASE, "s.yaml", ("description=a: b: c",)).description == "a: b: c"


def test_a_set_mapping_shorthand_is_blamed_on_the_set() -> None:
    assert _error(BASE, ("message_size=0",)) == (
        "--set message_size: message_size: must be at least 16, got 0"
    )


@pytest.mark.parametrize("rate", ["200%", "1.5", "-1%", "nan"])
def test_error_rates_beyond_100_percent_are_refused(rate: str) -> None:
    message = _error(BASE + f'thresholds: ["error_rate < {rate}"]\n')
    assert message == (
        "s.yaml:5: thresholds[0]: error_rate: an error rate is a share of the requests, "
        f"0% to 100% (0 to 1), got {rate}"
    )


def test_error_rate_bounds_are_accepted() -> None:
    text = BASE + 'thresholds: ["error_rate <= 100%", "error_rate < 0%", "error_rate < 1"]\n'
    assert [t.limit for t in parse_scenario(text).thresholds] == [1.0, 0.0, 1.0]
