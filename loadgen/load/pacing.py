"""When a connection with nothing in flight may send again: think time, idle phases, and
the hold of connections opened before the start.

* Think time (closed model): after a response, a connection waits the think time of the
  phase the response came in before its next request; the waits sit in a timer heap that
  the loop fires before each ``wait()`` (and ``wait()`` never sleeps past the next one).
  The current phase's think time and end are kept, so a response costs one comparison.
* Idle phases (closed model, ``idle_windows``): connections open and post their receive but
  send nothing until the phase ends (checked each tick); the receive-mode study measures
  the memory of idle connections this way, then of the same connections under traffic.
* Connected before the start (``SlotPool.preconnect``): the slots wait parked, as in an
  idle phase, with their receive posted, until ``run`` begins (unless the run starts with
  an idle phase, which then holds them as usual).

A parked connection is handed back (``unpark``) when sending resumes; the client checks it
is still open and idle, since it may have failed or been parked twice meanwhile.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from typing import Generic, TypeVar

from loadgen.config.schedule import NEVER_NS

C = TypeVar("C")


class Pacing(Generic[C]):
    """Think-time timers and the pause of idle phases, for one client."""

    def __init__(
        self,
        think_times: Sequence[tuple[float, float]],
        idle_windows: Sequence[tuple[float, float]],
        start_ns: int,
    ) -> None:
        #: (end_ns from the start, think_ns) per phase (``ClientConfig.think_times``).
        self._think_phases = [(int(end * 1e9), int(think * 1e9)) for end, think in think_times]
        #: Some phase thinks (else a response leads straight to the next request).
        self.thinks = bool(self._think_phases)
        self._start_ns = start_ns
        self._think_ns = 0  # the current phase's think time ...
        self._think_until_ns = 0  # ... until then (0: look the phase up)
        self._timers: list[tuple[int, int, int]] = []  # (due_ns, conn index, token_base)
        self._idle_windows = tuple(idle_windows)
        #: Nothing is sent while paused (an idle phase, or held before the start).
        self.paused = self.idle_at(0.0)
        self._parked: list[C] = []

    # --- think time -------------------------------------------------------------------
    def rebase(self, start_ns: int) -> None:
        """The run's start moved: phases count from ``start_ns``."""
        self._start_ns = start_ns
        self._think_until_ns = 0

    def think(self, index: int, token_base: int, now_ns: int) -> bool:
        """Connection ``index`` (in its socket ``token_base``) got a response at ``now_ns``:
        True when it now thinks (a timer lets it go), False when this phase has no think
        time (it may send at once)."""
        think_ns = self._think_ns if now_ns < self._think_until_ns else self._think_at(now_ns)
        if not think_ns:
            return False
        heapq.heappush(self._timers, (now_ns + think_ns, index, token_base))
        return True

    def _think_at(self, now_ns: int) -> int:
        """The think time of the phase ``now_ns`` falls in (and until when it holds)."""
        elapsed_ns = now_ns - self._start_ns
        until_ns, think_ns = NEVER_NS, self._think_phases[-1][1]  # the last phase holds on
        for end_ns, phase_think_ns in self._think_phases:
            if elapsed_ns < end_ns:
                until_ns, think_ns = self._start_ns + end_ns, phase_think_ns
                break
        self._think_until_ns = until_ns
        self._think_ns = think_ns
        return think_ns

    def thought(self, now_ns: int) -> list[tuple[int, int]]:
        """(index, token_base) of the connections whose think time is over by ``now_ns``."""
        timers = self._timers
        over = []
        while timers and timers[0][0] <= now_ns:
            _, index, token_base = heapq.heappop(timers)
            over.append((index, token_base))
        return over

    @property
    def next_timer_ns(self) -> int | None:
        """When the next think time ends, if any is running."""
        return self._timers[0][0] if self._timers else None

    # --- idle phases and the hold before the start ------------------------------------
    def idle_at(self, elapsed_s: float) -> bool:
        return any(start <= elapsed_s < end for start, end in self._idle_windows)

    def park(self, conn: C) -> None:
        """``conn`` is ready while sending is paused: it goes when the pause ends."""
        self._parked.append(conn)

    def hold(self) -> None:
        """Before the start: a connection that opens parks."""
        self.paused = True

    def release(self) -> list[C]:
        """The start: the parked connections, unless the run starts with an idle phase
        (they then go when it ends)."""
        self.paused = self.idle_at(0.0)
        return [] if self.paused else self._unpark()

    def tick(self, elapsed_s: float) -> list[C]:
        """Each tick: the parked connections when an idle phase ended, else none."""
        if not self._idle_windows:
            return []
        paused = self.idle_at(elapsed_s)
        resumed = self.paused and not paused
        self.paused = paused
        return self._unpark() if resumed else []

    def _unpark(self) -> list[C]:
        parked, self._parked = self._parked, []
        return parked
