"""The study's summary for a terminal (rich): memory per connection, then the cost."""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.table import Table

from loadgen.study.result import StudyResult
from loadgen.study.text import bytes_scale, latency_scale, rate_scale, with_spread


def _table(title: str, columns: list[str]) -> Table:
    table = Table(title=title, box=box.SIMPLE_HEAVY, title_justify="left")
    for index, name in enumerate(columns):
        table.add_column(name, justify="left" if index in (1, 2) else "right", no_wrap=True)
    return table


def render_study(study: StudyResult, console: Console) -> None:
    kernel = study.metric("kernel")
    env = study.environment
    memory = _table(
        f"Memory per connection ({env['backend']}, {env['os']})",
        ["connections", "mode", "phase", "kernel", "posted", "RSS"],
    )
    cost = _table(
        "Under traffic (closed loop)",
        ["connections", "mode", "throughput", "p50", "p99", "memory returned"],
    )
    for group in study.groups:
        for phase in ("idle", "traffic"):
            values = group.per_connection[phase]
            memory.add_row(
                f"{group.connections:,}" if phase == "idle" else "",
                group.mode if phase == "idle" else "",
                phase,
                with_spread(values["kernel"], bytes_scale),
                with_spread(values["posted"], bytes_scale),
                with_spread(values["rss"], bytes_scale),
                end_section=phase == "traffic",
            )
        cost.add_row(
            f"{group.connections:,}",
            group.mode,
            with_spread(group.throughput_rps, rate_scale),
            with_spread(group.latency_p50_us, latency_scale),
            with_spread(group.latency_p99_us, latency_scale),
            f"{group.repeats - group.not_returned}/{group.repeats}",
        )
    console.print(memory)
    console.print(cost)
    console.print(
        f"Median over {study.plan['repeat']} repeat(s), (min\u2013max) in brackets. "
        f"kernel = {kernel.label}: {kernel.description}.",
        highlight=False,
    )
    for metric in study.metrics:
        if metric.reason:
            console.print(f"{metric.label}: {metric.reason}", highlight=False)
    for note in study.notes:
        console.print(f"- {note}", highlight=False)
    for warning in study.warnings:
        console.print(f"[yellow]warning:[/] {warning}", highlight=False)
