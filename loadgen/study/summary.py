"""Trials → groups: the median and spread of each number over a cell's repeats.

The spread is the whole range (min-max) and the quartiles; with the usual three repeats
the range is the honest one to read. A number missing from any repeat (not measurable, or
no sample in its window) makes the cell's number missing too: a median of the repeats that
happened to measure would hide the gap.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from loadgen.study.result import PHASES, Group, Spread, Trial


def spread(values: Sequence[float | None]) -> Spread:
    present = [float(v) for v in values if v is not None]
    if not present or len(present) != len(values):
        return Spread(n=len(present), median=None, min=None, max=None, q1=None, q3=None)
    if len(present) == 1:
        q1 = q3 = present[0]
    else:
        q1, _, q3 = statistics.quantiles(present, n=4, method="inclusive")
    return Spread(
        n=len(present),
        median=statistics.median(present),
        min=min(present),
        max=max(present),
        q1=q1,
        q3=q3,
    )


def group_trials(trials: Sequence[Trial]) -> list[Group]:
    """One group per (connections, mode), in the order the cells first appear."""
    cells: dict[tuple[int, str], list[Trial]] = {}
    for trial in trials:
        cells.setdefault((trial.connections, trial.mode), []).append(trial)
    groups = []
    for (connections, mode), members in sorted(cells.items(), key=lambda item: item[0][0]):
        names = list(dict.fromkeys(n for t in members for n in t.per_connection["idle"]))
        groups.append(
            Group(
                connections=connections,
                mode=mode,
                repeats=len(members),
                per_connection={
                    phase: {
                        name: spread([t.per_connection[phase].get(name) for t in members])
                        for name in names
                    }
                    for phase in (*PHASES, "after")
                },
                throughput_rps=spread([t.throughput_rps for t in members]),
                latency_p50_us=spread([t.latency_p50_us for t in members]),
                latency_p99_us=spread([t.latency_p99_us for t in members]),
                not_returned=sum(1 for t in members if t.returned is False),
            )
        )
    return groups
