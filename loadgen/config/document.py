"""A scenario's YAML document: parsed safely, bounded in size, with the line of every field;
and a ``--set`` value read the same way. No validation of the fields here (``scenario``),
and no wording of their problems (``problems``).

YAML anchors and aliases (``&a``, ``*a``) make a small text stand for a large document: a
343-byte "billion laughs" of seven levels of nine aliases each expands to 4.8 million
values, and an anchor may even contain an alias to itself. The composed node graph is
therefore walked once per node (never once per path to it) to size its expansion, and a
document that expands past ``MAX_EXPANDED_NODES`` values, nests deeper than ``MAX_DEPTH``, or
refers to itself is refused before anything else looks at it.
"""

from __future__ import annotations

import reprlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import yaml

#: The largest document, counted as values after expanding every alias. The scenarios in
#: scenarios/ have 20-60; a staircase of 1,000 phases of five fields has about 6,000. Past
#: this many, validating (and echoing a bad value in an error) would take seconds and memory
#: in proportion, for a document no person wrote.
MAX_EXPANDED_NODES = 100_000
#: Deepest nesting of mappings and lists. A scenario is at most five levels deep
#: (load.phases[0].connections); PyYAML's parser recurses per level and exhausts Python's
#: stack near 300.
MAX_DEPTH = 50
#: How much of an offending value an error message shows.
SHOWN_VALUE_CHARS = 80

_shown = reprlib.Repr()
_shown.maxlevel = 3
_shown.maxstring = SHOWN_VALUE_CHARS
_shown.maxother = SHOWN_VALUE_CHARS


def shown_value(value: object) -> str:
    """``repr(value)``, shortened to about ``SHOWN_VALUE_CHARS`` (a value from a document can
    be large, or refer to itself)."""
    text = _shown.repr(value)
    return text if len(text) <= SHOWN_VALUE_CHARS else text[: SHOWN_VALUE_CHARS - 3] + "..."


class ScenarioError(ValueError):
    """A scenario that cannot be used; ``str()`` is one line per problem, ready to print."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


Path = tuple[str | int, ...]


@dataclass(frozen=True)
class Located:
    """Where each node of the document starts, by path of keys and indexes."""

    lines: dict[Path, int]

    def line_of(self, path: Path) -> int | None:
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get(())


def _children(node: yaml.Node) -> list[tuple[str | int | None, yaml.Node, yaml.Node | None]]:
    """(key or index, child node, key node) of a mapping or sequence node; key None for a
    key that is itself a collection (no path can name it)."""
    if isinstance(node, yaml.MappingNode):
        return [(k.value if isinstance(k, yaml.ScalarNode) else None, v, k) for k, v in node.value]
    if isinstance(node, yaml.SequenceNode):
        return [(index, item, None) for index, item in enumerate(node.value)]
    return []


def check_size(root: yaml.Node, source: str) -> None:
    """Refuse a document that refers to itself, nests past ``MAX_DEPTH`` or expands past
    ``MAX_EXPANDED_NODES`` values (each node visited once; aliases counted as expanded)."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    # Iterative depth-first walk: (node, depth, children done?).
    stack: list[tuple[yaml.Node, int, bool]] = [(root, 1, False)]
    while stack:
        node, depth, done = stack.pop()
        here = id(node)
        if done:
            children = _children(node)  # a mapping's keys count as values too
            size = 1 + sum(sizes[id(child)] + (key is not None) for _, child, key in children)
            sizes[here] = size
            open_nodes.discard(here)
            if size > MAX_EXPANDED_NODES:
                _refuse(source, node, f"it expands to more than {MAX_EXPANDED_NODES:,} values")
            continue
        if here in sizes:
            continue
        if here in open_nodes:
            _refuse(source, node, "an alias refers to the node that contains it (a cycle)")
        if depth > MAX_DEPTH:
            _refuse(source, node, f"it nests deeper than {MAX_DEPTH} levels")
        open_nodes.add(here)
        stack.append((node, depth, True))
        for _key, child, _key_node in reversed(_children(node)):
            if id(child) in open_nodes:
                _refuse(source, child, "an alias refers to the node that contains it (a cycle)")
            if id(child) not in sizes:
                stack.append((child, depth + 1, False))


def _refuse(source: str, node: yaml.Node, why: str) -> None:
    raise ScenarioError([f"{source}:{node.start_mark.line + 1}: document refused: {why}"])


def index_lines(root: yaml.Node) -> dict[Path, int]:
    """The line of every path in the document; a node reached through several aliases is
    indexed at its first path only (its other paths fall back to the alias's own key)."""
    lines: dict[Path, int] = {}
    seen: set[int] = set()
    stack: list[tuple[yaml.Node, Path]] = [(root, ())]
    while stack:
        node, path = stack.pop()
        lines.setdefault(path, node.start_mark.line + 1)
        if id(node) in seen:
            continue
        seen.add(id(node))
        for key, child, key_node in reversed(_children(node)):
            if key is None:
                continue
            child_path = (*path, key)
            if key_node is not None:  # a field's line is its key's
                lines[child_path] = key_node.start_mark.line + 1
            stack.append((child, child_path))
    return lines


def _yaml_problem(exc: yaml.YAMLError) -> tuple[str, str]:
    mark = getattr(exc, "problem_mark", None)
    line = f":{mark.line + 1}" if mark is not None else ""
    return line, getattr(exc, "problem", None) or str(exc)


def _parse(text: str, source: str) -> tuple[yaml.Node | None, Any]:
    """Compose the text's one document, check its size, then build it (shared nodes stay
    shared objects: an alias costs no copy)."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, None
        check_size(node, source)
        return node, loader.construct_document(node)
    finally:
        loader.dispose()


def load_document(text: str, source: str) -> tuple[dict[str, Any], Located]:
    """The document as a mapping, and the line of each path in it; ``ScenarioError`` for
    text that is not YAML, not one mapping, or too large once expanded."""
    try:
        node, document = _parse(text, source)
    except yaml.YAMLError as exc:
        line, problem = _yaml_problem(exc)
        raise ScenarioError([f"{source}{line}: not valid YAML: {problem}"]) from None
    except RecursionError:  # PyYAML's parser recurses once per level of nesting
        raise ScenarioError(
            [f"{source}: document refused: it nests deeper than {MAX_DEPTH} levels"]
        ) from None
    if node is None or not isinstance(document, dict):
        raise ScenarioError(
            [f"{source}:1: expected a mapping of scenario fields (name, target, ...)"]
        )
    return document, Located(index_lines(node))


def override_value(path: str, raw: str) -> Any:
    """A ``--set`` value: YAML (``1000``, ``[a, b]``, ``{duration: 1s}``), or the text
    itself when it is not YAML (``[::1]:8080``, an IPv6 target); bounded like a file."""
    if not raw.strip():
        return ""
    where = f"--set {path}"
    try:
        return _parse(raw, where)[1]
    except yaml.YAMLError:
        return raw
    except RecursionError:
        raise ScenarioError(
            [f"{where}: document refused: it nests deeper than {MAX_DEPTH} levels"]
        ) from None
