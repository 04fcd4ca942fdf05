"""What ``run`` writes besides its JSON file, and messages that blame the right flag."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from typer.testing import CliRunner

from loadgen.cli.app import app

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "scenarios" / "quickstart.yaml"
runner = CliRunner()
SHORT = ["-d", "1500ms", "--processes", "1", "--set", "load.connections=20"]


def test_recv_mode_errors_name_the_flag_and_suggest() -> None:
    result = runner.invoke(app, ["run", str(QUICKSTART), "--recv-mode", "zerobyte"])
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "error: --recv-mode: expected buffered, zero-byte or buffer-ring, got 'zerobyte'; "
        "did you mean 'zero-byte'?"
    )


def test_a_unitless_duration_flag_is_refused_with_a_suggestion() -> None:
    result = runner.invoke(app, ["run", str(QUICKSTART), "--duration", "30"])
    assert result.exit_code == 2
    assert "--duration: a duration needs a unit: write 30s or 30ms" in result.stderr


def test_a_set_without_value_suggests_one_that_works() -> None:
    result = runner.invoke(app, ["validate", str(QUICKSTART), "--set", "load.connections"])
    assert result.exit_code == 2
    assert "e.g. --set load.connections=100" in result.stderr
    works = runner.invoke(app, ["validate", str(QUICKSTART), "--set", "load.connections=100"])
    assert works.exit_code == 0


def test_json_dash_writes_the_result_to_stdout_and_the_rest_to_stderr(
    tmp_path: Path, monkeypatch: object
) -> None:
    result = runner.invoke(
        app, ["run", str(QUICKSTART), *SHORT, "--json", "-", "--label", "stdout run"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)  # nothing but the result on stdout
    assert data["summary"]["requests"] > 0 and data["label"] == "stdout run"
    assert "throughput" in result.stderr  # the summary went to stderr
    assert not Path("-").exists()


def test_csv_exports_summary_and_intervals(tmp_path: Path) -> None:
    out = tmp_path / "run.json"
    prefix = tmp_path / "exports" / "quick"
    result = runner.invoke(
        app,
        ["run", str(QUICKSTART), *SHORT, "--json", str(out), "--csv", str(prefix), "-q"],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    summary = list(
        csv.DictReader(io.StringIO((tmp_path / "exports/quick_summary.csv").read_text()))
    )
    assert len(summary) == 1
    row = summary[0]
    assert row["label"] == "quickstart" and int(row["requests"]) == data["summary"]["requests"]
    assert float(row["latency_p99_us"]) == data["summary"]["latency_us"]["p99"]
    assert row["valid"] == "True"
    intervals = list(
        csv.DictReader(io.StringIO((tmp_path / "exports/quick_intervals.csv").read_text()))
    )
    assert [int(r["index"]) for r in intervals] == [i["index"] for i in data["intervals"]]
    assert sum(int(r["requests"]) for r in intervals) == data["summary"]["requests"]
    assert all(r["latency_p50_us"] for r in intervals if int(r["requests"]))
    assert {"errors", "bytes_sent", "connections", "cpu_percent"} <= set(intervals[0])


def test_labels_name_runs_in_report_and_compare(tmp_path: Path) -> None:
    files = []
    for name in ("main", "pr"):
        out = tmp_path / name / "run.json"  # same file name: only a label tells them apart
        result = runner.invoke(
            app, ["run", str(QUICKSTART), *SHORT, "--json", str(out), "-q", "--label", name]
        )
        assert result.exit_code == 0, result.output
        assert json.loads(out.read_text())["label"] == name
        files.append(str(out))
    page = tmp_path / "both.html"
    assert runner.invoke(app, ["report", *files, "-o", str(page)]).exit_code == 0
    assert "<th>main</th><th>pr</th>" in page.read_text()
    relabelled = tmp_path / "relabelled.html"
    args = ["report", *files, "-o", str(relabelled), "--label", "before", "--label", "after"]
    assert runner.invoke(app, args).exit_code == 0
    assert "<th>before</th><th>after</th>" in relabelled.read_text()
    bad = runner.invoke(app, ["report", *files, "--label", "only-one"])
    assert bad.exit_code == 2 and "1 labels for 2 result files" in bad.stderr
    compared = runner.invoke(
        app,
        ["compare", "--baseline", files[0], "--current", files[1], "--tolerance", "900%"],
        env={"COLUMNS": "80"},
    )
    assert compared.exit_code == 0, compared.output
