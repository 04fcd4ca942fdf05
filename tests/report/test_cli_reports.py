"""``loadgen compare``, ``loadgen report`` and ``run --html/--hdr-log`` through the CLI."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from loadgen.cli.app import app
from loadgen.cli.common import EXIT_RUNTIME_FAILURE, EXIT_THRESHOLDS_FAILED, EXIT_USAGE
from loadgen.config.thresholds import ThresholdVerdict
from loadgen.report.compare import Comparison, compare_runs, parse_tolerances
from loadgen.report.compare_console import render_comparison
from loadgen.report.loading import load_runs

from .builders import make_result, write_runs
from .conftest import RunFile

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def _compare(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = runner.invoke(app, ["compare", *args], env=env)
    return result.exit_code, result.stdout, result.stderr


# ---------------------------------------------------------------------------- compare


def test_compare_passes_with_exit_0(tmp_path: Path) -> None:
    base = write_runs(tmp_path, "base", [make_result(1.0)])
    cur = write_runs(tmp_path, "cur", [make_result(1.03)])
    code, out, err = _compare("--baseline", *base, "--current", *cur)
    assert code == 0, out + err
    assert "compare: PASS" in out and "tolerance only" in out
    assert err == ""


def test_compare_regression_exits_99_and_writes_every_output(tmp_path: Path) -> None:
    base = write_runs(tmp_path, "base", [make_result(s) for s in (1.0, 1.01, 0.99)])
    cur = write_runs(tmp_path, "cur", [make_result(s) for s in (1.2, 1.21, 1.19)])
    junit, markdown = tmp_path / "out" / "junit.xml", tmp_path / "out" / "compare.md"
    step_summary = tmp_path / "step-summary.md"
    step_summary.write_text("# earlier step\n")
    code, out, _ = _compare(
        "--baseline",
        *base,
        "--current",
        *cur,
        "--junit",
        str(junit),
        "--markdown",
        str(markdown),
        env={"GITHUB_STEP_SUMMARY": str(step_summary)},
    )
    assert code == EXIT_THRESHOLDS_FAILED == 99
    assert "compare: FAIL" in out and "Mann-Whitney" in out
    suite = ET.parse(junit).getroot()
    assert suite.get("tests") == "7" and suite.get("failures") == "5"
    table = markdown.read_text()
    assert table.startswith("### loadgen compare: ❌ FAIL")
    assert step_summary.read_text() == "# earlier step\n" + table + "\n"


def test_compare_fails_on_a_current_runs_failed_threshold(tmp_path: Path) -> None:
    verdict = ThresholdVerdict("p99 < 1us", "p99", 0.001, False)
    base = write_runs(tmp_path, "base", [make_result()])
    cur = write_runs(tmp_path, "cur", [make_result(thresholds=(verdict,))])
    code, out, _ = _compare("--baseline", *base, "--current", *cur)
    assert code == EXIT_THRESHOLDS_FAILED
    assert "threshold fail: cur-0: p99 < 1us (observed 1 ms)" in out
    assert "compare: FAIL: a threshold failed" in out


def test_compare_accepts_repeated_and_equals_forms(tmp_path: Path) -> None:
    base = write_runs(tmp_path, "base", [make_result(1.0), make_result(1.0)])
    cur = write_runs(tmp_path, "cur", [make_result(1.0)])
    code, out, err = _compare(
        f"--baseline={base[0]}", "--current", cur[0], "--baseline", base[1], "--tolerance", "5%"
    )
    assert code == 0, out + err
    assert "2 baseline vs 1 current" in out and "tolerance 5%" in out


def test_compare_warns_about_different_scenarios(tmp_path: Path) -> None:
    base = write_runs(tmp_path, "base", [make_result(name="alpha")])
    cur = write_runs(tmp_path, "cur", [make_result(name="beta", connections=99)])
    code, _, err = _compare("--baseline", *base, "--current", *cur)
    assert code == 0
    assert "warning: the runs come from different scenarios" in err
    assert 'name: "alpha" in base-0; "beta" in cur-0' in err
    assert "connections: 10 in base-0; 99 in cur-0" in err


def _bad_files(folder: Path, real: Path) -> dict[str, tuple[Path, str]]:
    text = real.read_text()
    newer = json.loads(text) | {"schema_version": 99}
    files = {
        "truncated in a string": (text[: text.index('"encoded": "') + 20], "truncated JSON"),
        "truncated between values": (text[: text.index('"summary"')], "truncated JSON"),
        "not json": ("hello, world\n", "not valid JSON at line 1 column 1"),
        "empty": ("", "empty file"),
        "a list": ("[1, 2, 3]", "not a loadgen result (the JSON is not an object)"),
        "other json": ('{"name": "x"}', "not a loadgen result (no 'schema_version'"),
        "newer": (json.dumps(newer), "written by a newer loadgen (schema_version 99"),
        "broken histogram": (
            text.replace('"encoded": "', '"encoded": "!', 1),
            "malformed loadgen result",
        ),
    }
    out = {}
    for name, (content, message) in files.items():
        path = folder / f"{name.replace(' ', '-')}.json"
        path.write_text(content)
        out[name] = (path, message)
    out["missing"] = (folder / "nowhere.json", "cannot read: No such file or directory")
    return out


def test_compare_names_the_bad_file_and_exits_2(
    real_runs: dict[str, RunFile], tmp_path: Path
) -> None:
    good = str(real_runs["closed"].path)
    for name, (path, message) in _bad_files(tmp_path, real_runs["closed"].path).items():
        code, _, err = _compare("--baseline", good, "--current", str(path))
        assert code == EXIT_USAGE, name
        assert f"error: {path}: {message}" in err, (name, err)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--baseline", "A.json"], "--current needs at least one result file"),
        (["A.json", "--baseline", "B.json", "--current", "C.json"], "put it after --baseline"),
        (["--baseline", "A.json", "--current", "B.json", "--frobnicate"], "No such option"),
        (["--baseline", "A.json", "--current", "B.json", "--tolerance", "lots"], "--tolerance"),
    ],
)
def test_compare_usage_errors_exit_2(args: list[str], message: str) -> None:
    code, _, err = _compare(*args)
    assert code == EXIT_USAGE and message in err


def test_compare_unwritable_output_is_a_runtime_failure(tmp_path: Path) -> None:
    base = write_runs(tmp_path, "base", [make_result()])
    code, _, err = _compare("--baseline", *base, "--current", *base, "--junit", str(tmp_path))
    assert code == EXIT_RUNTIME_FAILURE and "cannot write" in err


# ---------------------------------------------------------------------------- report, run


def test_report_overlays_several_runs(real_runs: dict[str, RunFile], tmp_path: Path) -> None:
    paths = [str(real_runs[name].path) for name in ("closed", "open")]
    out = tmp_path / "report.html"
    result = runner.invoke(app, ["report", *paths, "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert f"report: {out}" in result.stdout
    page = out.read_text()
    assert "report-closed, report-open" in page and "2 runs" in page


def test_report_defaults_next_to_the_first_result(
    real_runs: dict[str, RunFile], tmp_path: Path
) -> None:
    source = tmp_path / "mine.json"
    source.write_text(real_runs["closed"].path.read_text())
    assert runner.invoke(app, ["report", str(source)]).exit_code == 0
    assert (tmp_path / "mine.html").is_file()


def test_report_of_a_bad_file_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema_version": 1')
    result = runner.invoke(app, ["report", str(bad)])
    assert result.exit_code == EXIT_USAGE
    assert f"{bad}: truncated JSON" in result.stderr


def test_run_writes_html_and_hdr_log_after_the_json(tmp_path: Path, echo_target: str) -> None:
    out = tmp_path / "run.json"
    html, hdr_log = tmp_path / "html" / "run.html", tmp_path / "run.hlog"
    scenario = ROOT / "scenarios" / "quickstart.yaml"
    result = runner.invoke(
        app,
        [
            "run",
            str(scenario),
            "-d",
            "1s",
            "--set",
            "load.connections=5",
            "--set",
            f"target={echo_target}",
            "-p",
            "1",
            "-q",
            "--json",
            str(out),
            "--html",
            str(html),
            "--hdr-log",
            str(hdr_log),
        ],
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines.index(f"result: {out}") < lines.index(f"report: {html}")
    assert f"hdr log: {hdr_log}" in lines
    data = json.loads(out.read_text())
    assert f"{data['summary']['requests']:,}" in html.read_text()
    interval_lines = [line for line in hdr_log.read_text().splitlines() if line[:1].isdigit()]
    assert len(interval_lines) == len(data["intervals"])


def _rendered(comparison: Comparison, width: int = 80) -> list[str]:
    console = Console(width=width, record=True, color_system=None)
    render_comparison(comparison, console)
    return console.export_text().splitlines()


def _row(lines: list[str], label: str) -> str:
    return next(line for line in lines if line.startswith(label))


def test_per_metric_tolerances_judge_each_metric_by_its_own(tmp_path: Path) -> None:
    # Latency +8% and throughput -8%: within the default 10%; p99 beyond its own 5%.
    base = write_runs(tmp_path, "base", [make_result(1.0, throughput_rps=10_000)])
    cur = write_runs(tmp_path, "cur", [make_result(1.08, throughput_rps=9_200)])
    code, out, _ = _compare("--baseline", *base, "--current", *cur)
    assert code == 0, out
    args = ["--tolerance", "p99=5%", "--tolerance", "throughput=20%"]
    code, out, _ = _compare("--baseline", *base, "--current", *cur, *args)
    assert code == EXIT_THRESHOLDS_FAILED, out
    assert "tolerance 10%, p99 5%, throughput 20%" in out
    runs = load_runs([Path(base[0]), Path(cur[0])])
    lines = _rendered(compare_runs(runs[:1], runs[1:], parse_tolerances(args[1::2])))
    assert _row(lines, "p99 latency").split()[-2:] == ["5%", "regression"]
    assert _row(lines, "p90 latency").split()[-2:] == ["10%", "ok"]
    assert _row(lines, "throughput").split()[-2:] == ["20%", "ok"]
    assert "  p99 latency: regression, worse by >5%" in lines


def test_compare_verdicts_stay_on_one_line_at_80_columns(tmp_path: Path) -> None:
    base = write_runs(tmp_path, "base", [make_result(s) for s in (1.0, 1.01, 0.99)])
    cur = write_runs(tmp_path, "cur", [make_result(s) for s in (1.2, 1.21, 1.19)])
    runs = load_runs([Path(p) for p in [*base, *cur]])
    lines = _rendered(compare_runs(runs[:3], runs[3:], parse_tolerances(["p99=5%"])))
    assert max(len(line) for line in lines) <= 80, "\n".join(lines)
    verdicts = {"regression", "ok", "improved", "significant", "data"}
    for label in ("throughput", "p50 latency", "p99 latency", "p99.9 latency", "error rate"):
        assert _row(lines, label).split()[-1] in verdicts, "\n".join(lines)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tolerance", "p98=5%"], "'p98' is not a compared metric"),
        (["--tolerance", "thruput=5%"], "did you mean 'throughput'?"),
        (["--tolerance", "p99=lots"], "expected a percentage"),
    ],
)
def test_bad_per_metric_tolerances_say_why(tmp_path: Path, args: list[str], message: str) -> None:
    base = write_runs(tmp_path, "base", [make_result()])
    code, _, err = _compare("--baseline", *base, "--current", *base, *args)
    assert code == EXIT_USAGE and message in err, err
