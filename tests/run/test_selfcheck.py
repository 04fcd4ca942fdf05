"""The generator checks itself: real runs it cannot keep up with are invalid (exit 3), runs
well within its means are valid, and every report says which."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from loadgen.cli.app import app
from loadgen.cli.common import EXIT_INVALID_RUN, EXIT_THRESHOLDS_FAILED
from loadgen.report.compare import compare_runs
from loadgen.report.html import render_html
from loadgen.report.junit import comparison_junit
from loadgen.report.loading import load_run
from loadgen.report.markdown import comparison_markdown
from loadgen.result.model import SCHEMA_VERSION, RunResult
from loadgen.run.selfcheck import CPU_WINDOW_S, busiest, check
from loadgen.stats.cpu import CpuSampler, read_runnable_ns
from tests.contention import CONTENTION
from tests.report import chromium
from tests.report.builders import make_result

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "scenarios" / "quickstart.yaml"
runner = CliRunner()

#: Far beyond one Python process (~30-70k requests/s here at best): its schedule cannot be
#: kept however quiet the machine is. Runs against the session's shared echo target, in one
#: client process (``-p 1``: against a network target ``run`` would use every core).
SATURATING = """
name: saturating
target: {target}
load:
  model: open
  connections: 200
  phases:
    - {duration: 2s, rate: 300k/s}
