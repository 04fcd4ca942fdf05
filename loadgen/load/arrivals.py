"""The open model's dispatch: requests fall due on a schedule whatever the target does, and
go out on free connections.

Before each ``wait()`` the request client calls ``dispatch``: the arrivals due by now move
from the schedule (``loadgen.config.schedule.ArrivalSchedule``) into the backlog, and the
oldest of the backlog go out on the connections that are free. A request that has to wait
for a connection is counted once in ``waited_for_connection``; its latency is still
measured from its intended send time, so a stalled target delays (and shows in) every
request due during the stall.

Bounded, whatever the rate asks: each dispatch takes at most ``TAKE_PER_DISPATCH`` arrivals
from the schedule, so one call costs a few milliseconds at most and the loop gets back to
its completions, ticks and stop flag (a Ctrl-C is honoured within a loop iteration even at
rates no generator can follow); and the backlog holds at most ``MAX_BACKLOG`` requests:
arrivals due while it is full are dropped from the schedule in one step
(``ArrivalSchedule.skip_until``), never materialised, and counted as ``unsent`` with the
requests still in the backlog at the end.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

from loadgen.config.schedule import NEVER_NS, ArrivalSchedule

#: Arrivals taken from the schedule per dispatch: ~1 us each, so a dispatch costs at most
#: a few milliseconds before the loop handles completions again.
TAKE_PER_DISPATCH = 4096
#: Requests that may wait for a free connection. Each costs ~40 bytes (a deque slot and an
#: int), so the backlog stays under ~10 MB per process; a backlog this long is already the
#: result (at the ~50k requests/s one process sends, it is 5 s of waiting, and longer at
#: lower rates), so what falls due beyond it is counted as unsent instead of kept.
MAX_BACKLOG = 1 << 18

C = TypeVar("C")


class OpenDispatch(Generic[C]):
    """The schedule, the backlog of due requests and the free connections of one client."""

    def __init__(self, schedule: ArrivalSchedule, start_ns: int) -> None:
        self._schedule = schedule
        self._start_ns = start_ns
        #: Intended send offsets (ns from the start) of due requests, oldest first.
        self.backlog: deque[int] = deque()
        #: Connections with nothing in flight, waiting for a request to fall due.
        self.free: list[C] = []
        #: Requests that were due while every connection was busy.
        self.waited_for_connection = 0
        self._counted = 0  # how many of the backlog were already counted as waiting
        #: Due while the backlog was full, or not yet taken when the run ended.
        self.dropped = 0
        self._taken: list[int] = []

    def rebase(self, start_ns: int) -> None:
        """The run's start moved (``SlotPool.rebase``): offsets now count from ``start_ns``."""
        self._start_ns = start_ns

    @property
    def next_due_ns(self) -> int:
        """When the next request falls due (absolute ns; far in the future when none is)."""
        offset = self._schedule.next_ns
        return offset if offset >= NEVER_NS else self._start_ns + offset

    @property
    def waiting(self) -> bool:
        """Due requests wait for a connection."""
        return bool(self.backlog)

    def dispatch(self, now_ns: int, send: Callable[[C, int], bool]) -> None:
        """Take what is due by ``now_ns`` (bounded), then send the oldest due requests on
        free connections: ``send(conn, intended_ns)`` is False when ``conn`` cannot take
        one any more (it failed or was retired since it was freed)."""
        schedule = self._schedule
        backlog = self.backlog
        due_offset = now_ns - self._start_ns
        if schedule.next_ns <= due_offset:
            room = MAX_BACKLOG - len(backlog)
            if room > 0:
                taken = self._taken
                schedule.take(due_offset, min(room, TAKE_PER_DISPATCH), taken)
                backlog.extend(taken)
                taken.clear()
            else:
                self.dropped += schedule.skip_until(due_offset)
        free = self.free
        sent = 0
        start = self._start_ns
        while backlog and free:
            if send(free.pop(), start + backlog[0]):
                backlog.popleft()
                sent += 1
        # Count each request once when it first has to wait (the oldest leave first).
        self._counted = max(0, self._counted - sent)
        if len(backlog) > self._counted:
            self.waited_for_connection += len(backlog) - self._counted
            self._counted = len(backlog)

    def finish(self, end_ns: int) -> None:
        """The run ended at ``end_ns``: what fell due by then and was never taken from the
        schedule counts as unsent too."""
        self.dropped += self._schedule.skip_until(end_ns - self._start_ns)

    @property
    def unsent(self) -> int:
        """Requests that were due but never sent before the run ended."""
        return len(self.backlog) + self.dropped
