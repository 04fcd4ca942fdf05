"""Where a scenario's problems are, and what to say about them: file lines, ``--set``.

A scenario document comes from a YAML file and then ``--set`` overrides. Every problem is
reported where the person can fix it: ``file:line`` for a field the file wrote, ``--set
PATH`` for one an override wrote (or wrote the mapping holding it), in the order of the file's
lines and then of the overrides. The model is a parameter (the scenario's pydantic model),
so this module knows YAML and pydantic's errors, not the scenario's fields.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping, Sequence
from enum import StrEnum
from typing import Any, get_args

import yaml
from pydantic import BaseModel, ValidationError

from loadgen.config.document import Located as Located
from loadgen.config.document import Path, override_value
from loadgen.config.document import ScenarioError as ScenarioError
from loadgen.config.messages import did_you_mean, friendly_message

#: A model's own rewording of one error (its shorthands): (path, message) -> (path, message).
Reword = Callable[[Path, str, Mapping[str, Any], Mapping[str, Any]], tuple[Path, str]]

#: Validation context key: the document was written by a person (a file, ``--set``), so a
#: duration needs its unit. Scenarios rebuilt from a result's resolved dict (seconds) do not.
WRITTEN = "written"
#: A ``--set`` that works in any scenario, for messages that need an example.
SET_EXAMPLE = "timeouts.request=2s"
_MISSING = object()
#: Longest message of one problem: a validator's message may echo the value it refused.
MAX_MESSAGE_CHARS = 300
#: Problems listed for one scenario; a generated list of thousands of bad items says no
#: more after the first few.
MAX_PROBLEMS = 20
#: A model check names the field it means first: ``phases[0]: the open model needs a rate``.
_LEADING_PATH = re.compile(r"^([A-Za-z_]\w*(?:\[\d+\])*(?:\.[A-Za-z_]\w*(?:\[\d+\])*)*): (.+)$")
_PATH_PART = re.compile(r"([A-Za-z_]\w*)|\[(\d+)\]")


def format_path(path: Sequence[str | int]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


# --- the model's fields -----------------------------------------------------------------


def _model_in(annotation: Any) -> Any:
    """The pydantic model inside an annotation such as ``Load | None`` or ``list[Phase]``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in get_args(annotation):
        model = _model_in(argument)
        if model is not None:
            return model
    return None


def known_keys(model: type[BaseModel], path: Sequence[str | int]) -> list[str]:
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


def field_default(model: type[BaseModel], path: Sequence[str]) -> tuple[bool, Any]:
    """(known, default) of the field at a dotted ``path``; default None when it has none."""
    current: Any = model
    for part in path[:-1]:
        field = current.model_fields.get(part)
        current = _model_in(field.annotation) if field is not None else None
        if current is None:
            return False, None
    field = current.model_fields.get(path[-1])
    if field is None:
        return False, None
    return True, None if field.is_required() else field.get_default(call_default_factory=True)


