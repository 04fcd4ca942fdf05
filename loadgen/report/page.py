"""The frame every HTML page of loadgen shares (the run report, the receive-mode study).

``assets/report.html`` with its placeholders filled: the page's own values (title, sections,
chart JSON) plus what is the same on every page: the vendored uPlot, ``report.css``,
``assets/charts.js`` (drawing, resizing, formatters, error notes) and then the page's own
script, which only builds each chart's uPlot options. Everything is inlined; a Content-
Security-Policy of ``default-src 'none'`` makes the browser refuse any load from anywhere.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from html import escape
from importlib import resources
from typing import Any

from loadgen import __version__
from loadgen.report.chartlib import chart_library

_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")
# Inside <script>, "</" could end the element early; JSON's \u escapes keep the data inert.
_SCRIPT_UNSAFE = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"})


def asset(name: str) -> str:
    return resources.files("loadgen.report").joinpath("assets", name).read_text("utf-8")


def script_json(data: Any) -> str:
    return json.dumps(data, allow_nan=False, separators=(",", ":")).translate(_SCRIPT_UNSAFE)


def render_page(values: dict[str, str], script: str) -> str:
    """The page: ``values`` fill title, heading, meta, toc, body, chart_count, data and
    generated (already escaped); ``script`` names the page's asset (``report.js``...)."""
    library = chart_library()
    filled = {
        **values,
        "uplot_css": library.stylesheet,
        "uplot_js": library.script,
        "report_css": asset("report.css"),
        "charts_js": asset("charts.js"),
        "page_js": asset(script),
        "chart_library": escape(f"{library.name} {library.version}"),
        "chart_license_name": escape(library.license_name),
        "chart_license": escape(library.license_text),
        "version": escape(__version__),
    }
    return _PLACEHOLDER.sub(lambda match: filled[match.group(1)], asset("report.html"))


def page_section(anchor: str, title: str, lead_html: str, content: str) -> tuple[str, str, str]:
    """One section of a page as ``render_sections_page`` takes it: (anchor, title, HTML),
    with ``lead_html`` (HTML already, may be empty) as its lead paragraph."""
    lead = f'<p class="lead">{lead_html}</p>' if lead_html else ""
    html = f'<section id="{anchor}"><h2>{escape(title)}</h2>{lead}{content}</section>'
    return anchor, title, html


def generated_text(generated: datetime | None = None) -> str:
    """A page's "generated" stamp: ``generated`` (default now) to the minute, in UTC."""
    return (generated or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")


def render_sections_page(
    *,
    title: str,
    heading: str,
    meta: str,
    sections: list[tuple[str, str, str]],
    charts: list[Any],
    script: str,
    generated: str,
) -> str:
    """A page of ``(anchor, title, html)`` sections with a table of contents and the
    charts' data for ``script``; the plain-text arguments are escaped here."""
    values = {
        "title": escape(title),
        "heading": escape(heading),
        "meta": escape(meta),
        "toc": "".join(f'<a href="#{anchor}">{escape(name)}</a>' for anchor, name, _ in sections),
        "body": "\n".join(html for _, _, html in sections),
        "chart_count": str(len(charts)),
        "data": script_json({"charts": charts}),
        "generated": escape(generated),
    }
    return render_page(values, script)
