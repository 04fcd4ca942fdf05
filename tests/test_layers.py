"""The package's layers: each package imports only from its own layer or the ones below
(README "Architecture"), so the tree can be read as the architecture. Checked from the
source text (every ``import loadgen...`` / ``from loadgen... import``, also inside
functions), without importing anything."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "loadgen"
#: Bottom (0) to top; packages of one rank do not import each other.
RANK = {
    "engine": 0,
    "protocols": 1,
    "stats": 1,
    "config": 2,
    "result": 3,
    "load": 4,
    "targets": 4,
    "run": 5,
    "distributed": 6,
    "report": 6,
    "study": 7,
    "capacity": 7,
    "cli": 8,
}
IMPORT = re.compile(r"^\s*(?:from|import) loadgen\.(\w+)", re.M)


def _imports() -> list[tuple[str, str, str]]:
    """(file, its package, the package it imports) for every cross-package import."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).parts
        if len(parts) < 2:  # loadgen/__init__.py, loadgen/__main__.py: the package's face
            continue
        for imported in IMPORT.findall(path.read_text(encoding="utf-8")):
            if imported != parts[0]:
                found.append((str(path.relative_to(PACKAGE.parent)), parts[0], imported))
    return found


def test_every_package_has_a_layer() -> None:
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert packages == set(RANK), "give a new package its rank here and in README"


@pytest.mark.parametrize("where", ["upward", "sideways"])
def test_no_import_runs_up_or_sideways(where: str) -> None:
    bad = [
        f"{file}: {package} -> {imported}"
        for file, package, imported in _imports()
        if imported in RANK
        and (
            RANK[imported] > RANK[package] if where == "upward" else RANK[imported] == RANK[package]
        )
    ]
    assert bad == []
