"""A distributed run's cluster in every output: the terminal summary, the HTML report (drawn
in Chromium), compare's markdown and JUnit, and the JSON file ``loadgen report`` reads.

The run is real (the session's closed-model echo run); its cluster is set by hand, as the
distributed runner will: three hosts, one lost, one clock warning. A host name with markup
characters checks that every rendering shows it as text.
"""

from __future__ import annotations

import io
import json
import re
import xml.etree.ElementTree as ET
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from loadgen.cli.app import app
from loadgen.report.console import render_summary
from loadgen.report.html import render_html
from loadgen.report.loading import load_run
from loadgen.result.model import SCHEMA_VERSION, Cluster, ClusterHost, RunResult

from . import chromium
from .conftest import RunFile
from .test_html import chart_data, visible_text

runner = CliRunner()
SCHEDULER = "tcp://10.0.0.1:8786"
LOST_REASON = "KilledWorker: [worker died] after 3 tries"
DASH = "\u2013"  # a value not measured (formatting.MISSING)
WARNING = "host 1's clock is 14.2 ms off the scheduler's"


def _cluster(version: str) -> Cluster:
    return Cluster(
        scheduler=SCHEDULER,
        hosts=[
            ClusterHost(0, "tcp://10.0.0.11:40331", "node-a", 2, 0.4, version, 0.12, 0.05, 0.9),
            ClusterHost(1, "tcp://10.0.0.12:40331", "node-b", 2, 0.4, version, 14.2, 0.31, 1.25),
            ClusterHost(
                2, "tcp://10.0.0.13:40331", "node-<c>", 1, 0.2, version, None, None, None,
                lost=LOST_REASON, requests=4120,
            ),
        ],
        start_skew_ms=1.8,
        warnings=[WARNING],
    )  # fmt: skip


@pytest.fixture(scope="module")
def plain(real_runs: dict[str, RunFile]) -> RunResult:
    return real_runs["closed"].result


@pytest.fixture(scope="module")
def distributed(plain: RunResult) -> RunResult:
    assert plain.cluster is None and plain.generator.start_late_ms is not None
    return replace(plain, cluster=_cluster(plain.environment.loadgen_version))


def _console_text(result: RunResult, styles: bool = False) -> str:
    console = Console(
        file=io.StringIO(), record=True, width=120, force_terminal=True, color_system="standard"
    )
    render_summary(result, console)
    return console.export_text(styles=styles)


def test_console_summary_shows_hosts_lost_host_and_warnings(
    plain: RunResult, distributed: RunResult
) -> None:
    text = _console_text(distributed)
    late = re.search(r"generator .*, last start ([\d.,]+) ms late", text)
    assert late is not None and plain.generator.start_late_ms is not None
    assert float(late.group(1).replace(",", "")) == pytest.approx(
        plain.generator.start_late_ms, abs=0.01, rel=0.01
    )
    assert f"cluster 3 hosts via {SCHEDULER}, 1 lost" in text
    assert re.search(
        r"0 +node-a +tcp://10\.0\.0\.11:40331 +2 +40% +\+0\.12 ± 0\.05 +0\.90 +ok", text
    )
    assert re.search(
        r"1 +node-b +tcp://10\.0\.0\.12:40331 +2 +40% +\+14\.2 ± 0\.31 +1\.25 +ok", text
    )
    assert re.search(rf"2 +node-<c> +tcp://10\.0\.0\.13:40331 +1 +20% +{DASH} +{DASH} +LOST", text)
    assert "start skew 1.80 ms (clock offsets known to ± 0.31 ms)" in text
    assert (
        f"host 2 (node-<c>, tcp://10.0.0.13:40331) lost: {LOST_REASON}; its 20% share of "
        "the load counts only what it reported before (4,120 requests)" in " ".join(text.split())
    )
    assert f"warning: {WARNING}" in text
    # the lost host's row is red, the others are not
    styled = _console_text(distributed, styles=True).splitlines()
    red = "\x1b[1;31m"
    assert red in next(line for line in styled if "13:40331" in line and "LOST" in line)
    assert red not in next(line for line in styled if "11:40331" in line)
    # without a cluster (one process): no cluster block, no start lateness
    alone = _console_text(plain)
    assert "cluster" not in alone and "last start" not in alone and "LOST" not in alone


