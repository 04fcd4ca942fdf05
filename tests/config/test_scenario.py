from pathlib import Path

import pytest

from loadgen.config.scenario import ScenarioError, load_scenario, parse_scenario

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = sorted((ROOT / "scenarios").glob("*.yaml"))

BASE = """\
name: t
target: builtin:echo
connections: 10
duration: 2s
"""


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.name for p in SCENARIOS])
def test_every_example_scenario_is_valid(path: Path) -> None:
    load_scenario(path)


def test_quickstart_resolves_units() -> None:
    quickstart = load_scenario(
        Path(__file__).resolve().parents[2] / "scenarios" / "quickstart.yaml"
    )
    assert quickstart.load_section.model == "closed"
    assert quickstart.load_section.connections == 100
    assert quickstart.load_section.think_time == 0.01
    assert quickstart.load_section.duration == 5.0
    assert quickstart.message_size.fixed == 64
    assert quickstart.receive == "buffered"
    assert quickstart.builtin_target == "echo"


def _error(text: str, overrides: tuple[str, ...] = ()) -> str:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text, "s.yaml", overrides)
    return str(caught.value)


def test_typo_names_file_line_field_and_suggests() -> None:
    message = _error(BASE + "mesage_size: 64B\n")
    assert message == "s.yaml:5: mesage_size: unknown key; did you mean 'message_size'?"


def test_nested_typo() -> None:
    message = _error(BASE + "timeouts:\n  connect: 1s\n  requst: 2s\n")
    assert message == "s.yaml:7: timeouts.requst: unknown key; did you mean 'request'?"


def test_bad_unit_names_line_and_expected_units() -> None:
    message = _error(BASE.replace("2s", "2 fortnights"))
    assert message.startswith("s.yaml:4: duration: expected a duration such as 10s")


def test_missing_field() -> None:
    assert _error(BASE.replace("connections: 10\n", "")) == (
        "s.yaml:1: give either load (model, connections, phases) or the shorthand "
        "connections and duration; missing: connections"
    )
    assert _error(BASE.replace("name: t\n", "")) == "s.yaml:1: name: required field is missing"


def test_bad_target() -> None:
    assert _error(BASE.replace("builtin:echo", "builtin:nope")).startswith(
        "s.yaml:2: target: unknown built-in target 'nope'"
    )
    assert "expected HOST:PORT" in _error(BASE.replace("builtin:echo", "localhost"))


def test_overrides_apply_and_are_named_in_errors() -> None:
    scenario = parse_scenario(BASE, "s.yaml", ["connections=1000", "timeouts.request=250ms"])
    assert scenario.connections == 1000
    assert scenario.timeouts.request == 0.25
    assert _error(BASE, ("receive=sometimes",)) == (
        "--set receive: receive: expected buffered, zero-byte or buffer-ring, got 'sometimes'"
    )


def test_not_yaml() -> None:
    assert _error("name: [unclosed\n").startswith("s.yaml:2: not valid YAML")


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenario(tmp_path / "missing.yaml")


def test_with_duration_scales_phases() -> None:
    scenario = parse_scenario(
        "name: t\ntarget: builtin:echo\nload:\n  model: open\n  connections: 5\n"
        "  phases: [{duration: 10s, rate: 1/s}, {duration: 30s, rate: 1/s}]\n"
    )
    shorter = scenario.with_duration(4.0)
    assert [p.duration for p in shorter.load_section.phases] == [1.0, 3.0]
    assert parse_scenario(BASE).with_duration(0.5).load_section.duration == 0.5


def test_size_distributions() -> None:
    uniform = parse_scenario(BASE + "message_size: {uniform: [64B, 1KiB]}\n")
    assert uniform.message_size.largest == 1024
    assert parse_scenario(BASE + "message_size: 2KiB\n").message_size.fixed == 2048
    assert "did you mean 'uniform'" in _error(BASE + "message_size: {unifrom: [1KiB, 2KiB]}\n")
    assert "same length" in _error(BASE + "message_size: {choice: [64B], weights: [1, 2]}\n")
    assert _error(BASE + "message_size: 8B\n") == (
        "s.yaml:5: message_size: must be at least 16, got '8B'"
    )


# ------------------------------------------------------------- messages that blame the right place


def test_choices_are_named_in_plain_words_with_a_suggestion() -> None:
    assert _error(BASE + "receive: zerobyte\n") == (
        "s.yaml:5: receive: expected buffered, zero-byte or buffer-ring, got 'zerobyte'; "
        "did you mean 'zero-byte'?"
    )
    assert _error(BASE + "close: fn\n") == (
        "s.yaml:5: close: expected fin or rst, got 'fn'; did you mean 'fin'?"
    )
    assert _error(BASE + "protocol: htp\n") == (
        "s.yaml:5: protocol: expected echo, http, redis or stream, got 'htp'; did you mean 'http'?"
    )
    assert _error(BASE + "register_buffers: maybe\n") == (
        "s.yaml:5: register_buffers: expected true or false, got 'maybe'"
    )
    assert "Input should" not in _error(BASE.replace("name: t", "name: t!"))


