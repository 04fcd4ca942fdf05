"""Finds anything in a page that could make a browser fetch from elsewhere."""

from __future__ import annotations

import re

# Absolute and protocol-relative URLs, and every HTML/CSS construct that loads a resource.
_PATTERNS = (
    r"[a-z][a-z0-9+.-]*://",  # http://, https://, ftp://, ws://, file://, ...
    r"""["'(=]\s*//[^/\s]""",  # protocol-relative: src="//host", url(//host)
    r"\bsrc\s*=",
    r"\bsrcset\s*=",
    r"<link\b",
    r"@import\b",
    r"\burl\(\s*(?!['\"]?data:)",
    r"""\bhref\s*=\s*(?!["']?#)""",  # only in-page anchors
    r"\baction\s*=",
    r"\bimportScripts\s*\(",
    r"\bfetch\s*\(",
    r"XMLHttpRequest",
    r"new\s+WebSocket",
)
_FIND = re.compile("|".join(f"(?:{p})" for p in _PATTERNS), re.IGNORECASE)


def external_references(text: str) -> list[str]:
    """Each match with some context; an empty list for a page that loads nothing."""
    return [text[max(0, m.start() - 30) : m.end() + 30] for m in _FIND.finditer(text)]
