"""What to do about an invalid run: ways out that fit the run, as commands that work today.

A run is invalid when loadgen itself was the bottleneck (``loadgen.run.selfcheck``). The
verdict alone leaves a new user stuck, so every report of it says what would make the run
measure the target: a think time or the open model at a rate loadgen keeps (as ``--set``
overrides of this very scenario, in the form it is written in: the shorthand ``connections``
and ``duration`` only become a full ``load`` by replacing them), the target on other cores or
another host, more client processes, or ``--allow-saturated`` to measure loadgen itself.
"""

from __future__ import annotations

import math
import shlex
from typing import Any

from loadgen.config.units import format_duration
from loadgen.result.model import RunResult

#: Suggested open-model rate: this share of what the invalid run completed, rounded down to
#: 1, 2 or 5 times a power of ten: well under the pace at which loadgen was the bottleneck.
RATE_SHARE = 0.5
#: Suggested think time: 10 ms makes each connection wait for longer than a local echo takes
#: (tens of µs), so loadgen idles most of the time (the quickstart's choice).
THINK_TIME = "10ms"
_LOCAL_HOSTS = ("localhost", "::1", "[::1]", "0.0.0.0")


def round_rate(rate: float) -> int:
    """The largest 1, 2 or 5 x 10^k at or below ``rate`` (at least 1)."""
    if rate < 1:
        return 1
    power: int = 10 ** math.floor(math.log10(rate))
    return max(step * power for step in (1, 2, 5) if step * power <= rate)


def format_rate(rate: int) -> str:
    """``2000`` -> ``2k/s``; ``150`` -> ``150/s``."""
    return f"{rate // 1000}k/s" if rate >= 1000 and rate % 1000 == 0 else f"{rate}/s"


def _set(path: str, value: str) -> str:
    return "--set " + shlex.quote(f"{path}={value}")


def _duration(scenario: dict[str, Any]) -> str:
    phases = (scenario.get("load") or {}).get("phases") or []
    total = sum(float(phase.get("duration", 0)) for phase in phases)
    return format_duration(total or float(scenario.get("duration") or 10))


def _load_sets(scenario: dict[str, Any], load: str) -> str:
    """``--set`` options that give the scenario this ``load`` mapping (flow YAML)."""
    sets = [_set("load", load)]
    if scenario.get("duration") is not None or scenario.get("connections") is not None:
        sets += [_set("connections", "null"), _set("duration", "null")]  # the shorthand's
    return " ".join(sets)


def think_time_sets(scenario: dict[str, Any]) -> str:
    """Closed model: each connection waits ``THINK_TIME`` between requests."""
    if scenario.get("duration") is None:  # the full form: one field
        return _set("load.think_time", THINK_TIME)
    connections = scenario.get("connections") or (scenario.get("load") or {}).get("connections")
    return _load_sets(
        scenario,
        f"{{connections: {connections}, think_time: {THINK_TIME}, "
        f"phases: [{{duration: {_duration(scenario)}}}]}}",
    )


def open_model_sets(scenario: dict[str, Any], rate: int) -> str:
    """The open model at ``rate`` for the run's duration, on the scenario's connections."""
    load = scenario.get("load") or {}
    phases = f"[{{duration: {_duration(scenario)}, rate: {format_rate(rate)}}}]"
    if scenario.get("duration") is None:
        model = "" if load.get("model") == "open" else _set("load.model", "open") + " "
        return model + _set("load.phases", phases)
    connections = scenario.get("connections") or load.get("connections")
    return _load_sets(scenario, f"{{model: open, connections: {connections}, phases: {phases}}}")


def _targets(scenario: dict[str, Any]) -> list[str]:
    target = scenario.get("target")
    return [target] if isinstance(target, str) else [str(t) for t in target or []]


def _local_target(scenario: dict[str, Any]) -> str | None:
    """The first target on this machine (built-in or a loopback address), if any."""
    for target in _targets(scenario):
        host = target.rpartition(":")[0]
        if target.startswith("builtin:") or host.startswith("127.") or host in _LOCAL_HOSTS:
            return target
    return None


def saturation_advice(result: RunResult) -> list[str]:
    """Ways out of an invalid run, most likely to help first; empty for a valid run."""
    check = result.self_check
    if check is None or check.valid:
        return []
    scenario = result.scenario
    load = scenario.get("load") or {}
    env = result.environment
    closed = load.get("model", "closed") == "closed"
    rate = round_rate(RATE_SHARE * result.summary.throughput_rps)
    advice = []
    if "stream" in (scenario.get("protocol") or {}):  # streams run closed, paced by a rate
        advice.append(
            "pace the transfers: a rate per connection that loadgen keeps, "
            + _set("protocol.stream.rate", "10MiB/s")
        )
    elif closed:
        if not load.get("think_time"):
            advice.append(
                "think time: each connection waits between requests, so loadgen idles instead "
                f"of racing the target: {think_time_sets(scenario)}"
            )
        advice.append(
            "open model: a fixed rate loadgen keeps (about half of what this run completed): "
            + open_model_sets(scenario, rate)
        )
    else:
        advice.append(
            "a lower rate (about half of what this run completed): "
            f"{open_model_sets(scenario, rate)}; or more connections (load.connections) if "
            "requests waited for a free one"
        )
    local = _local_target(scenario)
    cores = f"{env.cpu_count} cores" if env.cpu_count else "cores"
    if local is not None and local.startswith("builtin:"):
        advice.append(
            f"the target elsewhere: the built-in target shares this machine's {cores} with "
            f"loadgen; serve it on another host (loadgen serve "
            f"{local.removeprefix('builtin:')}) and set target to HOST:PORT"
        )
    elif local is not None:
        advice.append(
            f"the target elsewhere: {local} runs on this machine and competes for its "
            f"{cores}; pin the two to separate cores (taskset -c 1 for the target, taskset -c "
            "0 loadgen run ...) or run the target on another host"
        )
    elif env.cpu_count and env.processes < env.cpu_count:
        advice.append(f"more client processes: --processes {env.cpu_count}")
    advice.append(
        "measuring loadgen itself (its peak rate)? --allow-saturated keeps the mark in the "
        "result and exits 0"
    )
    return advice
