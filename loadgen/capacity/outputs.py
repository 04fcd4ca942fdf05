"""A capacity search as markdown (a pull request, GitHub's job summary) and JUnit XML (one
testcase for the answer, one for ``--expect-at-least``), as ``compare`` writes them."""

from __future__ import annotations

from loadgen.capacity.console import expectation_met, step_cells
from loadgen.capacity.model import CapacityResult, Status
from loadgen.capacity.text import format_load
from loadgen.report.junit import Check, junit_xml

_STATUS_CELLS = {
    Status.PROVEN: "✅ proven",
    Status.ABOVE_MAX: "✅ above --max",
    Status.NOT_PROVEN: "⚠️ not proven",
    Status.UNCONFIRMED: "⚠️ unconfirmed",
    Status.BELOW_START: "❌ below the lowest load",
    Status.GENERATOR_LIMITED: "⛔ generator limited",
    Status.INTERRUPTED: "⚠️ interrupted",
    Status.FAILED: "❌ failed",
}


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def capacity_markdown(result: CapacityResult) -> str:
    settings = result.settings
    outcome = result.outcome
    lines = [
        f"### loadgen capacity: {_STATUS_CELLS[outcome.status]}",
        "",
        _escape(outcome.message),
        "",
        f"Scenario `{result.scenario.get('name', 'run')}`; SLOs "
        + ", ".join(f"`{slo}`" for slo in settings.slos)
        + f"; steps of {settings.warmup_s:g} s warm-up + {settings.step_duration_s:g} s "
        f"measured; precision {settings.precision * 100:.3g}%; confirm {settings.confirm}.",
        "",
    ]
    if settings.expect_at_least is not None:
        met = expectation_met(result)
        lines += [
            f"Expect at least {format_load(settings.expect_at_least, settings.vary)}: "
            + ("✅ met" if met else "❌ **not met**"),
            "",
        ]
    lines += [f"- {_escape(note)}" for note in outcome.notes]
    if outcome.notes:
        lines.append("")
    header = ["step", "phase", "offered", "achieved", "connections", "p50", "p99", "p99.9"]
    header += ["errors", "verdict"]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join(["---:", "---"] + ["---:"] * 7 + ["---"]) + "|")
    for step in result.steps:
        verdict = step.verdict.value + (f": {step.note}" if step.note else "")
        cells = [*step_cells(step, settings), verdict]
        lines.append("| " + " | ".join(_escape(cell) for cell in cells) + " |")
    return "\n".join(lines) + "\n"


def capacity_junit(result: CapacityResult) -> str:
    outcome = result.outcome
    status = outcome.status
    failed = status in (Status.GENERATOR_LIMITED, Status.FAILED, Status.INTERRUPTED)
    unsure = status in (Status.NOT_PROVEN, Status.UNCONFIRMED)
    steps = "\n".join(
        f"step {s.index} {s.phase} {format_load(s.offered, result.settings.vary)}: "
        f"{s.verdict.value}{': ' + s.note if s.note else ''}"
        for s in result.steps
    )
    name = str(result.scenario.get("name", "run"))
    checks = [
        Check(
            classname="loadgen.capacity",
            name=f"{name}: capacity",
            outcome="failed" if failed else "skipped" if unsure else "passed",
            message=f"{status.value}: {outcome.message}",
            details="\n".join([*outcome.notes, steps]),
            kind="invalid-run" if status is Status.GENERATOR_LIMITED else "capacity",
        )
    ]
    expected = result.settings.expect_at_least
    if expected is not None:
        met = expectation_met(result)
        wanted = format_load(expected, result.settings.vary)
        found = format_load(outcome.capacity, result.settings.vary)
        checks.append(
            Check(
                classname="loadgen.capacity",
                name=f"{name}: capacity at least {wanted}",
                outcome="passed" if met else "failed",
                message=f"capacity {found} ({status.value}), expected at least {wanted}",
                details=outcome.message,
                kind="capacity",
            )
        )
    return junit_xml("loadgen capacity", checks)
