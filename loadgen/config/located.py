"""Where a scenario's fields are, so every error names the file, the line and the field.

``index_lines`` records the line of every key and item of a YAML document by its path of
keys and indexes; ``describe`` turns a pydantic error into ``file:line: field: message``
(``--set field: ...`` for a field set on the command line), and an unknown key gets the
closest known one::

    quickstart.yaml:5: conections: unknown key; did you mean 'connections'?
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, get_args

import yaml
from pydantic import BaseModel


class ScenarioError(ValueError):
    """A scenario that cannot be used; ``str()`` is one line per problem, ready to print."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


@dataclass(frozen=True)
class Located:
    """Where each node of the document starts, by path of keys and indexes."""

    lines: dict[tuple[str | int, ...], int]

    def line_of(self, path: tuple[str | int, ...]) -> int | None:
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get(())


def index_lines(node: yaml.Node, path: tuple[str | int, ...], out: dict[Any, int]) -> None:
    out[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            index_lines(value_node, (*path, key), out)
            out[(*path, key)] = key_node.start_mark.line + 1  # a field's line is its key's
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            index_lines(item, (*path, index), out)


def format_path(path: Sequence[str | int]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _model_in(annotation: Any) -> Any:
    """The pydantic model inside an annotation such as ``Load | None`` or ``list[Phase]``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in get_args(annotation):
        model = _model_in(argument)
        if model is not None:
            return model
    return None


def _known_keys(model: type[BaseModel], path: Sequence[str | int]) -> list[str]:
    """Field names of the model that validates the mapping holding ``path[-1]``."""
    current: Any = model
    for part in path[:-1]:
        if isinstance(part, int):
            continue
        field = current.model_fields.get(part)
        current = _model_in(field.annotation) if field is not None else None
        if current is None:
            return []
    return list(current.model_fields)


def describe(
    error: Mapping[str, Any],
    source: str,
    located: Located,
    overridden: set[str],
    model: type[BaseModel],
) -> str:
    """One pydantic error as ``file:line: field: message`` (``--set field`` for a field
    set on the command line), an unknown key with the closest known one of ``model``."""
    path = tuple(error["loc"])
    field = format_path(path)
    if field in overridden:
        where = f"--set {field}"
    else:
        line = located.line_of(path)
        where = f"{source}:{line}" if line else source
    kind = error["type"]
    if kind == "extra_forbidden":
        message = "unknown key"
        close = difflib.get_close_matches(str(path[-1]), _known_keys(model, path), n=1)
        if close:
            message += f"; did you mean {close[0]!r}?"
        else:
            known = _known_keys(model, path)
            if known:
                message += f"; known keys: {', '.join(known)}"
    elif kind == "missing":
        message = "required field is missing"
    else:
        message = str(error["msg"]).removeprefix("Value error, ")
        if "input" in error and kind != "value_error":
            message += f" (got {error['input']!r})"
    return f"{where}: {field}: {message}" if field else f"{where}: {message}"


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
