"""Validation errors in the words of the scenario, not of the validation library.

pydantic reports ``Input should be 'buffered', 'zero-byte' or 'buffer-ring'``; a person
reading a scenario error wants ``expected buffered, zero-byte or buffer-ring, got 'zerobyte';
did you mean 'zero-byte'?``. ``friendly_message`` turns one pydantic error (a dict of
``ValidationError.errors()``) into that text; the caller adds where it happened (file and
line, or ``--set``) and the field.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from typing import Any

from loadgen.config.document import shown_value

_QUOTED = re.compile(r"'([^']*)'")


def choices_text(choices: Sequence[str]) -> str:
    """``a, b or c``."""
    if len(choices) <= 1:
        return "".join(choices)
    return ", ".join(choices[:-1]) + f" or {choices[-1]}"


def did_you_mean(word: str, known: Sequence[str]) -> str:
    """``; did you mean 'zero-byte'?`` for the closest known word, or nothing."""
    close = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    if not close:  # "zerobyte" vs "zero-byte": compare without the punctuation too
        squeezed = {re.sub(r"[-_ ]", "", k).lower(): k for k in known}
        match = difflib.get_close_matches(re.sub(r"[-_ ]", "", word).lower(), squeezed, n=1)
        close = [squeezed[match[0]]] if match else []
    return f"; did you mean {close[0]!r}?" if close else ""


def choice_problem(value: object, choices: Sequence[str]) -> str:
    """``expected buffered, zero-byte or buffer-ring, got 'zerobyte'; did you mean ...``."""
    return f"expected {choices_text(choices)}, got {shown_value(value)}" + did_you_mean(
        str(value), choices
    )


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'s' if count != 1 else ''}"


def friendly_message(error: Mapping[str, Any]) -> str:
    """What went wrong, in plain words (no location)."""
    kind = str(error["type"])
    context: Mapping[str, Any] = error.get("ctx") or {}
    value = error.get("input")
    if kind in ("enum", "literal_error"):
        return choice_problem(value, _QUOTED.findall(str(context.get("expected", ""))))
    bounds = {
        "greater_than_equal": ("at least", "ge"),
        "greater_than": ("more than", "gt"),
        "less_than_equal": ("at most", "le"),
        "less_than": ("less than", "lt"),
    }
    if kind in bounds:
        words, key = bounds[kind]
        return f"must be {words} {context.get(key)}, got {shown_value(value)}"
    simple = {
        "int_parsing": "expected a whole number",
        "int_type": "expected a whole number",
        "int_from_float": "expected a whole number",
        "float_parsing": "expected a number",
        "float_type": "expected a number",
        "bool_parsing": "expected true or false",
        "bool_type": "expected true or false",
        "string_type": "expected text",
        "dict_type": "expected a mapping (key: value entries)",
        "model_type": "expected a mapping (key: value entries)",
        "model_attributes_type": "expected a mapping (key: value entries)",
        "list_type": "expected a list",
        "tuple_type": "expected a list",
    }
    if kind in simple:
        return f"{simple[kind]}, got {shown_value(value)}"
    if kind == "too_short":
        return f"needs at least {_plural(int(context.get('min_length', 1)), 'item')}"
    if kind == "too_long":
        return f"takes at most {_plural(int(context.get('max_length', 0)), 'item')}"
    if kind == "string_too_long":
        return f"at most {context.get('max_length')} characters, got {len(str(value))}"
    if kind == "string_pattern_mismatch":
        return f"{shown_value(value)} does not match the pattern {context.get('pattern')}"
    message = str(error["msg"]).removeprefix("Value error, ")
    if "input" in error and kind != "value_error":
        message += f" (got {shown_value(value)})"
    return message