"""


#: A comfortable run judged invalid only for that is measured again, up to this many times.
ATTEMPTS = 3


@pytest.fixture(scope="module")
def saturated(tmp_path_factory: pytest.TempPathFactory, echo_target: str) -> tuple[Any, Path]:
    """One real saturated run through the CLI: (the CliRunner result, its JSON)."""
    folder = tmp_path_factory.mktemp("saturated")
    scenario = folder / "saturating.yaml"
    scenario.write_text(SATURATING.replace("{target}", echo_target))
    out = folder / "saturated.json"
    result = runner.invoke(app, ["run", str(scenario), "-p", "1", "--json", str(out)])
    return result, out


@pytest.fixture(scope="module")
def valid(tmp_path_factory: pytest.TempPathFactory, echo_target: str) -> tuple[Any, Path]:
    """The quickstart (about 8,000 requests/s, a tenth of a core here) through the CLI.

    On a busy shared machine other processes can keep even this light loop runnable but
    off the CPU for most of a run, which the self-check rightly calls invalid (the
    runnable share); such a run is measured again. Any other reason fails at once."""
    out = tmp_path_factory.mktemp("valid") / "quickstart.json"
    arguments = ["run", str(QUICKSTART), "-d", "2s", "-p", "1", "--json", str(out)]
    arguments += ["--set", f"target={echo_target}"]
    for _ in range(ATTEMPTS):
        result = runner.invoke(app, arguments)
        reasons = json.loads(out.read_text())["self_check"]["reasons"] if out.exists() else []
        if not reasons or not all(CONTENTION in reason for reason in reasons):
            break
    return result, out


def test_a_schedule_beyond_one_process_is_invalid_and_exits_3(
    saturated: tuple[Any, Path],
) -> None:
    outcome, path = saturated
    assert outcome.exit_code == EXIT_INVALID_RUN, outcome.output
    data = json.loads(path.read_text())
    check_data = data["self_check"]
    assert check_data["valid"] is False
    reasons = " | ".join(check_data["reasons"])
    assert "open-model schedule not kept" in reasons
    assert check_data["unsent_fraction"] > 0.01 or (
        check_data["schedule_lag_p99_ms"] > check_data["schedule_lag_limit_ms"]
    )
    # the console says it too, with every reason
    assert "INVALID RUN" in outcome.output
    assert "open-model schedule not kept" in outcome.output
    # and intervals carry the generator's CPU share
    assert all(i["cpu_percent"] is not None for i in data["intervals"])


def test_a_comfortable_run_is_valid_and_exits_0(valid: tuple[Any, Path]) -> None:
    outcome, path = valid
    assert outcome.exit_code == 0, outcome.output
    data = json.loads(path.read_text())
    assert data["self_check"]["valid"] is True, data["self_check"]
    environment = data["environment"]  # the clock every latency was timed with
    assert environment["clock"] and 0 < environment["clock_resolution_ns"] <= 1000
    assert data["self_check"]["clock_resolution_ns"] == environment["clock_resolution_ns"]
    assert data["self_check"]["reasons"] == []
    assert data["self_check"]["cpu_percent"] < data["self_check"]["cpu_limit_percent"]
    assert "INVALID" not in outcome.output
    assert "memory" in outcome.output and "receives posted 6.25 MiB (64 KiB/conn)" in outcome.output


def test_invalid_wins_over_failed_thresholds_and_allow_saturated_waives_it(
    tmp_path: Path, echo_target: str
) -> None:
    scenario = tmp_path / "s.yaml"
    scenario.write_text(SATURATING.replace("{target}", echo_target))
    out = tmp_path / "r.json"
    arguments = ["run", str(scenario), "-d", "1s", "-p", "1", "-q", "--json", str(out)]
    failing = ["--set", "thresholds=['p50 < 1ns']"]
    both = runner.invoke(app, [*arguments, *failing])
    assert both.exit_code == EXIT_INVALID_RUN, both.output
    assert "INVALID RUN" in both.stderr  # -q prints no summary, but says why it exits 3
    waived = runner.invoke(app, [*arguments, *failing, "--allow-saturated"])
    assert waived.exit_code == EXIT_THRESHOLDS_FAILED, waived.output
    assert json.loads(out.read_text())["self_check"]["valid"] is False  # still marked
    plain = runner.invoke(app, [*arguments, "--allow-saturated"])
    assert plain.exit_code == 0, plain.output


def test_html_report_shows_the_invalid_banner(
    saturated: tuple[Any, Path], valid: tuple[Any, Path], tmp_path: Path
) -> None:
    page = render_html([load_run(valid[1], "valid"), load_run(saturated[1], "saturated")])
    assert page.count('class="invalid"') == 1
    assert "Invalid run: saturated" in page and "open-model schedule not kept" in page
    assert "INVALID: generator was the bottleneck" in page
    assert '<span class="badge good">valid</span>' in page
    assert 'id="self-check"' in page and 'data-chart="generator-cpu"' in page
    file = tmp_path / "report.html"
    file.write_text(page, encoding="utf-8")
    loaded = chromium.load(file, tmp_path / "profile")
    assert loaded.root_attribute("data-js-errors") is None, loaded.root_attribute("data-js-errors")
    assert loaded.console_messages == []
    expected = loaded.root_attribute("data-charts-expected")
    assert expected is not None and int(expected) >= 5  # throughput ... generator CPU, memory
    assert loaded.root_attribute("data-charts-drawn") == expected
    assert "Invalid run: saturated" in loaded.dom


def test_compare_warns_about_invalid_runs_and_exits_3(
    saturated: tuple[Any, Path], valid: tuple[Any, Path], tmp_path: Path
) -> None:
    baseline, current = load_run(valid[1], "base"), load_run(saturated[1], "cur")
    comparison = compare_runs([baseline], [current])
    assert [label for label, _ in comparison.invalid_runs] == ["cur"]
    assert any("cur is INVALID" in w.message for w in comparison.warnings)
    junit = comparison_junit(comparison)
    assert 'type="invalid-run"' in junit and "cur: generator not saturated" in junit
    markdown = comparison_markdown(comparison)
    assert "INVALID" in markdown and "**cur is invalid**" in markdown
    junit_path = tmp_path / "j.xml"
    arguments = ["compare", "--baseline", str(valid[1]), "--current", str(saturated[1])]
    refused = runner.invoke(app, [*arguments, "--junit", str(junit_path)])
    assert refused.exit_code == EXIT_INVALID_RUN, refused.output
    assert "is INVALID" in refused.output
    assert 'type="invalid-run"' in junit_path.read_text()
    allowed = runner.invoke(app, [*arguments, "--allow-saturated"])
    assert allowed.exit_code != EXIT_INVALID_RUN, allowed.output


def test_schema_1_results_still_load_as_not_checked(
    valid: tuple[Any, Path], tmp_path: Path
) -> None:
    data = json.loads(valid[1].read_text())
    data["schema_version"] = 1
    del data["self_check"], data["stop"]
    for interval in data["intervals"]:
        del interval["cpu_percent"]
    old = tmp_path / "old.json"
    old.write_text(json.dumps(data))
    run = load_run(old)
    assert run.result.self_check is None and not run.result.invalid
    assert "not checked" in render_html([run])
    newer = tmp_path / "newer.json"
    newer.write_text(json.dumps({**data, "schema_version": SCHEMA_VERSION + 1}))
    outcome = runner.invoke(app, ["report", str(newer)])
    assert outcome.exit_code == 2 and "written by a newer loadgen" in outcome.output


def test_schema_3_results_load_without_clock_and_error_codes(
    valid: tuple[Any, Path], tmp_path: Path
) -> None:
    data = json.loads(valid[1].read_text())
    data["schema_version"] = 3
    for key in ("clock", "clock_resolution_ns", "timer_resolution_ms"):
        del data["environment"][key]
    del data["summary"]["error_codes"]
    del data["self_check"]["clock_resolution_ns"]
    old = tmp_path / "schema3.json"
    old.write_text(json.dumps(data))
    result = load_run(old).result
    assert result.environment.clock is None and result.environment.clock_resolution_ns is None
    assert result.summary.error_codes == {}
    assert result.self_check is not None and result.self_check.valid


# ------------------------------------------------------------------- the rules themselves


def test_a_clock_coarser_than_a_microsecond_makes_latency_invalid() -> None:
    summary = make_result().summary
    tick = check(summary, processes=1, cpu_percent=10.0, clock_resolution_ns=15_625_000.0)
    assert not tick.valid and tick.clock_resolution_ns == 15_625_000.0
    assert tick.reasons == [
        "latency is invalid: the clock it was timed with ticks every 15,625.0 us (bound 1 us), "
        "so a short request reads as 0 or as one whole tick"
    ]
    for fine_ns in (1.0, 100.0, 1000.0):  # CLOCK_MONOTONIC, QueryPerformanceCounter, the bound
        assert check(summary, processes=1, cpu_percent=10.0, clock_resolution_ns=fine_ns).valid


def test_cpu_bound_is_per_generator_process() -> None:
    summary = make_result().summary
    saturated = check(summary, processes=1, cpu_percent=95.0)
    assert not saturated.valid
    assert saturated.reasons[0].startswith("generator CPU 95% over the run (bound 90%")
    assert check(summary, processes=1, cpu_percent=80.0).valid
    two = check(summary, processes=2, cpu_percent=150.0)  # 2 processes may use 180%
    assert two.valid and two.cpu_limit_percent == 180.0


def test_a_saturated_stretch_is_caught_though_the_run_average_is_low() -> None:
    summary = make_result().summary
    ramp = [20.0] * 10 + [97.0] * CPU_WINDOW_S
    assert busiest(45.0, ramp) == pytest.approx(97.0)
    result = check(summary, processes=1, cpu_percent=45.0, interval_cpu=ramp)
    assert not result.valid and f"in its busiest {CPU_WINDOW_S} s" in result.reasons[0]
    short = [97.0] * (CPU_WINDOW_S - 1) + [10.0] * 10  # never 5 busy seconds in a row
    assert check(summary, processes=1, cpu_percent=45.0, interval_cpu=short).valid


def test_a_starved_loop_is_a_bottleneck_too() -> None:
    summary = make_result().summary
    result = check(summary, processes=1, cpu_percent=55.0, runnable_percent=98.0)
    assert not result.valid and "runnable 98%" in result.reasons[0]
    assert check(summary, processes=1, cpu_percent=55.0, runnable_percent=60.0).valid


def test_closed_model_results_have_no_schedule_figures() -> None:
    result = check(make_result().summary, processes=1, cpu_percent=10.0)
    assert result.valid and result.schedule_lag_p99_ms is None and result.unsent_fraction is None


# --------------------------------------------------------------------------- the sampler


def _spin(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


@pytest.mark.skipif(read_runnable_ns("/proc/self/schedstat") is None, reason="no schedstat")
def test_runnable_share_sees_a_busy_loop_and_a_sleeping_one() -> None:
    """A spinning thread is runnable all the time however busy the machine is (running or
    queued for a CPU); a sleeping one hardly at all. Neither depends on the machine's load."""
    results: dict[str, tuple[float | None, float | None]] = {}

    def measure(name: str, work: Any) -> None:
        sampler = CpuSampler(time.perf_counter_ns(), period_s=0.25)
        with sampler:
            work(1.0)
        results[name] = sampler.shares(0.0, 1.0)

    threads = [
        threading.Thread(target=measure, args=("spin", _spin)),
        threading.Thread(target=measure, args=("sleep", time.sleep)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    spin_runnable = results["spin"][1]
    sleep_runnable = results["sleep"][1]
    assert spin_runnable is not None and spin_runnable > 90, results
    assert sleep_runnable is not None and sleep_runnable < 20, results


def test_intervals_of_a_result_round_trip_with_cpu(valid: tuple[Any, Path]) -> None:
    result = RunResult.read(valid[1])
    assert result.self_check is not None and result.self_check.valid
    again = RunResult.from_dict(json.loads(result.to_json()))
    assert again == result
    assert replace(result, self_check=None).invalid is False
