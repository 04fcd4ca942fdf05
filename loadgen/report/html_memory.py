"""The report's memory table: start, peak and end of each memory counter (kernel
non-pageable memory, its components, posted receive bytes, RSS) and its growth per
connection, told apart from the counter's own noise; and the list of runs whose kernel
counters this OS could not measure."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from loadgen.report.formatting import MISSING, format_bytes, format_count
from loadgen.report.html_parts import grid_table
from loadgen.report.loading import LoadedRun
from loadgen.report.memory import Counter, RunMemory


def _bytes(value: float | None) -> str:
    if value is None:
        return MISSING
    return ("-" if value < 0 else "") + format_bytes(int(abs(value)))


def memory_table(runs: Sequence[LoadedRun], memory: Sequence[RunMemory | None]) -> str:
    """Start, peak and end of each memory counter, and its growth per connection."""
    rows = []
    notes = []
    for run, data in zip(runs, memory, strict=True):
        if data is None:
            notes.append(f"{escape(run.label)}: no memory samples in this result.")
            continue
        counters: list[Counter] = [data.kernel, *data.components, data.posted, data.rss]
        for counter in counters:
            label = f"{escape(run.label)}: {escape(counter.label)}"
            if counter.reason is not None:
                rows.append(
                    [label, f'<span class="na">{escape(counter.reason)}</span>', "", "", ""]
                )
                continue
            per = _growth(data, counter)
            rows.append(
                [label, _bytes(counter.start), _bytes(counter.peak), _bytes(counter.end), per]
            )
    table = grid_table(["run: counter", "start", "peak", "end", "growth per connection"], rows)
    note = "".join(f'<p class="note">{n}</p>' for n in notes)
    return table + note


def _growth(data: RunMemory, counter: Counter) -> str:
    """Growth per connection, or why it is no figure: within the counter's own noise, or
    too few samples to tell (system-wide counters move with everything the machine does)."""
    each, connections = data.per_connection(counter)
    if each is None or not connections:
        return MISSING
    figure = f"{_bytes(each)} (at {format_count(connections)} connections)"
    noise = data.noise(counter)
    if noise is None:
        if counter.system_wide:
            return f'{figure} <span class="na">too few samples to tell from noise</span>'
        return figure
    growth = each * connections
    if noise > 0 and abs(growth) <= noise:
        return (
            f'<span class="na">within noise: {_bytes(growth)} in all, while the counter moved '
            f"by {_bytes(noise)} with the connections held</span>"
        )
    return figure


def memory_not_measurable(runs: Sequence[LoadedRun], memory: Sequence[RunMemory | None]) -> str:
    """ "not measurable here: reason" for each run whose kernel counters were not measured."""
    lines = [
        f"<li>{escape(run.label)}: kernel non-pageable memory {escape(data.kernel.reason)}</li>"
        for run, data in zip(runs, memory, strict=True)
        if data is not None and data.kernel.reason is not None
    ]
    return f'<ul class="na-list">{"".join(lines)}</ul>' if lines else ""
