"""HTTP/1.1 requests with ``${variables}``: compiled once, rendered per send. Sans-IO.

Template text: ``${name}`` is the value of variable ``name``; ``${name.column}`` is one
column of a CSV row variable; ``$${`` is a literal ``${``. Variables may appear in the path
(values are percent-encoded there, except unreserved characters and ``/``), in header
values (as they are: the caller checks that such values hold no line break) and in a text
body (UTF-8; ``Content-Length`` follows each rendered body).

A request without any reference compiles to its encoded bytes (``fixed``): sending it costs
what a fixed request costs, the same ``bytes`` object every time. A request with references
compiles to literal pieces and slots; ``render(values)`` joins them with the values given
by key (``name`` or ``name.column``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from loadgen.protocols.http1 import BODY_METHODS, encode_request

_PLACEHOLDER = re.compile(r"\$(\$?)\{([^{}]*)\}")
_REFERENCE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(?:\.([^.{}\s]+))?$")
#: Values made only of these need no percent-encoding in a path (the common case: numbers,
#: UUIDs, words): a regex match is cheaper than ``quote``.
_PATH_SAFE = re.compile(r"[A-Za-z0-9_.~/-]*\Z").match


@dataclass(frozen=True)
class Reference:
    """``${variable}`` or ``${variable.column}``."""

    variable: str
    column: str | None = None

    @property
    def key(self) -> str:
        return self.variable if self.column is None else f"{self.variable}.{self.column}"


def parse_template(text: str) -> list[str | Reference]:
    """Literal text and references, alternating: ``[str, Reference, str, ..., str]``.
    ``ValueError`` for a ``${...}`` that is not a reference or a ``${`` never closed."""
    pieces: list[str | Reference] = []
    literal: list[str] = []
    position = 0
    for match in _PLACEHOLDER.finditer(text):
        gap = text[position : match.start()]
        _check_gap(gap, text)
        literal.append(gap)
        position = match.end()
        if match.group(1):  # $${...}: the text itself, one $ less
            literal.append(match.group(0)[1:])
            continue
        found = _REFERENCE.match(match.group(2).strip())
        if found is None:
            raise ValueError(
                f"{match.group(0)!r} in {text!r} is not a variable reference "
                "(${name} or ${name.column}; $${ is a literal ${)"
            )
        pieces.append("".join(literal))
        pieces.append(Reference(found.group(1), found.group(2)))
        literal = []
    gap = text[position:]
    _check_gap(gap, text)
    literal.append(gap)
    pieces.append("".join(literal))
    return pieces


def _check_gap(gap: str, text: str) -> None:
    if "${" in gap:
        raise ValueError(f"'${{' without a closing '}}' in {text!r} ($${{ is a literal ${{)")


def references(text: str) -> list[Reference]:
    """Every reference in ``text``, in order."""
    return [piece for piece in parse_template(text) if isinstance(piece, Reference)]


def _path_value(value: str) -> str:
    return value if _PATH_SAFE(value) else quote(value, safe="/")


#: A compiled slot: (key of the value, True when it goes into the path: percent-encoded).
_Slot = tuple[str, bool]
#: Marks where ``Content-Length`` goes (its value follows the rendered body).
_LENGTH = None


def _format(parts: Sequence[str | _Slot | None]) -> tuple[str, tuple[_Slot | None, ...]]:
    """A ``%``-format string of the literal parts (``%s`` at each slot) and the slots in
    order: rendering is then one C-level formatting call."""
    text = "".join(part.replace("%", "%%") if isinstance(part, str) else "%s" for part in parts)
    return text, tuple(part for part in parts if not isinstance(part, str))


class RequestTemplate:
    """One request, compiled. ``render(values)`` is the request with the values (by key) in
    place of its references; ``keys`` are the keys it uses. ``fixed`` is its bytes when it
    has no reference (``render`` then returns that same object), else None."""

    __slots__ = ("fixed", "keys", "render")

    def __init__(
        self,
        method: str,
        path: str,
        headers: Sequence[tuple[str, str]],
        body: str | bytes,
        host: str,
    ) -> None:
        method = method.upper()
        text_body = body if isinstance(body, str) else ""
        parsed_path = parse_template(path)
        parsed_headers = [(name, parse_template(value)) for name, value in headers]
        parsed_body = parse_template(text_body)
        keys = [
            piece.key
            for pieces in (parsed_path, *(h for _, h in parsed_headers), parsed_body)
            for piece in pieces
            if isinstance(piece, Reference)
        ]
        self.keys = tuple(dict.fromkeys(keys))
        body_bytes = body.encode("utf-8") if isinstance(body, str) else body
        if not self.keys:
            fixed = encode_request(method, path, headers, body_bytes, host)
            self.fixed: bytes | None = fixed
            self.render: Callable[[Mapping[str, str]], bytes] = lambda values: fixed
            return
        self.fixed = None
        first = parsed_path[0]
        if not (isinstance(first, str) and first.startswith("/")):
            raise ValueError(f"HTTP path {path!r} must start with a literal /")
        # Check every literal part as encode_request would, with the references blanked.
        sample = {key: "0" for key in self.keys}
        encode_request(
            method,
            _join(parsed_path, sample, path=False),
            [(name, _join(value, sample, path=False)) for name, value in parsed_headers],
            body_bytes,
            host,
        )
        head: list[str | _Slot | None] = [f"{method} "]
        head += _slots(parsed_path, path=True)
        head.append(" HTTP/1.1\r\n")
        names = {name.lower() for name, _ in headers}
        if "host" not in names:
            head.append(f"Host: {host}\r\n")
        for name, value in parsed_headers:
            head.append(f"{name}: ")
            head += _slots(value, path=False)
            head.append("\r\n")
        body_is_template = any(isinstance(p, Reference) for p in parsed_body)
        if body_is_template:
            head += ["Content-Length: ", _LENGTH, "\r\n"]
        elif body_bytes or method in BODY_METHODS:
            head.append(f"Content-Length: {len(body_bytes)}\r\n")
        head.append("\r\n")
        head_format, head_slots = _format(head)
        body_format, body_slots = _format(_slots(parsed_body, path=False))
        self.render = _compile_render(
            head_format,
            head_slots,
            body_format if body_is_template else None,
            [slot[0] for slot in body_slots if slot is not None],
            body_bytes,
        )


def _compile_render(
    head_format: str,
    head_slots: Sequence[_Slot | None],
    body_format: str | None,
    body_keys: Sequence[str],
    body_bytes: bytes,
) -> Callable[[Mapping[str, str]], bytes]:
    """One function for one template, e.g. for ``POST /i/${id}`` with a templated body::

        def render(values):
            body = (BODY % (values['n'],)).encode()
            return (HEAD % (quote(values['id']), len(body))).encode('latin-1') + body

    (generated once: a plain function does the least per send that Python can; keys go in
    through ``repr``, formats and bytes as constants, so no text of a scenario is code)."""
    if body_format is not None:
        items = "".join(f"values[{key!r}], " for key in body_keys)
        body_line = f"body = (BODY % ({items})).encode()"
    else:
        body_line = "body = BODY_BYTES"
    head_items = "".join(
        "len(body), "
        if slot is None
        else (f"quote(values[{slot[0]!r}]), " if slot[1] else f"values[{slot[0]!r}], ")
        for slot in head_slots
    )
    source = (
        "def render(values):\n"
        f"    {body_line}\n"
        f"    return (HEAD % ({head_items})).encode('latin-1') + body\n"
    )
    namespace: dict[str, Any] = {
        "HEAD": head_format,
        "BODY": body_format,
        "BODY_BYTES": body_bytes,
        "quote": _path_value,
    }
    exec(compile(source, "<request template>", "exec"), namespace)
    render: Callable[[Mapping[str, str]], bytes] = namespace["render"]
    return render


def _join(pieces: Sequence[str | Reference], values: Mapping[str, str], path: bool) -> str:
    return "".join(
        piece
        if isinstance(piece, str)
        else (_path_value(values[piece.key]) if path else values[piece.key])
        for piece in pieces
    )


def _slots(pieces: Sequence[str | Reference], path: bool) -> list[str | _Slot]:
    return [
        piece if isinstance(piece, str) else (piece.key, path) for piece in pieces if piece != ""
    ]


def header_value_problem(value: str) -> str | None:
    """Why ``value`` cannot go into a header as it is (a line break, NUL, not Latin-1)."""
    if any(c in value for c in "\r\n\0"):
        return f"{value!r} has a line break or NUL, which would end the header"
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        return f"{value!r} is not Latin-1 (header values are)"
    return None
