"""The self-check on a shared machine: what other processes can do to a light run.

A run well within the generator's means can still be judged invalid when other processes
keep its loop runnable but off the CPU for most of the run (``run.selfcheck``'s runnable
share): a true verdict about that run, not one about the generator's own load. Tests that
check a light run is valid accept that reason alone; ``tests/run/test_selfcheck.py`` holds
a comfortable run to a clean verdict (measuring it again when contention is the reason).
"""

from __future__ import annotations

from typing import Any

#: The self-check's reason for a loop kept from the CPU by other processes.
CONTENTION = "other processes on this machine kept it from the CPU"


def valid_but_for_contention(self_check: dict[str, Any]) -> bool:
    """The JSON self-check is valid, or invalid only because of other processes."""
    reasons: list[str] = self_check["reasons"]
    if self_check["valid"]:
        return reasons == []
    return bool(reasons) and all(CONTENTION in reason for reason in reasons)
