"""Split one scenario's load into shards by weight. Pure: no clocks, no I/O.

A shard is a slice of the scenario that one process (or, later, one host) runs on its own;
the slices together ask for exactly the load of the whole:

* connections (the pool, and the first and last count of every ramped phase) are split by
  the largest-remainder method, so the counts sum to the whole and equal weights give
  counts that differ by at most one (the first shards take the extra ones);
* open-model rates are split in proportion to the weights (every phase, both ends of a
  ramp), so the shards' arrival processes add up to the scenario's rate: a sum of
  independent Poisson processes is a Poisson process of the summed rate; constant-rate
  shards are staggered by ``arrival_phase`` so their sends interleave instead of coinciding;
* source addresses are dealt out in contiguous blocks by weight when there are at least as
  many as shards (each block keeps its own ephemeral ports); fewer are shared by all;
* everything per connection (message size, receive mode, timeouts, protocol, stream
  settings such as ``bytes`` and ``rate`` per connection) is unchanged, as are phase
  durations and thresholds (evaluated on the merged result, never per shard).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Any

from loadgen.config.phases import Phase
from loadgen.config.plan import LoadPlan
from loadgen.config.scenario import Scenario


def split_counts(total: int, weights: Sequence[float]) -> list[int]:
    """``total`` split by ``weights`` (largest remainder): sums to ``total`` exactly."""
    if not weights or min(weights) < 0 or sum(weights) <= 0:
        raise ValueError(f"weights must be non-negative with a positive sum, got {weights}")
    whole = sum(weights)
    shares = [total * w / whole for w in weights]
    counts = [int(share) for share in shares]
    left = total - sum(counts)
    # Ties go to the lower index, so equal weights fill the first shards first.
    order = sorted(range(len(weights)), key=lambda i: (counts[i] - shares[i], i))
    for i in order[:left]:
        counts[i] += 1
    return counts


def _address_ranges(addresses: Sequence[str]) -> list[str]:
    """Consecutive addresses folded back into ``A-B`` ranges (as scenarios write them)."""
    ranges: list[str] = []
    start = end = None
    for text in addresses:
        address = ipaddress.ip_address(text)
        if end is not None and start is not None and int(address) == int(end) + 1:
            end = address
            continue
        if start is not None:
            ranges.append(str(start) if start == end else f"{start}-{end}")
        start = end = address
    if start is not None:
        ranges.append(str(start) if start == end else f"{start}-{end}")
    return ranges


def split_sources(scenario: Scenario, weights: Sequence[float]) -> list[list[str] | None]:
    """Each shard's ``source`` (address ranges), or None everywhere when none was given."""
    sources = scenario.source_addresses()
    if not sources:
        return [None] * len(weights)
    if len(sources) < len(weights):
        shared = _address_ranges(sources)
        return [shared] * len(weights)
    blocks: list[list[str] | None] = []
    first = 0
    for count in split_counts(len(sources), weights):
        blocks.append(_address_ranges(sources[first : first + count]))
        first += count
    return blocks


def split_scenario(scenario: Scenario, weights: Sequence[float]) -> list[Scenario]:
    """One slice of ``scenario`` per weight; the slices together ask for the whole load."""
    plan = scenario.load_section
    whole = sum(weights)
    pools = split_counts(plan.connections, weights)
    phase_counts: list[tuple[list[int], list[int]] | None] = [
        None
        if phase.connections is None
        else (
            split_counts(phase.connections[0], weights),
            split_counts(phase.connections[1], weights),
        )
        for phase in plan.phases
    ]
    sources = split_sources(scenario, weights)
    slices: list[Scenario] = []
    for shard, weight in enumerate(weights):
        phases: list[Phase] = []
        for phase, counts in zip(plan.phases, phase_counts, strict=True):
            update: dict[str, Any] = {}
            if phase.rate is not None:
                first, last = phase.rate
                update["rate"] = (first * weight / whole, last * weight / whole)
            if counts is not None:
                update["connections"] = (counts[0][shard], counts[1][shard])
            phases.append(phase.model_copy(update=update))
        load = plan.model_copy(update={"connections": pools[shard], "phases": phases})
        update = {"load": load}
        if scenario.connections is not None:  # the shorthand form: keep to_dict() consistent
            update["connections"] = pools[shard]
        if sources[shard] is not None:
            update["source"] = sources[shard]
        slices.append(scenario.model_copy(update=update))
    return slices


def arrival_phase(weights: Sequence[float], shard: int) -> float:
    """Where in its own inter-arrival gap shard ``shard``'s constant schedule begins (0..1).

    With equal weights shard ``i`` of ``n`` starts ``i/n`` of its gap late, which interleaves
    the shards' sends evenly (``i / rate`` apart) instead of sending ``n`` at once.
    """
    return sum(weights[:shard]) / sum(weights)


def usable_processes(plan: LoadPlan, wanted: int) -> int:
    """At most one process per connection of the pool (``LoadPlan.peak_connections``): a
    shard with none would idle."""
    return max(1, min(wanted, plan.peak_connections))
