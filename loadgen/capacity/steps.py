"""Steps: each one a fresh run of the user's scenario at one offered load, judged on its
measured window, followed by a drain when it left the target queueing.

* **Open model** (``--vary rate``): one phase of warm-up + measured window at a constant
  rate with Poisson arrivals. The pool follows the rate by Little's law (connections in use
  = rate x latency) with ``HEADROOM`` over the SLO's latency bound (``pool_size``): requests
  wait for a connection only when the target's latency is already about twice the bound, or
  in a stall. Waiting for a connection costs a request the same corrected latency as
  waiting in the target's queue, so a step that broke an SLO that way broke it anyway; one
  whose SLOs held although its pool ran out is run again with ``POOL_GROWTH`` times the
  pool (and so is every later step): the pool is never what limits a step.
* **Closed model** (``--vary connections``): the load is the connection count, each
  connection with the scenario's think time.
* **Drain**: a step that ends with its last second's median latency above the first
  passing step's (``DRAIN_FACTOR``, at least ``DRAIN_SLACK_US`` above it) may have left a
  queue in the target. Short probes at that first step's load follow until the median is
  back below that bound (at most ``MAX_DRAIN_S``), so one step's backlog is not charged to
  the next.

Runs go through the public ``loadgen.run.api.run`` (fitted to this machine's limits as
``loadgen run`` does), or through ``run_cluster`` with ``--cluster``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace

from loadgen.capacity.model import Drain, Settings, Step, StepVerdict, Vary
from loadgen.capacity.window import Bottleneck, bottleneck, judge, measured_window
from loadgen.config.scenario import Scenario
from loadgen.config.thresholds import Threshold, ThresholdVerdict
from loadgen.report.formatting import format_threshold_value
from loadgen.result.model import RunResult, Summary
from loadgen.stats.histogram import HdrHistogram

#: Pool = rate x latency budget x HEADROOM: with a mean latency up to twice the budget the
#: pool still has a free connection; long before that a step has broken a latency SLO.
HEADROOM = 2.0
#: The budget is never below 50 ms: a stall of the generator or of the target piles up
#: rate x stall requests, which must find connections free when it ends (stalls of 10-100 ms
#: are common on a busy shared machine: measured on the 2-core VM at load averages of 10-20).
STALL_FLOOR_S = 0.05
#: At low rates Poisson bursts and stalls matter more than the mean: never fewer than this.
MIN_POOL = 32
#: Beyond this a pool is a connection-count test of its own (and costs a receive buffer per
#: connection in buffered mode: 4,096 x 64 KiB = 256 MiB).
MAX_POOL = 4096
#: A step whose pool ran out while its SLOs held is run again with this many times the pool.
POOL_GROWTH = 4
#: Without a latency SLO the pool covers latencies up to the request timeout, at most 1 s.
MAX_BUDGET_S = 1.0
_LATENCY_STATS = ("min", "mean", "p50", "p90", "p99", "p99_9", "max")

#: Drained when a probe's median latency is at most 1.5x the first passing step's, and
#: never asked to be within 1 ms of it (scheduling noise on a shared machine is ~1 ms).
DRAIN_FACTOR = 1.5
DRAIN_SLACK_US = 1000.0
MAX_DRAIN_S = 60.0
#: A probe lasts long enough for ~100 responses at the probe load, within 1-5 s.
PROBE_RESPONSES = 100
PROBE_MIN_S, PROBE_MAX_S = 1.0, 5.0

Notice = Callable[[str], None]
RunScenario = Callable[[Scenario, int | None], RunResult]


def latency_budget_s(slos: list[Threshold], scenario: Scenario) -> float:
    """The latency the pool must cover: the largest latency bound of the SLOs, else the
    request timeout (a request slower than that is an error anyway), at most 1 s."""
    bounds = [
        slo.limit
        for slo in slos
        if slo.metric.removeprefix("raw_") in _LATENCY_STATS and slo.op in ("<", "<=")
    ]
    budget = max(bounds) if bounds else min(scenario.timeouts.request, MAX_BUDGET_S)
    return max(STALL_FLOOR_S, budget)


def pool_size(rate: float, budget_s: float, factor: float = 1.0) -> int:
    """Connections for an open-model step (Little's law with headroom), times ``factor``
    once a pool ran out."""
    return min(MAX_POOL, max(MIN_POOL, math.ceil(rate * budget_s * HEADROOM * factor)))


def think_time_s(scenario: Scenario) -> float:
    plan = scenario.load_section
    return max(
        (p.think_time for p in plan.phases if p.think_time is not None), default=plan.think_time
    )


def step_scenario(
    base: Scenario,
    vary: Vary,
    load: float,
    connections: int,
    duration_s: float,
    slos: list[Threshold],
    target: str | None = None,
) -> Scenario:
    """The user's scenario as one step: ``load`` (a rate or a connection count) for
    ``duration_s``, the SLOs as its thresholds, and optionally another target address."""
    data = base.to_dict()
    data.pop("connections", None)  # the shorthand: replaced by load below
    data.pop("duration", None)
    plan = base.load_section
    extra = (
        {"requests_per_connection": plan.requests_per_connection}
        if plan.requests_per_connection
        else {}
    )
    if vary is Vary.RATE:
        phase = {"duration": duration_s, "rate": load, "arrivals": "poisson"}
        data["load"] = {"model": "open", "connections": connections, "phases": [phase], **extra}
    else:
        data["load"] = {
            "model": "closed",
            "connections": round(load),
            "phases": [{"duration": duration_s}],
            "think_time": think_time_s(base),
            **extra,
        }
    data["thresholds"] = [slo.expression for slo in slos]
    if target is not None:
        data["target"] = target
    return Scenario.model_validate(data)


class Stepper:
    """Makes and runs steps, numbering them, and drains after a step that left a queue."""

    def __init__(
        self,
        base: Scenario,
        settings: Settings,
        slos: list[Threshold],
        run_scenario: RunScenario,
        *,
        target: str | None = None,
        on_step: Callable[[Step], None] | None = None,
        on_drain: Callable[[Step, Drain], None] | None = None,
        notice: Notice | None = None,
    ) -> None:
        self.base = base
        self.settings = settings
        self.slos = slos
        self.run_scenario = run_scenario
        self.target = target
        self.on_step = on_step
        self.on_drain = on_drain
        self.notice = notice
        self.steps: list[Step] = []
        self.budget_s = latency_budget_s(slos, base)
        #: Grows (x POOL_GROWTH) when a pool ran out while the SLOs held, for every later step.
        self.pool_factor = 1.0
        #: The first passing step: its load is the probe's, its median latency the drain's
        #: reference.
        self.reference: Step | None = None

    def connections_for(self, load: float) -> int:
        if self.settings.vary is Vary.CONNECTIONS:
            return round(load)
        return pool_size(load, self.budget_s, self.pool_factor)

    def scenario_for(self, load: float, duration_s: float) -> Scenario:
        return step_scenario(
            self.base,
            self.settings.vary,
            load,
            self.connections_for(load),
            duration_s,
            self.slos,
            self.target,
        )

    def measure(self, load: float, phase: str) -> Step:
        """Run one step at ``load`` and judge it; drain after it if it left a queue."""
        settings = self.settings
        while True:
            scenario = self.scenario_for(load, settings.warmup_s + settings.step_duration_s)
            result = self.run_scenario(scenario, None)
            data = measured_window(result, settings.warmup_s)
            verdicts = judge(self.slos, data.summary)
            verdict, note = self._verdict(result, verdicts, data.window.requests, scenario)
            if not self._pool_ran_out(result, data.summary, scenario):
                break
            self.pool_factor *= POOL_GROWTH
            if self.notice is not None:
                self.notice(
                    f"step {len(self.steps) + 1} ({load:g}): every one of its "
                    f"{scenario.load_section.connections:,} connections was busy while the target "
                    f"answered within the SLOs: running it again with "
                    f"{self.connections_for(load):,}"
                )
        step = Step(
            index=len(self.steps) + 1,
            phase=phase,
            offered=load,
            connections=scenario.load_section.connections,
            window=data.window,
            verdicts=verdicts,
            verdict=verdict,
            note=note,
            result=result,
        )
        self.steps.append(step)
        if self.on_step is not None:
            self.on_step(step)
        if step.passed and self.reference is None:
            self.reference = step
        elif verdict in (StepVerdict.PASS, StepVerdict.FAIL):
            drain = self.drain(step)
            if drain is not None:
                step = replace(step, drain=drain)
                self.steps[-1] = step
                if self.on_drain is not None:
                    self.on_drain(step, drain)
        return step

    def _pool_ran_out(self, result: RunResult, window: Summary, scenario: Scenario) -> bool:
        """True when the pool, not the target, limited a step, and a larger pool is still
        possible: the pool must never be the bottleneck.

        Requests that waited for a connection carry the wait in their corrected latency,
        and so does a stall of the generator between one request's answer and the next
        one's send on that connection. Judged on the raw latency instead (what the target
        took, from each actual send), the SLOs say whose the wait was: held there, the
        target answered within them and the pool was too small; broken there too, the
        target held the connections (and the step broke an SLO either way)."""
        if (
            self.settings.vary is not Vary.RATE
            or bottleneck(result.self_check) is not Bottleneck.POOL
        ):
            return False
        target_only = replace(window, latency_corrected_us=None)
        if not all(verdict.passed for verdict in judge(self.slos, target_only)):
            return False
        rate = scenario.load_section.phases[0].rate
        assert rate is not None  # an open-model step
        cap = min(MAX_POOL, math.ceil(rate[0] * scenario.timeouts.request))
        return scenario.load_section.connections < cap

    def _verdict(
        self,
        result: RunResult,
        verdicts: list[ThresholdVerdict],
        requests: int,
        scenario: Scenario,
    ) -> tuple[StepVerdict, str]:
        if result.partial:
            return StepVerdict.STOPPED, result.stop_reason
        neck = bottleneck(result.self_check)
        if neck is Bottleneck.GENERATOR:
            assert result.self_check is not None
            return StepVerdict.SATURATED, "; ".join(result.self_check.reasons)
        broken = [v for v in verdicts if not v.passed]
        broke = ", ".join(
            f"{v.expression} (observed {format_threshold_value(v.metric, v.value)})" for v in broken
        )
        if neck is Bottleneck.POOL:
            return StepVerdict.FAIL, (
                f"all {scenario.load_section.connections:,} connections of the pool were busy: the "
                "target held them (requests waited for one)" + (f"; broke {broke}" if broke else "")
            )
        if broken:
            return StepVerdict.FAIL, f"broke {broke}"
        if requests == 0:
            return StepVerdict.FAIL, "no response in the measured window"
        return StepVerdict.PASS, ""

    # ------------------------------------------------------------------ drain

    def drain(self, step: Step) -> Drain | None:
        """Probe at the reference load until the target's median latency is back near the
        reference step's; None before there is a reference."""
        reference = self.reference
        if reference is None or reference.window.latency_us.p50 is None:
            return None
        base_us = reference.window.latency_us.p50
        bound_us = max(base_us * DRAIN_FACTOR, base_us + DRAIN_SLACK_US)
        tail_us = _last_second_p50_us(step.result)
        if tail_us is not None and tail_us <= bound_us:
            return Drain(0, 0.0, tail_us, round(bound_us, 3), True)
        began = time.perf_counter()
        probes = 0
        p50_us: float | None = None
        while True:
            probes += 1
            probe = self._probe(reference.offered)
            if probe.stop_reason.startswith("interrupted"):
                raise KeyboardInterrupt  # Ctrl-C during a probe ends the search, as between steps
            p50_us = _honest_p50_us(probe)
            waited = time.perf_counter() - began
            if p50_us is not None and p50_us <= bound_us:
                return Drain(probes, round(waited, 3), p50_us, round(bound_us, 3), True)
            if waited >= MAX_DRAIN_S or probe.partial:
                return Drain(probes, round(waited, 3), p50_us, round(bound_us, 3), False)

    def _probe(self, load: float) -> RunResult:
        if self.settings.vary is Vary.RATE:
            duration_s = min(PROBE_MAX_S, max(PROBE_MIN_S, PROBE_RESPONSES / load))
        else:
            duration_s = PROBE_MIN_S
        return self.run_scenario(self.scenario_for(load, duration_s), 1)


