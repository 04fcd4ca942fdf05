"""Scenario files: YAML in, a validated and frozen ``Scenario`` out. No network here.

Every error names the file, the line and the dotted field, says what was expected, and for
an unknown key suggests the closest known one::

    quickstart.yaml:5: conections: unknown key; did you mean 'connections'?

``--set path.to.key=value`` overrides are applied to the raw document before validation, so
they are checked exactly like the file (their errors name ``--set`` instead of a line).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from loadgen.units import parse_count, parse_duration_s, parse_size_bytes

DurationS = Annotated[float, BeforeValidator(parse_duration_s)]
SizeBytes = Annotated[int, BeforeValidator(parse_size_bytes)]
Count = Annotated[int, BeforeValidator(parse_count)]

#: Each echo message starts with a header (sequence number, connection id, size).
ECHO_HEADER_BYTES = 16
BUILTIN_TARGETS = ("echo",)


class ScenarioError(ValueError):
    """A scenario that cannot be used; ``str()`` is one line per problem, ready to print."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Timeouts(_Model):
    connect: DurationS = Field(default=5.0, gt=0)
    request: DurationS = Field(default=5.0, gt=0)


class Scenario(_Model):
    """A validated scenario. Durations are seconds, sizes bytes."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100)
    description: str = ""
    target: str
    protocol: Literal["echo"] = "echo"
    connections: Count = Field(ge=1, le=1_000_000)
    duration: DurationS = Field(gt=0)
    message_size: SizeBytes = Field(default=64, ge=ECHO_HEADER_BYTES, le=64 * 1024 * 1024)
    receive: Literal["buffered", "zero-byte"] = "buffered"
    receive_buffer: SizeBytes = Field(default=64 * 1024, ge=1, le=64 * 1024 * 1024)
    timeouts: Timeouts = Timeouts()

    @property
    def builtin_target(self) -> str | None:
        """``"echo"`` for ``target: builtin:echo``; ``None`` for a network address."""
        kind, _, rest = self.target.partition(":")
        return rest if kind == "builtin" else None

    def target_address(self) -> tuple[str, int]:
        """(host, port) of a network target (not for builtin ones)."""
        return parse_address(self.target)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def parse_address(text: str) -> tuple[str, int]:
    """``host:port`` or ``[v6addr]:port`` → (host, port)."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"expected HOST:PORT or builtin:NAME, got {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port_text)


def _check_target(scenario: Scenario) -> str | None:
    builtin = scenario.builtin_target
    if builtin is not None:
        if builtin not in BUILTIN_TARGETS:
            return f"unknown built-in target {builtin!r}; built-in targets: " + ", ".join(
                f"builtin:{name}" for name in BUILTIN_TARGETS
            )
        return None
    try:
        parse_address(scenario.target)
    except ValueError as exc:
        return str(exc)
    return None


# --- YAML with line numbers -------------------------------------------------------------


@dataclass(frozen=True)
class _Located:
    """Where each node of the document starts, by path of keys and indexes."""

    lines: dict[tuple[str | int, ...], int]

    def line_of(self, path: tuple[str | int, ...]) -> int | None:
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get(())


def _index_lines(node: yaml.Node, path: tuple[str | int, ...], out: dict[Any, int]) -> None:
    out[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            _index_lines(value_node, (*path, key), out)
            out[(*path, key)] = key_node.start_mark.line + 1  # a field's line is its key's
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _index_lines(item, (*path, index), out)


def _format_path(path: Sequence[str | int]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _known_keys(model: type[BaseModel], path: Sequence[str | int]) -> list[str]:
    """Field names of the model a path's parent mapping is validated by."""
    current: Any = model
    for part in path[:-1]:
        if isinstance(part, int):
            continue
        field = current.model_fields.get(part) if hasattr(current, "model_fields") else None
        if field is None:
            return []
        current = field.annotation
    return list(getattr(current, "model_fields", {}))


def _describe(
    error: Mapping[str, Any], source: str, located: _Located, overridden: set[str]
) -> str:
    path = tuple(error["loc"])
    field = _format_path(path) or "(document)"
    if field in overridden:
        where = f"--set {field}"
    else:
        line = located.line_of(path)
        where = f"{source}:{line}" if line else source
    kind = error["type"]
    if kind == "extra_forbidden":
        message = "unknown key"
        close = difflib.get_close_matches(str(path[-1]), _known_keys(Scenario, path), n=1)
        if close:
            message += f"; did you mean {close[0]!r}?"
        else:
            known = _known_keys(Scenario, path)
            if known:
                message += f"; known keys: {', '.join(known)}"
    elif kind == "missing":
        message = "required field is missing"
    else:
        message = str(error["msg"]).removeprefix("Value error, ")
        if "input" in error and kind != "value_error":
            message += f" (got {error['input']!r})"
    return f"{where}: {field}: {message}"


def apply_overrides(document: dict[str, Any], overrides: Sequence[str]) -> set[str]:
    """Apply ``key.sub=value`` strings (values parsed as YAML scalars); return the paths set."""
    touched: set[str] = set()
    for item in overrides:
        path, sep, raw = item.partition("=")
        if not sep or not path.strip():
            raise ScenarioError([f"--set {item}: expected KEY=VALUE, e.g. connections=1000"])
        keys = path.strip().split(".")
        target: dict[str, Any] = document
        for key in keys[:-1]:
            child = target.setdefault(key, {})
            if not isinstance(child, dict):
                raise ScenarioError([f"--set {path}: {key} is not a mapping"])
            target = child
        target[keys[-1]] = yaml.safe_load(raw) if raw.strip() else ""
        touched.add(path.strip())
    return touched


def parse_scenario(
    text: str, source: str = "<scenario>", overrides: Sequence[str] = ()
) -> Scenario:
    """Validate scenario YAML; raise ``ScenarioError`` naming file, line and field."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ScenarioError([f"{source}{line}: not valid YAML: {problem}"]) from None
    if node is None or not isinstance(document, dict):
        raise ScenarioError(
            [f"{source}:1: expected a mapping of scenario fields (name, target, ...)"]
        )
    lines: dict[Any, int] = {}
    _index_lines(node, (), lines)
    overridden = apply_overrides(document, overrides)
    try:
        scenario = Scenario.model_validate(document)
    except ValidationError as exc:
        located = _Located(lines)
        raise ScenarioError(
            [_describe(e, source, located, overridden) for e in exc.errors()]
        ) from None
    target_problem = _check_target(scenario)
    if target_problem:
        line = f":{lines[('target',)]}" if ("target",) in lines else ""
        raise ScenarioError([f"{source}{line}: target: {target_problem}"])
    return scenario


def load_scenario(path: str | Path, overrides: Sequence[str] = ()) -> Scenario:
    """Read and validate a scenario file."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError([f"{file}: cannot read: {exc.strerror or exc}"]) from None
    return parse_scenario(text, str(file), overrides)
