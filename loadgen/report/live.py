"""The view of a run while it runs: a live rich panel on a terminal, plain lines elsewhere.

It never touches the engine's thread: a background thread wakes about twice a second,
reads a ``Progress`` snapshot (plain numbers the recorder and the client keep anyway) and
draws it. The hot loop pays nothing but the GIL switches of that thread (~1 ms a second).

* On a terminal: scenario and phase, a progress bar with elapsed and remaining time, the
  request rate, p50/p99 of the last whole second, errors by kind, open connections and the
  generator's CPU, refreshed twice a second.
* Otherwise (CI logs, pipes): one plain line per ``line_interval_s`` with the same numbers.
* ``--quiet``: nothing while running.

With several shards (processes), the numbers come as ``Tick``s: each shard sends one about
twice a second with its running totals and the intervals it closed since its last tick
(keyed by interval number since the shared start). A ``TickBoard`` adds them up for the
view: totals are summed over shards, and "the last whole second" is the newest interval
every running shard has closed, its histograms added before p50/p99 are read. A single
in-process run feeds the same board, so there is one way numbers reach the view.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, Progress, TextColumn
from rich.table import Table

from loadgen.result import Interval
from loadgen.stats.histogram import HdrHistogram

#: Refreshes per second of the live panel (the issue asks for about two).
REFRESH_PER_S = 2.0


@dataclass(frozen=True)
class Snapshot:
    """What the view shows, read from the run at one moment."""

    elapsed_s: float
    duration_s: float
    phase: str
    requests: int
    last_interval_rps: float | None
    last_p50_us: float | None
    last_p99_us: float | None
    errors: dict[str, int] = field(default_factory=dict)
    open_connections: int = 0
    cpu_percent: float | None = None


def _us(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value / 1000:.2f}ms" if value >= 1000 else f"{value:.0f}µs"


def plain_line(snapshot: Snapshot) -> str:
    """The non-terminal form: one line, greppable."""
    errors = ", ".join(f"{k} {v}" for k, v in snapshot.errors.items()) or "none"
    rate = "-" if snapshot.last_interval_rps is None else f"{snapshot.last_interval_rps:,.0f}/s"
    cpu = "-" if snapshot.cpu_percent is None else f"{snapshot.cpu_percent:.0f}%"
    return (
        f"[{snapshot.elapsed_s:6.1f}s/{snapshot.duration_s:.0f}s] {snapshot.phase}: "
        f"{snapshot.requests:,} requests, {rate}, p50 {_us(snapshot.last_p50_us)}, "
        f"p99 {_us(snapshot.last_p99_us)}, errors {errors}, "
        f"{snapshot.open_connections:,} connections, cpu {cpu}"
    )


class LiveView:
    """Shows ``read()`` snapshots while the ``with`` block runs."""

    def __init__(
        self,
        title: str,
        read: Callable[[], Snapshot],
        console: Console,
        *,
        line_interval_s: float = 5.0,
    ) -> None:
        self._title = title
        self._read = read
        self._console = console
        self._line_interval_s = line_interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[clock]}"),
            console=console,
        )
        self._task = self._progress.add_task(title, total=1.0, clock="")

    def __enter__(self) -> LiveView:
        target = self._live if self._console.is_terminal else self._lines
        self._thread = threading.Thread(target=target, name="loadgen-live", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    # --- terminal ------------------------------------------------------------------
    def render(self, snapshot: Snapshot) -> Group:
        self._progress.update(
            self._task,
            total=max(snapshot.duration_s, 1e-9),
            completed=min(snapshot.elapsed_s, snapshot.duration_s),
            description=f"{self._title} · {snapshot.phase}",
            clock=(
                f"{snapshot.elapsed_s:.0f}s of {snapshot.duration_s:.0f}s, "
                f"{max(0.0, snapshot.duration_s - snapshot.elapsed_s):.0f}s left"
            ),
        )
        table = Table.grid(padding=(0, 2))
        for _ in range(6):
            table.add_column()
        rate = "-" if snapshot.last_interval_rps is None else f"{snapshot.last_interval_rps:,.0f}"
        cpu = "-" if snapshot.cpu_percent is None else f"{snapshot.cpu_percent:.0f}%"
        table.add_row(
            "[dim]req/s[/]",
            rate,
            "[dim]p50[/]",
            _us(snapshot.last_p50_us),
            "[dim]p99[/]",
            _us(snapshot.last_p99_us),
        )
        errors = ", ".join(f"{k} {v:,}" for k, v in snapshot.errors.items())
        table.add_row(
            "[dim]requests[/]",
            f"{snapshot.requests:,}",
            "[dim]conns[/]",
            f"{snapshot.open_connections:,}",
            "[dim]cpu[/]",
            cpu,
        )
        table.add_row("[dim]errors[/]", f"[red]{errors}[/]" if errors else "none", "", "", "", "")
        return Group(self._progress.get_renderable(), table)

    def _live(self) -> None:
        with Live(
            self.render(self._read()),
            console=self._console,
            refresh_per_second=REFRESH_PER_S,
            transient=False,
        ) as live:
            while not self._stop.wait(1 / REFRESH_PER_S):
                live.update(self.render(self._read()))
            live.update(self.render(self._read()))

    # --- logs ----------------------------------------------------------------------
    def _lines(self) -> None:
        next_line = time.monotonic() + self._line_interval_s
        while not self._stop.wait(max(0.0, next_line - time.monotonic())):
            self._console.print(plain_line(self._read()), highlight=False, soft_wrap=True)
            next_line += self._line_interval_s


# --- shards' ticks -------------------------------------------------------------------------
@dataclass(frozen=True)
class Tick:
    """One shard's numbers at one moment (picklable: it crosses process boundaries)."""

    shard: int
    elapsed_s: float  # since the shared start
    requests: int  # running total (closed intervals, the open one, the hot loop's buffer)
    errors: dict[str, int]  # running totals by kind
    open_connections: int
    cpu_s: float  # the shard process's CPU time so far
    intervals: tuple[Interval, ...] = ()  # closed since this shard's previous tick