def _honest(result: RunResult) -> HdrHistogram:
    name = "latency_corrected" if "latency_corrected" in result.histograms else "latency"
    return result.histogram(name)


def _honest_p50_us(result: RunResult) -> float | None:
    histogram = _honest(result)
    if histogram.total_count == 0:
        return None
    return histogram.value_at_percentile(50.0) / 1000


def _last_second_p50_us(result: RunResult) -> float | None:
    """The median latency of the run's last whole interval (None: none had a response)."""
    for interval in reversed(result.intervals):
        if interval.duration_s < 0.5:
            continue  # the short remainder after the run's end
        data = interval.latency_corrected or interval.latency
        histogram = HdrHistogram.from_dict(data)
        if histogram.total_count:
            return histogram.value_at_percentile(50.0) / 1000
        return None
    return None


@contextmanager
def hoisted_target(
    scenario: Scenario, backend: str, target_processes: int, *, hoist: bool = True
) -> Iterator[str | None]:
    """A built-in target started once for the whole search (so the drain between steps
    means something, and no step pays its start): yields its ``HOST:PORT``; None for a
    network target, which needs nothing, or when not ``hoist`` (a cluster run starts and
    checks a built-in target itself, for each step)."""
    builtin = scenario.builtin_target
    if builtin is None or not hoist:
        yield None
        return
    from loadgen.targets.process import builtin_target

    with builtin_target(builtin, backend=backend, processes=target_processes) as (host, port):
        yield f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
