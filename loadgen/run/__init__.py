"""Orchestration: the public ``run()`` (``api``), one shard's measurement (``measure``),
shard processes on one host (``processes``), splitting a scenario and merging results
(``split``, ``merge``), machine limits and run fitting (``limits``), the generator's
self-check (``selfcheck``), progress ticks (``progress``) and interrupts (``interrupts``).

``from loadgen.run import run`` is the library entry point; it is loaded on first use so
that importing a submodule (a spawned shard process does) does not import them all.
"""

from __future__ import annotations

from typing import Any

__all__ = ["run"]


def __getattr__(name: str) -> Any:
    if name == "run":
        from loadgen.run.api import run

        return run
    raise AttributeError(f"module 'loadgen.run' has no attribute {name!r}")
