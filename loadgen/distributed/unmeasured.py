"""A result with nothing measured, shaped as a host's would be: what a distributed run that
lost every host merges the lost hosts' ticks into (``coordinator._merge``), so the requests,
errors and latencies they reported are written rather than lost with them."""

from __future__ import annotations

from datetime import UTC, datetime

from loadgen.config.plan import LoadPlan
from loadgen.config.scenario import Scenario
from loadgen.result.model import Environment, Generator, LatencySummary, RunResult, Summary
from loadgen.result.stop import StopKind, StopReason
from loadgen.stats.histogram import HdrHistogram


def unmeasured_result(
    scenario: Scenario, environment: Environment, started_at_s: float
) -> RunResult:
    """Nothing measured, for ``scenario`` on a host described by ``environment``, started at
    ``started_at_s`` (seconds since the epoch); partial and failed (no host gave a result)."""
    empty = HdrHistogram()
    histograms = {name: empty.to_dict() for name in ("latency", "connect_latency")}
    if LoadPlan.from_scenario(scenario).open_model:
        histograms |= {name: empty.to_dict() for name in ("latency_corrected", "schedule_lag")}
    nothing = LatencySummary.from_histogram(empty)
    started = datetime.fromtimestamp(started_at_s, UTC).isoformat(timespec="milliseconds")
    return RunResult(
        scenario=scenario.to_dict(),
        environment=environment,
        summary=Summary(0, {}, 0.0, 0.0, nothing, nothing, 0, 0, 0, 0, 0),
        generator=Generator(cpu_s=0.0, cpu_percent=0.0, loop_iterations=0, max_loop_lag_ms=0.0),
        started_at=started.replace("+00:00", "Z"),
        partial=True,
        stop=StopReason(StopKind.FAILED, "no host gave a result"),
        histograms=histograms,
    )
