"""The search on the terminal: a table of steps that grows a row as each step ends (plain
fixed-width lines, so a CI log shows the same table), then the answer."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape

from loadgen.capacity.model import CapacityResult, Drain, Settings, Status, Step, StepVerdict
from loadgen.capacity.text import format_load
from loadgen.report.formatting import format_us

_COLUMNS = (
    ("step", 4, ">"),
    ("phase", 7, "<"),
    ("offered", 15, ">"),
    ("achieved", 11, ">"),
    ("conns", 6, ">"),
    ("p50", 9, ">"),
    ("p99", 9, ">"),
    ("p99.9", 9, ">"),
    ("errors", 7, ">"),
    ("verdict", 0, "<"),
)
_VERDICT_STYLE = {
    StepVerdict.PASS: "green",
    StepVerdict.FAIL: "bold red",
    StepVerdict.SATURATED: "bold yellow",
    StepVerdict.STOPPED: "yellow",
}
_STATUS_STYLE = {
    Status.PROVEN: "bold green",
    Status.ABOVE_MAX: "bold green",
    Status.NOT_PROVEN: "bold yellow",
    Status.UNCONFIRMED: "bold yellow",
    Status.BELOW_START: "bold red",
    Status.GENERATOR_LIMITED: "bold yellow",
    Status.INTERRUPTED: "yellow",
    Status.FAILED: "bold red",
}


def _line(cells: list[str]) -> str:
    parts = []
    for (_, width, align), cell in zip(_COLUMNS, cells, strict=True):
        parts.append(f"{cell:{align}{width}}" if width else cell)
    return "  ".join(parts)


def step_cells(step: Step, settings: Settings) -> list[str]:
    """A step's row: every column but the verdict's note."""
    window = step.window
    latency = window.latency_us
    return [
        str(step.index),
        step.phase,
        format_load(step.offered, settings.vary),
        f"{window.achieved_rps:,.0f}/s"
        if window.achieved_rps >= 100
        else f"{window.achieved_rps:.3g}/s",
        f"{step.connections:,}",
        format_us(latency.p50),
        format_us(latency.p99),
        format_us(latency.p99_9),
        f"{window.error_count:,}",
    ]


class StepTable:
    """Prints the header with the first step, then a row per step as it ends."""

    def __init__(self, console: Console, settings: Settings) -> None:
        self.console = console
        self.settings = settings
        self.started = False

    def header(self) -> None:
        self.console.print(f"[dim]{_line([name for name, _, _ in _COLUMNS])}[/]", highlight=False)
        self.started = True

    def step(self, step: Step) -> None:
        if not self.started:
            self.header()
        style = _VERDICT_STYLE[step.verdict]
        verdict = f"[{style}]{step.verdict.value}[/]"
        if step.note:
            verdict += f": {escape(step.note)}"
        cells = [escape(cell) for cell in step_cells(step, self.settings)]
        self.console.print(_line([*cells, verdict]), highlight=False, soft_wrap=True)

    def drain(self, step: Step, drain: Drain) -> None:
        if drain.probes == 0:
            return
        p50 = format_us(drain.latency_p50_us)
        bound = format_us(drain.bound_us)
        probes = f"{drain.probes} probe{'s' if drain.probes != 1 else ''}"
        if drain.drained:
            text = f"drained in {drain.seconds:.1f} s ({probes}: p50 {p50} <= {bound})"
        else:
            text = (
                f"[yellow]not drained[/] after {drain.seconds:.1f} s ({probes}: p50 {p50} > "
                f"{bound}); going on"
            )
        self.console.print(f"[dim]{'':>4}  {text}[/]", highlight=False, soft_wrap=True)


def render_outcome(result: CapacityResult, console: Console) -> None:
    """The answer, and any note the proof left."""
    outcome = result.outcome
    style = _STATUS_STYLE[outcome.status]
    console.print(
        f"capacity: [{style}]{outcome.status.value}[/]: {escape(outcome.message)}",
        highlight=False,
        soft_wrap=True,
    )
    for note in outcome.notes:
        console.print(f"  note: {escape(note)}", highlight=False, soft_wrap=True)
    expected = result.settings.expect_at_least
    if expected is not None:
        met = expectation_met(result)
        verdict = "[green]met[/]" if met else "[bold red]not met[/]"
        console.print(
            f"expect at least {format_load(expected, result.settings.vary)}: {verdict}",
            highlight=False,
        )


def expectation_met(result: CapacityResult) -> bool:
    """``--expect-at-least``: the sustained load (confirmed, or a lower bound when the
    generator or --max stopped the search) is at least the expected one."""
    expected = result.settings.expect_at_least
    if expected is None:
        return True
    capacity = result.outcome.capacity
    return capacity is not None and capacity >= expected
