"""Small HTML builders shared by the report's tables: cells, tables, badges. Callers escape
text before passing it; what these return is HTML."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from html import escape

from loadgen.report.loading import LoadedRun


def cell(text: str, tag: str = "td", css: str = "") -> str:
    klass = f' class="{css}"' if css else ""
    return f"<{tag}{klass}>{text}</{tag}>"


def grid_table(
    header: Sequence[str] | None, rows: Iterable[Sequence[str]], css: str = "grid"
) -> str:
    """``header`` and cells are HTML already (escape text before passing it)."""
    head = ""
    if header is not None:
        head = "<thead><tr>" + "".join(cell(h, "th") for h in header) + "</tr></thead>"
    body = "".join(
        "<tr>" + cell(row[0], "th") + "".join(cell(c, css="num") for c in row[1:]) + "</tr>"
        for row in rows
    )
    return f'<table class="{css}">{head}<tbody>{body}</tbody></table>'


def badge(text: str, kind: str) -> str:
    return f'<span class="badge {kind}">{escape(text)}</span>'


def per_run_table(
    runs: Sequence[LoadedRun], rows: Sequence[tuple[str, Callable[[LoadedRun], str]]]
) -> str:
    """A table with one column per run and one row per (label, value function)."""
    header = ["", *(escape(run.label) for run in runs)]
    rows_html = [[escape(label), *(get(run) for run in runs)] for label, get in rows]
    return grid_table(header, rows_html, css="grid per-run")
