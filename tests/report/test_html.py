"""The HTML report: self-contained, readable without JavaScript, and drawn in a real Chromium."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from loadgen.report.chartlib import chart_library
from loadgen.report.html import render_html, write_html
from loadgen.report.loading import LoadedRun, load_run
from loadgen.stats import memory_windows

from . import chromium
from .conftest import RunFile
from .urls import external_references

ALL = ("closed", "open", "refused")


@pytest.fixture(scope="module")
def runs(real_runs: dict[str, RunFile]) -> list[LoadedRun]:
    return [load_run(real_runs[name].path, name) for name in ALL]


@pytest.fixture(scope="module")
def page(runs: list[LoadedRun]) -> str:
    return render_html(runs)


class _Text(HTMLParser):
    """The text a reader sees with JavaScript off: everything outside <script> and <style>."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._skip += tag in ("script", "style")

    def handle_endtag(self, tag: str) -> None:
        self._skip -= tag in ("script", "style")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def visible_text(html: str) -> str:
    parser = _Text()
    parser.feed(html)
    return " ".join(" ".join(parser.parts).split())


def chart_data(html: str) -> list[dict[str, Any]]:
    match = re.search(r'<script type="application/json" id="loadgen-data">(.*?)</script>', html)
    assert match is not None
    charts: list[dict[str, Any]] = json.loads(match.group(1))["charts"]
    return charts


# ------------------------------------------------------------------------------ the file


@pytest.mark.parametrize(
    ("snippet", "external"),
    [
        ('<a href="https://example.org">', True),
        ('<img src="a.png">', True),
        ("<a href=x.html>", True),
        ("background: url(//cdn.example/x.png)", True),
        ("<script src='//cdn.example/x.js'></script>", True),
        ('<link rel="stylesheet" href="#x">', True),
        ("@import 'x.css';", True),
        ('<a href="#summary">', False),
        ('background: url("data:image/png;base64,AAAA")', False),
    ],
)
def test_the_url_scanner_itself(snippet: str, external: bool) -> None:
    assert bool(external_references(snippet)) is external


def test_page_is_self_contained(page: str) -> None:
    assert external_references(page) == []
    assert "default-src 'none'" in page  # and the browser is told to refuse any load anyway
    library = chart_library()
    assert library.script in page and library.stylesheet in page
    assert "Copyright (c) 2022 Leon Sorokin" in page


def test_tables_carry_the_numbers_without_javascript(page: str, runs: list[LoadedRun]) -> None:
    text = visible_text(page)
    for run in runs:
        summary = run.result.summary
        assert f"{summary.requests:,}" in text
        assert run.result.environment.backend in text
    closed = runs[0].result.summary.latency_us
    assert "Request latency" in text and "p99.9" in text
    assert closed.count > 0 and f"{closed.count:,}" in text
    # the open run's thresholds: one passes, one fails
    assert "thresholds none set 1 of 2 failed none set" in text
    assert "p99 < 10s" in text and "throughput > 1M/s" in text
    assert re.search(r"p99 < 10s \S+ (s|ms|µs) pass", text)
    assert re.search(r"throughput > 1M/s [\d,.]+ req/s fail", text)
    assert "Request latency, corrected (from each request's intended send time)" in text
    assert "Schedule lag" in text
    # errors by kind: the refused run's connections were all refused
    refused = runs[2].result.summary.errors["refused"]
    assert refused > 0 and f"refused 0 0 {refused:,}" in text
    assert "No request completed in refused" in text


def test_charts_cover_every_run_that_has_data(page: str) -> None:
    charts = {chart["id"]: chart for chart in chart_data(page)}
    assert set(charts) == {
        "throughput",
        "latency-0",
        "latency-1",
        "spectrum",
        "errors-2",
        "connections",
        "generator-cpu",
        "memory-kernel",
        "memory-posted",
        "memory-rss",
    }
    assert [s["label"] for s in charts["throughput"]["series"]] == [
        "closed",
        "open",
        "open: scheduled",  # the open model's schedule beside its throughput
        "refused",
    ]
    assert [s["label"] for s in charts["latency-0"]["series"]] == ["p50", "p90", "p99", "max"]
    assert [s["label"] for s in charts["latency-1"]["series"]][-1] == "raw p99"
    spectrum = charts["spectrum"]
    assert spectrum["x_kind"] == "percentile" and spectrum["log_y"]
    assert [(s["label"], s["dash"]) for s in spectrum["series"]] == [
        ("closed", False),
        ("open (corrected)", False),
        ("open (raw)", True),
    ]
    # every curve rises to its run's maximum at x = its sample count
    for series, histogram in zip(spectrum["series"], ("closed", "open"), strict=False):
        values = [v for v in series["values"] if v is not None]
        assert values == sorted(values), histogram
    assert [s["label"] for s in charts["errors-2"]["series"]] == ["refused"]
    for chart in charts.values():
        assert page.count(f'data-chart="{chart["id"]}"') == 1
    assert f'data-charts-expected="{len(charts)}"' in page


