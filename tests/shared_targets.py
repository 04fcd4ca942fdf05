"""Built-in targets shared by the tests of one session.

A run of ``target: builtin:echo`` starts ``loadgen serve echo`` in a fresh interpreter and
stops it at the end: about a second of start-up (numpy, the engine) before any traffic, on
every run. Tests that are about the client, not about the built-in target's start and
stop, run against one shared target instead (``target: 127.0.0.1:PORT``), started on first
use and stopped when the session ends. The targets keep no state between connections, so a
test sees nothing of an earlier one; a test that stalls, kills or counts the target's own
connections starts its own.

Tests of the ``builtin:`` path itself (the target's start, its processes, its notes in a
result) keep ``builtin:``.
"""

from __future__ import annotations

from contextlib import ExitStack

from loadgen.targets.process import builtin_target


class SharedTargets:
    """Built-in targets by (name, backend), each started once on first use."""

    def __init__(self, stack: ExitStack) -> None:
        self._stack = stack
        self._started: dict[tuple[str, str], tuple[str, int]] = {}

    def address(self, name: str = "echo", backend: str = "auto") -> tuple[str, int]:
        key = (name, backend)
        if key not in self._started:
            self._started[key] = self._stack.enter_context(builtin_target(name, backend=backend))
        return self._started[key]

    def target(self, name: str = "echo", backend: str = "auto") -> str:
        """``HOST:PORT`` for a scenario's ``target:``."""
        host, port = self.address(name, backend)
        return f"{host}:{port}"