def test_shorthand_size_error_names_the_field_as_written() -> None:
    assert _error(BASE + "message_size: 64 bytes\n") == (
        "s.yaml:5: message_size: expected a size such as 64B or 64KiB (units: B, KB, KiB, MB, "
        "MiB, GB, GiB), got '64 bytes'"
    )


def test_errors_come_in_line_order() -> None:
    text = (
        "name: t\ntarget: builtin:echo\nreceive: zerobyte\nload:\n  model: open\n"
        "  connections: x\n  phases: [{duration: 1s}]\nclose: fn\n"
    )
    lines = [int(line.split(":")[1]) for line in _error(text).splitlines()]
    assert lines == [3, 6, 8], _error(text)


def test_a_model_check_points_at_the_phase_it_means() -> None:
    text = "name: t\ntarget: builtin:echo\nload:\n  model: open\n  connections: 5\n  phases:\n"
    text += "    - {duration: 1s, rate: 1/s}\n    - {duration: 1s}\n"
    assert _error(text) == "s.yaml:8: load.phases[1]: the open model needs a rate, e.g. 1k/s"


def test_set_errors_are_reported_at_the_set_even_inside_what_it_wrote() -> None:
    quickstart = ROOT / "scenarios" / "quickstart.yaml"
    with pytest.raises(ScenarioError) as caught:
        load_scenario(quickstart, ["load.phases=[{duration: 1m30}]"])
    assert str(caught.value).startswith("--set load.phases: load.phases[0].duration: expected")
    assert (
        load_scenario(quickstart, ["load.phases=[{duration: 1m30s}]"]).load_section.duration == 90
    )


@pytest.mark.parametrize(
    ("text", "item", "suggestion"),
    [
        ("quickstart", "load.connections", "--set load.connections=100"),
        (BASE, "load.connections", "--set connections=10"),
        (BASE, "receive", "--set receive=buffered"),
        (BASE, "timeouts.connect", "--set timeouts.connect=5s"),
        (BASE, "", "--set timeouts.request=2s"),
    ],
)
def test_a_set_without_value_suggests_a_set_that_works(
    text: str, item: str, suggestion: str
) -> None:
    if text == "quickstart":
        text = (ROOT / "scenarios" / "quickstart.yaml").read_text()
    message = _error(text, (item,))
    assert suggestion in message, message
    working = suggestion.removeprefix("--set ")
    parse_scenario(text, "s.yaml", (working,))  # the suggestion itself is valid


def test_an_unknown_set_key_gets_a_did_you_mean() -> None:
    assert "did you mean 'connections'" in _error(BASE, ("conections",))
    assert "did you mean 'load.think_time'" in _error(BASE, ("think_time",))
    assert "did you mean 'connections'" in _error(BASE, ("conections=5",))


def test_unitless_durations_are_an_error_with_a_suggestion_except_zero() -> None:
    assert _error(BASE.replace("2s", "10")) == (
        "s.yaml:4: duration: a duration needs a unit: write 10s or 10ms (got 10)"
    )
    full = "name: t\ntarget: builtin:echo\nload:\n  connections: 5\n  think_time: {}\n"
    full += "  phases: [{{duration: 1s}}]\n"
    assert "write 2.5s or 2.5ms" in _error(full.format("2.5"))
    assert parse_scenario(full.format("0")).load_section.think_time == 0
    assert parse_scenario(full.format("1m30s")).load_section.think_time == 90
    assert "needs a unit" in _error(BASE, ("timeouts.request=3",))


def test_resolved_scenarios_still_read_seconds() -> None:
    """A scenario rebuilt from a result's resolved dict (seconds) is not a person's file."""
    from loadgen.config.scenario import Scenario

    text = "name: t\ntarget: builtin:echo\nload: {connections: 5, phases: [{duration: 2s}]}\n"
    resolved = parse_scenario(text).to_dict()
    assert Scenario.model_validate(resolved).load_section.duration == 2.0


OPEN = """\
name: t
target: builtin:echo
load:
  model: open
  connections: 10
  phases:
    - duration: 2s
      rate: {rate}
"""


@pytest.mark.parametrize(
    ("rate", "shown"),
    [
        ("100M/s", "100,000,000/s"),
        ("999999999999999999999k/s", "1e+24/s"),
        ("1k/s to 20M/s", "20,000,000/s"),
        (".inf", "inf/s"),
    ],
)
def test_a_rate_no_run_could_send_is_refused(rate: str, shown: str) -> None:
    message = _error(OPEN.format(rate=rate))
    assert message.startswith(f"s.yaml:8: load.phases[0].rate: {shown} is more than any run")
    assert "at most 10M/s" in message


def test_the_highest_rate_is_accepted_and_nan_is_not() -> None:
    assert parse_scenario(OPEN.format(rate="10M/s")).load_section.phases[0].rate == (1e7, 1e7)
    assert "must be a number" in _error(OPEN.format(rate=".nan"))