def test_sections_that_do_not_apply_are_left_out(runs: list[LoadedRun]) -> None:
    closed = runs[0]
    raw = json.loads(json.dumps(closed.raw))
    for interval in raw["intervals"]:
        del interval["connections"]  # as in a result written before intervals carried them
    del raw["memory"]  # as in a result written before runs sampled memory
    page = render_html([replace(closed, raw=raw)])
    assert 'id="thresholds"' not in page and 'id="memory"' not in page
    assert 'id="connections"' not in page and "No errors in any run." in page
    assert "2 runs" not in page and "started " in page


def test_connections_chart_follows_the_intervals(runs: list[LoadedRun]) -> None:
    closed = runs[0]
    raw = json.loads(json.dumps(closed.raw))
    for index, interval in enumerate(raw["intervals"]):
        interval["connections"] = 10 - index
    page = render_html([replace(closed, raw=raw)])
    connections = next(c for c in chart_data(page) if c["id"] == "connections")
    assert connections["series"][0]["values"] == [10 - i for i in range(len(raw["intervals"]))]


def test_memory_section_draws_every_run_and_tabulates_per_connection(
    page: str, runs: list[LoadedRun]
) -> None:
    charts = {chart["id"]: chart for chart in chart_data(page)}
    for chart_id in ("memory-kernel", "memory-posted", "memory-rss"):
        assert [s["label"] for s in charts[chart_id]["series"]] == list(ALL), chart_id
        assert charts[chart_id]["y_format"] == "bytes"
    # kernel memory is drawn as the change since each run's first sample: it starts at 0
    for series in charts["memory-kernel"]["series"]:
        assert next(v for v in series["values"] if v is not None) == 0
    # the closed run posted one 64 KiB buffered receive per connection: exactly, per connection
    posted = charts["memory-posted"]["series"][0]["values"]
    closed = runs[0].result
    assert max(v for v in posted if v is not None) == 10 * closed.scenario["receive_buffer"]
    text = visible_text(page)
    assert (
        "closed: receive bytes posted by the engine 0 B 640 KiB 640 KiB 64 KiB (at 10 connections)"
        in text
    )
    assert "closed: kernel non-pageable (SUnreclaim + TCP buffers + VmPin)" in text
    assert "closed: generator resident memory (VmRSS)" in text


def test_memory_not_measurable_says_why_instead_of_drawing_zeros(runs: list[LoadedRun]) -> None:
    """Samples from the Windows sampler where it cannot measure (here: not Windows; under
    Wine: no kernel pool) carry no numbers: the report gives the reason and draws nothing."""
    closed = runs[0]
    raw = json.loads(json.dumps(closed.raw))
    raw["memory"] = []
    for second in range(3):
        sample = memory_windows.sample(4096).as_dict()
        del sample["engine_posted_bytes"]
        raw["memory"].append({"t_s": float(second), **sample, "engine_posted_recv_bytes": 4096})
    page = render_html([replace(closed, raw=raw)])
    text = visible_text(page)
    reason = memory_windows.sample().reason
    assert reason is not None and reason.startswith("not measurable here: ")
    assert f"closed: kernel non-pageable memory {reason}" in text
    assert "the Windows sampler does not read the working set" in text
    ids = {chart["id"] for chart in chart_data(page)}
    assert "memory-kernel" not in ids and "memory-rss" not in ids
    assert "memory-posted" in ids  # the engine's own count is known everywhere


# ------------------------------------------------------------------------------ in Chromium


def test_every_chart_draws_in_chromium_without_errors(page: str, tmp_path: Path) -> None:
    file = tmp_path / "report.html"
    file.write_text(page, encoding="utf-8")
    loaded = chromium.load(file, tmp_path / "profile")
    expected = len(chart_data(page))
    assert loaded.root_attribute("data-js-errors") is None, loaded.root_attribute("data-js-errors")
    assert loaded.console_messages == []
    assert loaded.root_attribute("data-charts-expected") == str(expected)
    assert loaded.root_attribute("data-charts-drawn") == str(expected)
    assert loaded.dom.count("<canvas") == expected == 10
    # uPlot's legends name every series of every chart
    assert loaded.dom.count('class="u-legend') == expected


def test_chromium_check_sees_a_broken_page(page: str, tmp_path: Path) -> None:
    """The check above can fail: a page whose charts throw is caught, with the reason."""
    file = tmp_path / "broken.html"
    file.write_text(page.replace("new uPlot(", "new uPlotMissing("), encoding="utf-8")
    loaded = chromium.load(file, tmp_path / "profile")
    errors = loaded.root_attribute("data-js-errors")
    assert errors is not None and "chart throughput" in errors and "uPlotMissing" in errors
    assert loaded.root_attribute("data-charts-drawn") == "0"
    assert "<canvas" not in loaded.dom
    assert "This chart could not be drawn." in loaded.dom


def test_write_html_creates_folders(runs: list[LoadedRun], tmp_path: Path) -> None:
    target = write_html(runs[:1], tmp_path / "a" / "b" / "r.html")
    assert target.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