def test_html_cluster_section_in_chromium(
    plain: RunResult, distributed: RunResult, tmp_path: Path
) -> None:
    dist_file = distributed.write(tmp_path / "dist.json")
    plain_file = plain.write(tmp_path / "plain.json")
    runs = [load_run(dist_file), load_run(plain_file)]
    page = render_html(runs)
    text = visible_text(page)
    assert "Hosts lost: dist" in text  # the banner above the summary
    assert "hosts 3, 1 lost 1" in text  # a summary row, one cell per run
    assert f"dist 3 hosts via {SCHEDULER}, 1 lost; start skew 1.80 ms" in text
    assert f"warning {WARNING}" in text
    assert "On one host (not distributed): plain." in text
    assert "node-&lt;c&gt;" in page and "node-<c>" not in page.replace("node-&lt;c&gt;", "")
    # every chart of the two runs is drawn; the lost host's row is marked
    file = tmp_path / "report.html"
    file.write_text(page, encoding="utf-8")
    loaded = chromium.load(file, tmp_path / "profile")
    assert loaded.root_attribute("data-js-errors") is None, loaded.root_attribute("data-js-errors")
    assert loaded.console_messages == []
    expected = str(len(chart_data(page)))
    assert loaded.root_attribute("data-charts-drawn") == expected != "0"
    section = re.search(r'<section id="cluster">.*?</section>', loaded.dom, re.S)
    assert section is not None and '<a href="#cluster">Cluster</a>' in loaded.dom
    lost_rows = re.findall(r'<tr class="lost">(.*?)</tr>', section.group(0), re.S)
    assert len(lost_rows) == 1 and "node-&lt;c&gt;" in lost_rows[0]
    assert f"lost: {LOST_REASON}" in lost_rows[0]
    assert section.group(0).count("<tr") == 4  # the header and three hosts
    # a run without a cluster: no section, no banner, no hosts row
    alone = render_html(runs[1:])
    assert 'id="cluster"' not in alone and "Hosts lost" not in alone
    assert ">hosts<" not in alone


def test_compare_markdown_and_junit_name_the_lost_host(
    plain: RunResult, distributed: RunResult, tmp_path: Path
) -> None:
    base = plain.write(tmp_path / "base.json")
    current = distributed.write(tmp_path / "current.json")
    junit, markdown = tmp_path / "junit.xml", tmp_path / "compare.md"
    result = runner.invoke(
        app,
        [
            *["compare", "--baseline", str(base), "--current", str(current)],
            *["--junit", str(junit), "--markdown", str(markdown), "--allow-saturated"],
        ],
    )
    # The same numbers on both sides (a full-speed closed loop may be invalid, allowed here):
    # a lost host is reported everywhere, and does not change the exit code.
    assert result.exit_code == 0, result.output
    assert f"current ran on 3 hosts via {SCHEDULER}, 1 lost" in result.stderr
    assert "hosts: 1 in base; 3 in current" in result.stderr

    table = markdown.read_text(encoding="utf-8")
    assert "**Cluster hosts**" in table
    assert "| current | 0 | node-a | 2 | 40% | +0.12 ± 0.05 | 0.90 | ✅ ok |" in table
    assert (
        f"| current | 2 | node-<c> | 1 | 20% | {DASH} | {DASH} | ❌ **lost**: {LOST_REASON} |"
        in table
    )
    assert f"- current: 3 hosts via {SCHEDULER}, 1 lost; start skew 1.80 ms" in table
    assert f"  - `{WARNING}`" in table  # among the comparison's warnings

    root = ET.parse(junit).getroot()
    failures = [f.get("type") for f in root.iter("failure")]
    assert failures.count("lost-host") == 1 and set(failures) <= {"lost-host", "invalid-run"}
    case = next(c for c in root.iter("testcase") if c.get("classname") == "loadgen.cluster")
    assert case.get("name") == "current: every host reported"
    failure = case.find("failure")
    assert failure is not None and failure.get("type") == "lost-host"
    assert failure.get("message") == f"current: 1 of 3 hosts lost: host 2 (node-<c>): {LOST_REASON}"
    output = case.findtext("system-out") or ""
    assert (
        "host 1: node-b (tcp://10.0.0.12:40331), 2 processes, 40% of the load, clock offset "
        "+14.2 ± 0.31 ms, start late 1.25 ms, ok" in output
    )
    assert "host 2: node-<c> (tcp://10.0.0.13:40331), 1 processes, 20% of the load, clock " \
        f"offset not measured, start late not measured, lost: {LOST_REASON}" in output  # fmt: skip
    assert f"warning: {WARNING}" in output


def test_json_round_trip_and_report_of_the_file(
    plain: RunResult, distributed: RunResult, tmp_path: Path
) -> None:
    path = distributed.write(tmp_path / "dist.json")
    raw = json.loads(path.read_text(encoding="utf-8"))
    assert (
        raw["schema_version"] == SCHEMA_VERSION
        and raw["cluster"]["hosts"][2]["lost"] == LOST_REASON
    )
    assert RunResult.from_dict(raw) == distributed
    assert RunResult.read(path).cluster == distributed.cluster
    out = tmp_path / "dist.html"
    result = runner.invoke(app, ["report", str(path), "-o", str(out)])
    assert result.exit_code == 0, result.output
    page = out.read_text(encoding="utf-8")
    assert '<section id="cluster">' in page and '<tr class="lost">' in page

    # A schema 2 result (written before clusters) renders exactly as one without a cluster.
    old = json.loads(json.dumps(plain.to_dict()))
    old["schema_version"] = 2
    del old["cluster"], old["generator"]["start_late_ms"], old["stop"]
    (tmp_path / "old.json").write_text(json.dumps(old), encoding="utf-8")
    (tmp_path / "new.json").write_text(plain.to_json(), encoding="utf-8")
    when = datetime(2026, 1, 1, tzinfo=UTC)
    pages = [
        render_html([replace(load_run(tmp_path / f"{name}.json", "run"), source="")], when)
        for name in ("old", "new")
    ]
    assert pages[0] == pages[1] and 'id="cluster"' not in pages[0]
