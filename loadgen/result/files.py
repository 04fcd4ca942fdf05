"""Writing result files: JSON results, reports and exports end up on disk through here."""

from __future__ import annotations

from pathlib import Path


def write_atomically(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file renamed over it, so a crash or
    Ctrl-C mid-write never leaves a partial file where a good one was; returns the path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(target.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(target)
    return target