def yaml_value(value: Any) -> str:
    """A value as one line of YAML flow style (what ``--set`` reads back)."""
    if isinstance(value, StrEnum):
        value = str(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # 0.0 s reads back as 0 (the one duration that needs no unit)
    text = yaml.safe_dump(value, default_flow_style=True, width=1000).strip()
    return text.removesuffix("...").strip()


# --- --set ------------------------------------------------------------------------------


def _works(
    model: type[BaseModel], document: Mapping[str, Any], keys: Sequence[str], raw: str
) -> bool:
    """Whether ``--set KEYS=raw`` leaves that field without a problem in this document."""
    trial = copy.deepcopy(dict(document))
    target = trial
    for key in keys[:-1]:
        child = target.setdefault(key, {})
        if not isinstance(child, dict):
            return False
        target = child
    target[keys[-1]] = yaml.safe_load(raw)
    try:
        model.model_validate(trial, context={WRITTEN: True})
    except ValidationError as exc:
        field = tuple(keys)
        return not any(tuple(error["loc"])[: len(field)] == field for error in exc.errors())
    return True


def _set_without_value(model: type[BaseModel], document: Mapping[str, Any], item: str) -> str:
    """The message for a ``--set`` item without ``=VALUE``, with an example that works here
    (checked): the value the scenario has, else the field's default."""
    path = item.strip()
    if not path:
        return f"--set {item}: expected KEY=VALUE, e.g. --set {SET_EXAMPLE}"
    keys = path.split(".")
    if keys == ["load", "connections"] and "load" not in document and "connections" in document:
        # The shorthand's count: load.* belongs to the full form, which this file does not use.
        return (
            f"--set {path}: no value; expected KEY=VALUE, e.g. --set connections="
            f"{yaml_value(document['connections'])} (this scenario uses the shorthand "
            "connections and duration)"
        )
    known, default = field_default(model, keys)
    if not known:
        hint = did_you_mean(keys[-1], known_keys(model, keys))
        if not hint and len(keys) == 1:  # think_time is load.think_time
            nested = [f"{group}.{path}" for group in ("load", "timeouts")]
            found = [name for name in nested if field_default(model, name.split("."))[0]]
            hint = f"; did you mean {found[0]!r}?" if found else ""
        return f"--set {path}: no such field{hint} (expected KEY=VALUE)"
    current: Any = document
    for key in keys:
        current = current.get(key, _MISSING) if isinstance(current, dict) else _MISSING
    candidates = []
    if current is not _MISSING and not isinstance(current, dict | list):
        candidates.append((yaml_value(current), "its value in the scenario"))
    if default is not None and not isinstance(default, BaseModel | dict | list):
        candidates.append((yaml_value(default), "its default"))
        if isinstance(default, float):  # a duration in seconds is written with its unit
            candidates.append((f"{default:g}s", "its default"))
    for value, why in candidates:
        if _works(model, document, keys, value):
            return f"--set {path}: no value; expected KEY=VALUE, e.g. --set {path}={value} ({why})"
    return f"--set {path}: no value; expected KEY=VALUE"


def apply_overrides(
    model: type[BaseModel], document: dict[str, Any], overrides: Sequence[str]
) -> list[str]:
    """Apply ``key.sub=value`` strings (values parsed as YAML when they are, bounded as a
    file is: ``document.override_value``); return the paths set, in order."""
    touched: list[str] = []
    for item in overrides:
        path, sep, raw = item.partition("=")
        if not sep or not path.strip():
            raise ScenarioError([_set_without_value(model, document, path if sep else item)])
        path = path.strip()
        keys = path.split(".")
        target: dict[str, Any] = document
        for key in keys[:-1]:
            child = target.setdefault(key, {})
            if not isinstance(child, dict):
                raise ScenarioError([f"--set {path}: {key} is not a mapping"])
            target = child
        target[keys[-1]] = override_value(path, raw)  # not YAML ([::1]:8080): the text
        if path not in touched:
            touched.append(path)
    return touched


# --- pydantic's errors, located -----------------------------------------------------------


def _lookup(document: Any, path: Sequence[str | int]) -> Any:
    current = document
    for part in path:
        inside = (
            part < len(current)
            if isinstance(current, list) and isinstance(part, int)
            else isinstance(current, dict) and part in current
        )
        if not inside:
            return _MISSING
        current = current[part]
    return current


def _where_in_document(
    model: type[BaseModel], error: Mapping[str, Any], document: Mapping[str, Any], reword: Reword
) -> tuple[Path, str]:
    """The field an error is about, as the person wrote it, and its message. A model check
    that names its field first (``phases[0]: ...``) is about that field, so its line is the
    phase's, not the load's."""
    path: Path = tuple(error["loc"])
    message = friendly_message(error)
    leading = _LEADING_PATH.match(message) if error["type"] == "value_error" else None
    if leading is not None:
        parts = tuple(
            int(index) if index else name for name, index in _PATH_PART.findall(leading[1])
        )
        if _lookup(document, (*path, *parts)) is not _MISSING:
            path, message = (*path, *parts), leading[2]
    if error["type"] == "extra_forbidden":
        known = known_keys(model, path)
        hint = did_you_mean(str(path[-1]), known)
        message = "unknown key" + (hint or (f"; known keys: {', '.join(known)}" if known else ""))
    elif error["type"] == "missing":
        message = "required field is missing"
    return reword(path, message, error, document)


def _overriding(field: str, overridden: Sequence[str]) -> str | None:
    """The ``--set`` path that wrote ``field`` (the field itself or one that holds it)."""
    for path in overridden:
        if field == path or field.startswith((path + ".", path + "[")):
            return path
    return None


def describe_errors(
    model: type[BaseModel],
    errors: Sequence[Mapping[str, Any]],
    *,
    source: str,
    located: Located,
    overridden: Sequence[str],
    document: Mapping[str, Any],
    reword: Reword,
) -> list[str]:
    """One line per error, ``where: field: message``, in the file's line order and then
    the order of the overrides (duplicates once)."""
    problems = []
    for error in errors:
        path, message = _where_in_document(model, error, document, reword)
        if len(message) > MAX_MESSAGE_CHARS:  # a validator may have echoed a large value
            message = message[: MAX_MESSAGE_CHARS - 3] + "..."
        field = format_path(path)
        setting = _overriding(field, overridden) if field else None
        if setting is not None:
            where, order = f"--set {setting}", (1, overridden.index(setting))
        else:
            line = located.line_of(path)
            where, order = (f"{source}:{line}" if line else source), (0, line or 0)
        text = f"{where}: {field}: {message}" if field else f"{where}: {message}"
        problems.append((order, text))
    problems.sort(key=lambda problem: problem[0])
    texts = list(dict.fromkeys(text for _, text in problems))
    if len(texts) > MAX_PROBLEMS:
        texts = [
            *texts[:MAX_PROBLEMS],
            f"{source}: ... and {len(texts) - MAX_PROBLEMS} more problems",
        ]
    return texts
