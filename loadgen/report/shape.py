"""Is a result file's JSON shaped as ``RunResult`` says? Field by field, before it is used.

A result edited by hand, damaged in transit or written by something else can hold a string
where a count belongs, a list where a summary belongs, or ``NaN`` (which Python's JSON
reader accepts); every report, table and comparison would then fail somewhere far from the
cause, or worse, compare ``NaN`` as "ok". ``shape_problem`` walks the JSON against the
dataclasses' type hints and names the first field that does not fit
(``summary.latency_us.p99: expected a finite number, got 'fast'``).
"""

from __future__ import annotations

import dataclasses
import math
import types
from enum import Enum
from functools import cache
from typing import Any, Union, get_args, get_origin, get_type_hints

from loadgen.config.document import shown_value


@cache
def _hints(cls: type) -> dict[str, Any]:
    return get_type_hints(cls)


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def shape_problem(value: object, hint: Any, path: str = "") -> str | None:
    """The first place where ``value`` (parsed JSON) does not fit ``hint`` (a dataclass or a
    type of its fields), as ``path: expected ..., got ...``; None when it fits."""
    where = path or "the result"
    if hint is Any or hint is object:
        return None
    origin = get_origin(hint)
    if origin is Union or origin is types.UnionType:
        options = get_args(hint)
        if value is None and type(None) in options:
            return None
        problems = [shape_problem(value, o, path) for o in options if o is not type(None)]
        return None if None in problems else problems[0]
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return _dataclass_problem(value, hint, path)
    if origin is dict:
        if not isinstance(value, dict):
            return f"{where}: expected a mapping, got {shown_value(value)}"
        _, item = get_args(hint) or (str, Any)
        for key, member in value.items():
            problem = shape_problem(member, item, f"{path}.{key}" if path else str(key))
            if problem is not None:
                return problem
        return None
    if origin is list:
        if not isinstance(value, list):
            return f"{where}: expected a list, got {shown_value(value)}"
        (item,) = get_args(hint) or (Any,)
        for index, member in enumerate(value):
            problem = shape_problem(member, item, f"{path}[{index}]")
            if problem is not None:
                return problem
        return None
    return _scalar_problem(value, hint, where)


def _dataclass_problem(value: object, cls: type, path: str) -> str | None:
    where = path or "the result"
    if not isinstance(value, dict):
        return f"{where}: expected a mapping of fields, got {shown_value(value)}"
    fields = {field.name: field for field in dataclasses.fields(cls)}
    unknown = sorted(set(value) - set(fields), key=str)
    if unknown:
        return f"{where}: unknown field {unknown[0]!r}"
    hints = _hints(cls)
    for name, field in fields.items():
        inside = f"{path}.{name}" if path else name
        if name not in value:
            required = (
                field.default is dataclasses.MISSING
                and field.default_factory is dataclasses.MISSING
            )
            if required:
                return f"{inside}: missing"
            continue
        problem = shape_problem(value[name], hints[name], inside)
        if problem is not None:
            return problem
    return None


def _scalar_problem(value: object, hint: Any, where: str) -> str | None:
    if hint is bool:
        fits, expected = isinstance(value, bool), "true or false"
    elif hint is int:
        fits, expected = _number(value) and isinstance(value, int), "a whole number"
    elif hint is float:
        fits = _number(value) and math.isfinite(float(value))  # type: ignore[arg-type]
        expected = "a finite number"
    elif hint is str:
        fits, expected = isinstance(value, str), "text"
    elif isinstance(hint, type) and issubclass(hint, Enum):
        known = [member.value for member in hint]
        fits, expected = value in known, "one of " + ", ".join(map(str, known))
    else:  # a type the result model does not use yet: nothing to check it against
        return None
    return None if fits else f"{where}: expected {expected}, got {shown_value(value)}"
