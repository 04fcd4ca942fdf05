"""The latency floor of http_peers.py: loadgen and wrk at one connection, where latency is
the round trip through both network stacks and the server and nothing else, so the ratio of
their p50s shows what loadgen's own path adds per request."""

from __future__ import annotations

from typing import Any

from _peers import summarize

#: The target: loadgen's p50 at one connection at most this times wrk's (issue 19).
FLOOR_TARGET = 1.2


def latency_floor(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The 1-connection runs' medians, and loadgen's p50 over wrk's (printed too)."""
    medians = summarize(runs, ["loadgen", "wrk"])
    ours, theirs = medians["loadgen"]["p50_us"]["median"], medians["wrk"]["p50_us"]["median"]
    ratio = ours / theirs if ours is not None and theirs else None
    print("\nlatency floor, 1 connection (median p50, min-max):")
    for name in ("loadgen", "wrk"):
        cell = medians[name]["p50_us"]
        if cell["median"] is None:
            print(f"  {name:8} not measured")
        else:
            print(f"  {name:8} {cell['median']:>10.1f} us   ({cell['min']:.1f}-{cell['max']:.1f})")
    shown = f"{ratio:.2f}x" if ratio is not None else "n/a"
    print(f"  loadgen/wrk p50: {shown} (target <= {FLOOR_TARGET:g}x)")
    return {
        "connections": 1,
        "medians": medians,
        "p50_ratio_loadgen_to_wrk": ratio,
        "target_max": FLOOR_TARGET,
        "runs": runs,
    }
