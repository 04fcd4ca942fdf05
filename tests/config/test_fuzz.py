"""Fuzzing the scenario loader: whatever YAML or ``--set`` strings come in, the outcome is a
scenario or a ``ScenarioError`` whose every line names where (``file:line``, ``file`` or
``--set KEY``), and through ``loadgen validate`` exit 0 or 2, never a traceback.

Bounded (a fixed number of examples, derandomized so a CI run is repeatable) to stay a few
seconds; the documents are built from the schema's own field names and values near the
ones it accepts, so most examples get past the YAML parser into validation.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from loadgen.cli.app import app
from loadgen.config.scenario import Scenario, ScenarioError, parse_scenario

SOURCE = "fuzz.yaml"
WHERE = re.compile(rf"^({re.escape(SOURCE)}(:\d+)?: |--set )")

FIELDS = [
    "name", "description", "target", "protocol", "connections", "duration", "load", "model",
    "phases", "rate", "arrivals", "think_time", "idle", "message_size", "fixed", "uniform",
    "choice", "weights", "receive", "receive_buffer", "ring_buffers", "register_buffers",
    "timeouts", "connect", "request", "source", "close", "thresholds", "http", "echo",
    "redis", "stream", "pipeline", "method", "path", "headers", "body", "command",
    "pattern", "bytes", "segment", "requests_per_connection",
]  # fmt: skip
WORDS = [
    "builtin:echo", "builtin:http", "builtin:nope", "127.0.0.1:9", "[::1]:80", "host:0",
    "10s", "0s", "-1s", "1 fortnight", "64B", "1MiB", "0", "1k", "10 to 20", "1k/s",
    "1k/s to 2k/s", "open", "closed", "poisson", "buffered", "zero-byte", "buffer-ring",
    "p99 < 5ms", "error_rate < 200%", "throughput > 1k/s", "p99 <", "fin", "rst",
    "127.0.0.1-127.0.0.9", "::1-::2", "PING", "push", "nan", "inf", "1e400", "",
]  # fmt: skip

scalars = st.one_of(
    st.sampled_from(WORDS),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.text(max_size=12),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=6), inner, max_size=4),
    ),
    max_leaves=8,
)
documents = st.dictionaries(st.sampled_from(FIELDS), values, max_size=8)

#: Small edits of dumped YAML: what a person (or a broken generator) does to a file.
EDITS = ["&a ", "*a", "*b", "[", "]", "{", "}", ": ", "\t", "- ", "!!python/object ", "\x00",
         "\ufeff", "'", '"', "%YAML 1.1\n", "---\n", "? ", "|\n", "<<: *a\n", "\u2028"]  # fmt: skip


@st.composite
def yaml_texts(draw: st.DrawFn) -> str:
    text = yaml.safe_dump(draw(documents), sort_keys=False, allow_unicode=True)
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.sampled_from(EDITS)) + text[at:]
    return text


set_paths = st.lists(st.sampled_from(FIELDS) | st.text(max_size=5), min_size=1, max_size=3).map(
    ".".join
)
set_values = (
    st.sampled_from(WORDS)
    | st.text(max_size=20)
    | values.map(lambda v: yaml.safe_dump(v, default_flow_style=True).strip())
)
overrides = st.lists(
    st.tuples(set_paths, set_values).map("=".join) | st.text(max_size=20), max_size=3
)

FUZZ = settings(
    max_examples=100,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def _outcome(text: str, sets: list[str]) -> Scenario | ScenarioError:
    try:
        return parse_scenario(text, SOURCE, sets)
    except ScenarioError as exc:
        return exc


def _check(outcome: Scenario | ScenarioError) -> None:
    if isinstance(outcome, ScenarioError):
        assert outcome.problems
        for line in outcome.problems:
            assert WHERE.match(line), line
            assert len(line) < 1000, line


@FUZZ
@given(yaml_texts(), overrides)
def test_yaml_documents_end_in_a_scenario_or_a_located_error(text: str, sets: list[str]) -> None:
    _check(_outcome(text, sets))


@settings(FUZZ, max_examples=200)
@given(st.text(max_size=200))
def test_any_text_ends_in_a_scenario_or_a_located_error(text: str) -> None:
    _check(_outcome(text, []))


VALID = "name: t\ntarget: 127.0.0.1:9\nconnections: 10\nduration: 2s\n"


@FUZZ
@given(overrides)
def test_set_strings_on_a_valid_scenario_end_in_a_scenario_or_a_located_error(
    sets: list[str],
) -> None:
    _check(_outcome(VALID, sets))


runner = CliRunner()


@settings(FUZZ, max_examples=30)
@given(yaml_texts().map(str.encode) | st.binary(max_size=100), overrides)
def test_validate_exits_0_or_2_never_with_a_traceback(
    tmp_path_factory: Any, content: bytes, sets: list[str]
) -> None:
    scenario = Path(tmp_path_factory.mktemp("fuzz")) / "fuzz.yaml"
    scenario.write_bytes(content)  # not always UTF-8
    arguments = ["validate", str(scenario)]
    for item in sets:
        arguments += ["--set", item]
    outcome = runner.invoke(app, arguments)
    assert outcome.exception is None or isinstance(outcome.exception, SystemExit), outcome.exception
    assert outcome.exit_code in (0, 2), outcome.output
    assert "Traceback" not in outcome.output
