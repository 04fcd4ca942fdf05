"""``loadgen capacity`` against real targets: a built-in HTTP target of known capacity (one
FIFO worker, ``serve http --capacity``: an M/D/1 queue under Poisson arrivals), nginx for a
target faster than one generator process; and the search's outputs through ``report``,
``compare`` and headless Chromium.

Steps are short (1 s warm-up + 2-3 s measured) so a search takes ~30-45 s. Why the model
test looks as it does (measured on the shared 2-core VM, load average 10-24):

* Latency SLOs at the median: a short window of an M/D/1 queue near its capacity is noisy
  in its tail, and a busy machine stalls either process for 10-150 ms now and then, which
  moves a window's p99 but not its median. Windows of 3 s: a one-second stall is a third
  of one, not half.
* ``raw_`` latency (from the actual send): the generator's own lateness in sending on a
  busy machine (0.5-1 ms at the median) is outside the queueing model.
* Bounds of 5 and 8 service times: there the capacity curve is flat (an overhead of 0.5 ms,
  a quarter of the service time, moves it ~1%), and the answer cannot pass the queue's
  saturation. Simulated (this strategy on a simulated M/D/1, 3 s windows, 0.7 ms of
  overhead), every one of 120 searches lands within 10% of Erlang's formula.
* But a machine whose CPUs are saturated by other work stalls the target now and then, and
  a stalled worker is a slower worker: near its capacity a 100 ms stall leaves a backlog
  that takes most of a second to drain. Simulated with a 100 ms stall every 3 s, the
  answers land 7% below the formula on average, 10-20% below in one search of five; the
  2-core VM shared with other test suites (CPU pressure 80%: some task waited for a CPU
  80% of the time) gave -12% in two searches of ten. So: within 10% when the CPUs had
  room during the search (Linux PSI ``some avg60`` below ``BUSY_PRESSURE``); on a
  saturated machine the bound below widens to the stalls' 25%, the bound above stays: a
  busy machine never makes a target look faster.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from loadgen.capacity.model import CapacityResult, Status, StepVerdict, Vary
from loadgen.cli.app import app
from loadgen.result.model import SCHEMA_VERSION
from tests import servers
from tests.report import chromium

from .conftest import capacity_server, cpu_pressure, scenario_file
from .mdl import capacity_for

pytestmark = pytest.mark.slow

runner = CliRunner()
SHORT = ["--warmup", "1s", "--step-duration", "2s", "-p", "1"]
MODEL_STEPS = ["--warmup", "1s", "--step-duration", "3s", "-p", "1", "--start", "200/s"]
SERVICE_S = 0.002  # --capacity 500/s
#: CPU pressure (percent of the last minute some task waited for a CPU) above which the
#: machine's stalls are part of what the target does (see the module's docstring).
BUSY_PRESSURE = 30.0


def capacity(*arguments: str) -> Result:
    return runner.invoke(app, ["capacity", *arguments])


def read(path: Path) -> CapacityResult:
    return CapacityResult.read(path)


def measured(found: CapacityResult) -> CapacityResult:
    """The search, when it measured the target; a skip saying why when the generator was
    starved at every try of a step (a machine too busy to measure on, which the search
    says instead of reporting its own limit; test_a_generator_that_saturates_first_*
    holds the search to that)."""
    if found.outcome.status is Status.GENERATOR_LIMITED:
        pytest.skip(f"this machine kept the generator from the load: {found.outcome.message}")
    return found


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("capacity")


#: (SLO, quantile, bound): the two SLOs the search is held to queueing theory with.
MODEL_SLOS = {
    "p50 of 5 service times": ("raw_p50 < 10ms", 0.5, 0.010),
    "p50 of 8 service times": ("raw_p50 < 16ms", 0.5, 0.016),
}


@pytest.fixture(scope="module")
def model_searches(folder: Path) -> dict[str, tuple[Path, Result, float | None]]:
    """One search per SLO against one M/D/1 target at 500/s (bisection, no proof: the
    proof is ``test_the_proof_*``'s), each with the CPU pressure around it."""
    searches = {}
    with capacity_server("--capacity", "500/s") as port:
        scenario = scenario_file(folder, port, name="mdl")
        for key, (slo, _, _) in MODEL_SLOS.items():
            out = folder / f"{key.replace(' ', '-')}.json"
            before = cpu_pressure()
            result = capacity(
                str(scenario), "--slo", slo, "--slo", "error_rate < 1%", "--confirm", "0",
                *MODEL_STEPS, "--json", str(out), "--html", str(out.with_suffix(".html")),
            )  # fmt: skip
            after = cpu_pressure()
            pressure = None if before is None or after is None else max(before, after)
            searches[key] = (out, result, pressure)
    return searches


@pytest.mark.parametrize("key", list(MODEL_SLOS))
def test_the_search_finds_the_queueing_theory_capacity(
    key: str, model_searches: dict[str, tuple[Path, Result, float | None]]
) -> None:
    path, cli, pressure = model_searches[key]
    found = measured(read(path))
    assert cli.exit_code == 0, cli.output
    slo, quantile, bound_s = MODEL_SLOS[key]
    expected = capacity_for(quantile, bound_s, SERVICE_S)
    outcome = found.outcome
    assert outcome.status is Status.UNCONFIRMED, outcome.message
    assert outcome.capacity is not None
    error = outcome.capacity / expected - 1
    below = 0.25 if pressure is not None and pressure > BUSY_PRESSURE else 0.10
    assert -below <= error <= 0.10, (outcome.capacity, expected, pressure, cli.output)
    # the bracket: the load above the answer broke the SLO, within the precision
    assert outcome.breaking is not None and outcome.breaking <= outcome.capacity * 1.05 + 1
    assert [s.phase for s in found.steps][:2] == ["grow"] * 2
    # every step's verdict is its window's: the SLO's value decides pass or fail
    for step in found.steps:
        if step.verdict in (StepVerdict.PASS, StepVerdict.FAIL):
            held = all(verdict.passed for verdict in step.verdicts)
            assert held == step.passed or "connections of the pool" in step.note
    # the console table has a row per step and the answer
    assert cli.output.count(" grow ") >= 2 and "capacity: unconfirmed: " in cli.output
    assert f"(SLO {slo})" in cli.output


def test_the_proof_repeats_the_answer_and_breaks_above_it(folder: Path) -> None:
    """--confirm 3 at a coarse precision (20%): the load above the answer is far enough up
    that its steps break the SLO every time, significantly (p = 0.05 at 3 against 3)."""
    with capacity_server("--capacity", "500/s") as port:
        scenario = scenario_file(folder, port, name="proof")
        out = folder / "proof.json"
        cli = capacity(
            str(scenario), "--slo", "raw_p50 < 10ms", "--slo", "error_rate < 1%",
            "--start", "100/s", "--precision", "20%", "--confirm", "3", *SHORT,
            "--json", str(out),
        )  # fmt: skip
    found = measured(read(out))
    assert cli.exit_code == 0, cli.output
    outcome, steps = found.outcome, found.steps
    assert outcome.status in (Status.PROVEN, Status.NOT_PROVEN), outcome.message
    assert outcome.capacity is not None
    # (a step the generator could not offer is tried again: not counted)
    offered = [s for s in steps if s.verdict is not StepVerdict.SATURATED]
    confirms = [s for s in offered if s.phase == "confirm" and s.offered == outcome.capacity]
    aboves = [s for s in offered if s.phase == "above"]
    if outcome.status is Status.PROVEN:
        # every confirm step at the answer held; at the load above the SLO broke in most
        # steps, and its values there were all worse than at the answer
        assert len(confirms) == 3 or any("moved up" in n for n in outcome.notes)
        assert outcome.p_value is not None and outcome.p_value <= 0.05
        broke = [s for s in aboves if s.offered == outcome.breaking]
        assert len(broke) == 3 and sum(not s.passed for s in broke) >= 2
        assert "breaks it (raw_p50 = " in outcome.message
        assert outcome.at_capacity[0].passed and not outcome.at_breaking[0].passed
    else:  # not sure: says why, in its notes
        assert outcome.notes, outcome.message
    assert 0.5 * 461 <= outcome.capacity <= 1.1 * 461


@pytest.fixture(scope="module")
def roomy(folder: Path) -> tuple[Path, Result]:
    """A 2,000/s target searched up to --max 200/s only, with a gate of 1k/s."""
    with capacity_server("--capacity", "2000/s") as port:
        scenario = scenario_file(folder, port, name="roomy")
        out = folder / "roomy.json"
        cli = capacity(
            str(scenario), "--slo", "p50 < 50ms", "--start", "50/s", "--max", "200/s",
            "--expect-at-least", "1k/s", "--junit", str(folder / "roomy.xml"),
            "--markdown", str(folder / "roomy.md"), *SHORT, "--json", str(out),
        )  # fmt: skip
    return out, cli


def test_a_target_that_never_breaks_before_max_says_so(
    roomy: tuple[Path, Result], folder: Path
) -> None:
    out, cli = roomy
    found = measured(read(out))
    assert found.outcome.status is Status.ABOVE_MAX
    assert [s.offered for s in found.steps if s.verdict is not StepVerdict.SATURATED] == [
        50,
        100,
        200,
    ]
    assert "never broke the SLOs up to --max 200 req/s" in cli.output
    # the gate: 200/s sustained is less than the 1k/s expected
    assert cli.exit_code == 99, cli.output
    assert "expect at least 1,000 req/s: not met" in cli.output
    junit = (folder / "roomy.xml").read_text()
    assert 'name="roomy: capacity at least 1,000 req/s"' in junit and "<failure" in junit
    markdown = (folder / "roomy.md").read_text()
    assert "### loadgen capacity: ✅ above --max" in markdown and "❌ **not met**" in markdown
    # no error SLO given: one is added, and said
    assert found.settings.slos == ["p50 < 50ms", "error_rate < 1%"]
    assert "no SLO on errors: added 'error_rate < 1%'" in cli.output


def test_errors_above_the_slo_bound_stop_growth(folder: Path) -> None:
    """No latency SLO: the target's queue grows past the request timeout and requests time
    out; the error rate breaks its bound and growth stops there."""
    with capacity_server("--capacity", "250/s") as port:
        scenario = scenario_file(folder, port, "timeouts: {request: 100ms}\n", name="errors")
        out = folder / "errors.json"
        cli = capacity(
            str(scenario), "--slo", "error_rate < 1%", "--start", "50/s", "--precision", "20%",
            "--confirm", "0", *SHORT, "--json", str(out),
        )  # fmt: skip
    found = measured(read(out))
    assert cli.exit_code == 0, cli.output
    first_failure = next(s for s in found.steps if s.verdict is StepVerdict.FAIL)
    assert first_failure.phase == "grow"
    assert first_failure.window.errors.get("timeout", 0) > 0
    (verdict,) = first_failure.verdicts
    assert verdict.metric == "error_rate" and not verdict.passed and (verdict.value or 0) > 0.01
    assert "broke error_rate < 1% (observed " in first_failure.note
    grown = [s for s in found.steps if s.phase == "grow"]
    assert grown[-1] is first_failure  # growth stopped at the first step that broke
    assert found.outcome.capacity is not None and found.outcome.capacity < 250


def test_a_generator_that_saturates_first_is_reported_as_such(folder: Path) -> None:
    """One generator process against nginx (far faster per request): the generator reaches
    its limit (CPU, or a schedule it cannot keep) first, and the search says so instead of
    reporting that limit as nginx's capacity."""
    with servers.nginx(folder / "nginx-saturation", worker_connections=8192) as port:
        scenario = scenario_file(folder, port, name="fast-target")
        out = folder / "saturated.json"
        # Two tries: other processes starving this one can push a step's p99 over the SLO
        # before its self-check sees the generator's limit (seen once with a second pytest
        # on the same 2 cores: 7,660/s "broke" p99 < 100ms). The second search must then
        # find the limit; a search that calls nginx's capacity found twice fails below.
        for _attempt in range(2):
            cli = capacity(
                str(scenario), "--slo", "p99 < 100ms", "--start", "8k/s", "--confirm", "0",
                *SHORT, "--json", str(out),
            )  # fmt: skip
            if read(out).outcome.status is Status.GENERATOR_LIMITED:
                break
    found = read(out)
    outcome = found.outcome
    assert outcome.status is Status.GENERATOR_LIMITED, outcome.message
    assert cli.exit_code == 3, cli.output
    saturated = [s for s in found.steps if s.verdict is StepVerdict.SATURATED]
    assert len(saturated) >= 2 and saturated[-1].offered == saturated[-2].offered  # retried
    assert found.steps[-1] is saturated[-1]
    assert "this generator cannot offer" in outcome.message
    assert outcome.message.endswith("add processes or hosts")
    passed = [s.offered for s in found.steps if s.passed]
    if passed:
        assert outcome.capacity == max(passed) < saturated[-1].offered
        assert outcome.message.startswith(f"the target sustained at least {max(passed):,.0f}")
    else:
        assert outcome.capacity is None


def test_the_closed_model_finds_the_most_connections(folder: Path) -> None:
    """--vary connections: each connection waits 20 ms between requests; the worker serves
    one per 2 ms, so past 11 connections (22 ms / 2 ms) each request waits behind the
    others: at N connections a request takes about N x 2 ms - 20 ms, and a median of
    10 ms allows about 15."""
    with capacity_server("--capacity", "500/s") as port:
        scenario = folder / "closed.yaml"
        scenario.write_text(
            f"name: closed\ntarget: 127.0.0.1:{port}\nprotocol: http\nload:\n"
            "  model: closed\n  connections: 1\n  think_time: 20ms\n  phases: [{duration: 1s}]\n"
        )
        out = folder / "closed.json"
        cli = capacity(
            str(scenario), "--vary", "connections", "--slo", "p50 < 10ms", "--start", "2",
            "--confirm", "0", *SHORT, "--json", str(out),
        )  # fmt: skip
    found = measured(read(out))
    assert cli.exit_code == 0, cli.output
    assert found.settings.vary is Vary.CONNECTIONS
    assert all(step.offered == int(step.offered) for step in found.steps)
    assert all(step.connections == step.offered for step in found.steps)
    assert found.outcome.capacity is not None and 10 <= found.outcome.capacity <= 15
    assert "connections held with" in found.outcome.message
    first = found.steps[0].result
    assert first.scenario["load"]["model"] == "closed"
    assert first.scenario["load"]["think_time"] == 0.02


# ------------------------------------------------------------------------------ outputs


def _path(model_searches: dict[str, tuple[Path, Result, float | None]]) -> Path:
    return model_searches["p50 of 5 service times"][0]


def test_the_json_renders_through_loadgen_report(
    model_searches: dict[str, tuple[Path, Result, float | None]], folder: Path
) -> None:
    path = _path(model_searches)
    data: dict[str, Any] = json.loads(path.read_text())
    assert data["kind"] == "loadgen.capacity" and data["schema_version"] == 1
    assert all(step["result"]["schema_version"] == SCHEMA_VERSION for step in data["steps"])
    # the whole search: its own page
    page = folder / "search.html"
    cli = runner.invoke(app, ["report", str(path), "-o", str(page)])
    assert cli.exit_code == 0, cli.output
    html = page.read_text()
    assert "loadgen capacity: mdl" in html and 'data-chart="hockey"' in html
    # any step: a run report, its latency that of the whole step run
    steps_page = folder / "steps.html"
    cli = runner.invoke(
        app, ["report", str(path), "--step", "1", "--step", "4", "-o", str(steps_page)]
    )
    assert cli.exit_code == 0, cli.output
    html = steps_page.read_text()
    assert f"{path.stem} step 1" in html and f"{path.stem} step 4" in html
    assert "loadgen report: mdl" in html
    # a step that is not there, and a capacity result among runs without --step
    cli = runner.invoke(app, ["report", str(path), "--step", "99"])
    assert cli.exit_code == 2 and "no step 99" in cli.output
    other = folder / "other.json"
    read(path).steps[0].result.write(other)
    cli = runner.invoke(app, ["report", str(other), str(path)])
    assert cli.exit_code == 2 and "pick steps with --step N" in cli.output


def test_the_html_draws_every_chart_in_chromium(
    model_searches: dict[str, tuple[Path, Result, float | None]], tmp_path: Path
) -> None:
    page = _path(model_searches).with_suffix(".html")
    html = page.read_text()
    charts = json.loads(html.split('id="loadgen-data">', 1)[1].split("</script>", 1)[0])["charts"]
    ids = [chart["id"] for chart in charts]
    assert ids[:3] == ["hockey", "achieved", "spectrum"]
    hockey = charts[0]
    assert hockey["log_y"] and hockey["marker"]["label"].startswith("capacity ")
    assert any(s["label"] == "SLO raw_p50 < 10ms" and s.get("dash") for s in hockey["series"])
    loaded = chromium.load(page, tmp_path / "profile")
    assert loaded.root_attribute("data-js-errors") is None, loaded.root_attribute("data-js-errors")
    assert loaded.console_messages == []
    assert loaded.root_attribute("data-charts-drawn") == str(len(charts))
    assert loaded.dom.count("<canvas") == len(charts)


def test_compare_gates_on_the_capacity_change(
    model_searches: dict[str, tuple[Path, Result, float | None]],
    roomy: tuple[Path, Result],
    folder: Path,
) -> None:
    baseline = str(_path(model_searches))
    measured(read(Path(baseline)))
    measured(read(roomy[0]))
    same = runner.invoke(app, ["compare", "--baseline", baseline, "--current", baseline])
    assert same.exit_code == 0, same.output
    assert "capacity" in same.output and "compare: PASS" in same.output
    # the 2,000/s target held to 200/s by --max: a capacity far lower than ~460/s
    lower = str(roomy[0])
    markdown = folder / "compare.md"
    worse = runner.invoke(
        app, ["compare", "--baseline", baseline, "--current", lower, "--markdown", str(markdown)]
    )
    assert worse.exit_code == 99, worse.output
    assert "regression" in worse.output and "200 req/s" in worse.output
    assert "no step up to --max broke an SLO: 200 req/s is a lower bound" in worse.output
    assert "| capacity |" in markdown.read_text()
    # a capacity result and a run result do not compare
    run_file = folder / "a-run.json"
    read(Path(baseline)).steps[0].result.write(run_file)
    mixed = runner.invoke(app, ["compare", "--baseline", baseline, "--current", str(run_file)])
    assert mixed.exit_code == 2 and "capacity results compare with capacity results" in mixed.output
