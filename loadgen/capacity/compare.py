"""``loadgen compare`` on capacity results: the baseline's capacity against the current's,
as a CI gate.

The gate is the capacity (higher is better), compared as ``compare`` compares any metric
(``report.compare.compare_metric``): with three or more searches a side, the one-sided
Mann-Whitney U test and a bootstrap interval, a search as the unit; with fewer, the change
of medians against the tolerance alone. The result is a ``Comparison``, so the console
table, ``--markdown`` and ``--junit`` are the ones ``compare`` always writes.

What a search's capacity means decides how it counts: a proven (or confirmed, or
unconfirmed) capacity is the value; ``above max`` is a lower bound (the value, with a
warning); ``below start`` is below every load tried (0, with a warning); a search whose
generator was the bottleneck is an invalid run (its value is a lower bound of the target's,
``compare`` exits 3); an interrupted or failed one has no value.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from loadgen.capacity.model import CapacityResult, Status
from loadgen.capacity.text import format_load
from loadgen.report.compare import (
    MIN_RUNS_FOR_TEST,
    Comparison,
    InputWarning,
    Metric,
    compare_metric,
)
from loadgen.report.loading import ResultFileError, read_json

Labelled = tuple[str, CapacityResult]


def load_capacity(path: Path) -> CapacityResult:
    """Read a capacity result; ``ResultFileError`` naming the file when it is not one."""
    data = read_json(path)
    try:
        return CapacityResult.from_dict(data)
    except (KeyError, TypeError, ValueError) as exc:
        detail = f"missing {exc}" if isinstance(exc, KeyError) else str(exc)
        raise ResultFileError(path, f"malformed capacity result: {detail}") from None


def _labels(paths: Sequence[Path]) -> list[str]:
    stems = [path.stem for path in paths]
    return [
        stem if stems.count(stem) == 1 else f"{stem} ({path.parent.name or path.parent})"
        for stem, path in zip(stems, paths, strict=True)
    ]


def capacity_value(result: CapacityResult) -> float | None:
    status = result.outcome.status
    if status is Status.BELOW_START:
        return 0.0
    if status in (Status.INTERRUPTED, Status.FAILED):
        return None
    return result.outcome.capacity


def _warnings(searches: Sequence[Labelled]) -> list[InputWarning]:
    warnings = []
    slos = {tuple(result.settings.slos) for _, result in searches}
    if len(slos) > 1:
        warnings.append(
            InputWarning(
                "the searches judged different SLOs",
                tuple(f"{label}: {', '.join(r.settings.slos)}" for label, r in searches),
            )
        )
    names = {str(result.scenario.get("name")) for _, result in searches}
    if len(names) > 1:
        warnings.append(InputWarning(f"the searches come from different scenarios: {names}"))
    for label, result in searches:
        status = result.outcome.status
        load = format_load(result.outcome.capacity, result.settings.vary)
        if status is Status.ABOVE_MAX:
            warnings.append(
                InputWarning(f"{label}: no step up to --max broke an SLO: {load} is a lower bound")
            )
        elif status is Status.BELOW_START:
            warnings.append(
                InputWarning(f"{label}: even the lowest load tried broke an SLO: counted as 0")
            )
        elif status in (Status.NOT_PROVEN, Status.UNCONFIRMED):
            what = f"{load} is" if result.outcome.capacity is not None else "no load was"
            warnings.append(InputWarning(f"{label}: {what} {status.value}"))
        elif status in (Status.INTERRUPTED, Status.FAILED):
            warnings.append(
                InputWarning(f"{label} has no capacity ({status.value}: {result.outcome.message})")
            )
    return warnings


def compare_capacities(
    baseline: Sequence[Labelled],
    current: Sequence[Labelled],
    tolerance: float,
    sources: Sequence[str] = (),
) -> Comparison:
    """Capacity searches, baseline against current (each side one or more); ``sources``
    (the files, baseline first) name them in the outputs, else their labels do."""
    if not baseline or not current:
        raise ValueError("compare needs at least one baseline and one current search")
    varied = {result.settings.vary for _, result in [*baseline, *current]}
    if len(varied) > 1:
        raise ValueError(
            "the searches varied different things (rate in one, connections in another): "
            "their capacities are in different units"
        )
    unit = next(iter(baseline))[1].settings.unit
    tested = len(baseline) >= MIN_RUNS_FOR_TEST and len(current) >= MIN_RUNS_FOR_TEST
    metric = Metric("capacity", "capacity", unit, True, lambda summary: None)

    def values(side: Sequence[Labelled]) -> tuple[float, ...]:
        found = (capacity_value(result) for _, result in side)
        return tuple(value for value in found if value is not None)

    searches = [*baseline, *current]
    names = list(sources) or [label for label, _ in searches]
    return Comparison(
        tolerance=tolerance,
        tested=tested,
        baseline_sources=tuple(names[: len(baseline)]),
        current_sources=tuple(names[len(baseline) :]),
        metrics=(compare_metric(metric, values(baseline), values(current), tolerance, tested),),
        warnings=tuple(_warnings(searches)),
        invalid_runs=tuple(
            (label, (result.outcome.message,))
            for label, result in searches
            if result.outcome.status is Status.GENERATOR_LIMITED
        ),
    )


def compare_capacity_files(
    baseline: Sequence[Path], current: Sequence[Path], tolerance: float
) -> Comparison:
    """Read the files (``ResultFileError`` for one that is not a capacity result) and compare."""
    labels = _labels([*baseline, *current])
    results = [load_capacity(path) for path in [*baseline, *current]]
    paired = list(zip(labels, results, strict=True))
    return compare_capacities(
        paired[: len(baseline)],
        paired[len(baseline) :],
        tolerance,
        [str(path) for path in [*baseline, *current]],
    )