class TickBoard:
    """Adds up the shards' ticks into the view's ``Snapshot`` (thread-safe)."""

    def __init__(
        self, shards: int, duration_s: float, phase: Callable[[float], str] = lambda _: ""
    ) -> None:
        self._shards = shards
        self._duration_s = duration_s
        self._phase = phase
        self._lock = threading.Lock()
        self._latest: dict[int, Tick] = {}
        self._received_at = 0.0  # monotonic time of the newest tick
        self._cpu_percent: dict[int, float] = {}
        self._cpu_before: dict[int, tuple[float, float]] = {}  # shard -> (cpu_s, elapsed_s)
        #: Every interval each shard has reported, by shard (a dead shard's partial result).
        self.intervals: dict[int, list[Interval]] = {n: [] for n in range(shards)}
        self._retired: set[int] = set()
        self._shown_index = -1
        self._last: tuple[float, int | None, int | None] | None = None

    def add(self, tick: Tick) -> None:
        with self._lock:
            before = self._cpu_before.get(tick.shard)
            if before is not None and tick.elapsed_s > before[1]:
                self._cpu_percent[tick.shard] = (
                    100 * (tick.cpu_s - before[0]) / (tick.elapsed_s - before[1])
                )
            self._cpu_before[tick.shard] = (tick.cpu_s, tick.elapsed_s)
            self._latest[tick.shard] = tick
            self._received_at = time.monotonic()
            self.intervals[tick.shard].extend(tick.intervals)
            self._close_complete()

    def retire(self, shard: int) -> None:
        """A shard that ended (or died): it no longer holds back the last whole second."""
        with self._lock:
            self._retired.add(shard)
            self._close_complete()

    def _close_complete(self) -> None:
        """Take the newest interval every running shard has reported as the view's."""
        reported = [
            self.intervals[n][-1].index if self.intervals[n] else -1
            for n in range(self._shards)
            if n not in self._retired
        ]
        everyone = (
            min(reported)
            if reported
            else max((i[-1].index for i in self.intervals.values() if i), default=-1)
        )
        if everyone <= self._shown_index:
            return
        group = [i for ivs in self.intervals.values() for i in ivs if i.index == everyone]
        histogram = HdrHistogram()
        for interval in group:
            histogram.merge(HdrHistogram.from_dict(interval.latency))
        length = max(interval.duration_s for interval in group)
        p50, p99 = histogram.percentiles([50, 99]) if histogram.total_count else (None, None)
        self._last = (histogram.total_count / length if length > 0 else 0.0, p50, p99)
        self._shown_index = everyone

    def snapshot(self) -> Snapshot:
        with self._lock:
            ticks = list(self._latest.values())
            errors: dict[str, int] = {}
            for tick in ticks:
                for kind, count in tick.errors.items():
                    errors[kind] = errors.get(kind, 0) + count
            elapsed = max((t.elapsed_s for t in ticks), default=0.0)
            if ticks and len(self._retired) < self._shards:  # running: move on between ticks
                elapsed += time.monotonic() - self._received_at
            elapsed = min(elapsed, self._duration_s)
            last = self._last
            return Snapshot(
                elapsed_s=elapsed,
                duration_s=self._duration_s,
                phase=self._phase(elapsed),
                requests=sum(t.requests for t in ticks),
                last_interval_rps=None if last is None else last[0],
                last_p50_us=None if last is None or last[1] is None else last[1] / 1000,
                last_p99_us=None if last is None or last[2] is None else last[2] / 1000,
                errors=dict(sorted(errors.items())),
                open_connections=sum(t.open_connections for t in ticks),
                cpu_percent=sum(self._cpu_percent.values()) if self._cpu_percent else None,
            )
