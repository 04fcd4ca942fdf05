"""When a connection with nothing in flight may send again: think time, idle phases, and
the hold of connections opened before the start.

* Think time (closed model): after a response, a connection waits ``think_time`` before its
  next request; the waits sit in a timer heap that the loop fires before each ``wait()``
  (and ``wait()`` never sleeps past the next one).
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

C = TypeVar("C")


class Pacing(Generic[C]):
    """Think-time timers and the pause of idle phases, for one client."""

    def __init__(self, think_time_s: float, idle_windows: Sequence[tuple[float, float]]) -> None:
        self.think_ns = int(think_time_s * 1e9)
        self._timers: list[tuple[int, int, int]] = []  # (due_ns, conn index, token_base)
        self._idle_windows = tuple(idle_windows)
        #: Nothing is sent while paused (an idle phase, or held before the start).
        self.paused = self.idle_at(0.0)
        self._parked: list[C] = []

    # --- think time -------------------------------------------------------------------
    def think(self, index: int, token_base: int, now_ns: int) -> None:
        """Connection ``index`` (in its socket ``token_base``) sends again after thinking."""
        heapq.heappush(self._timers, (now_ns + self.think_ns, index, token_base))

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
