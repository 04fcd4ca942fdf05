"""The view of a run while it runs: a live rich panel on a terminal, plain lines elsewhere.

It never touches the engine's thread: a background thread wakes about twice a second,
reads a ``Snapshot`` (plain numbers the recorder and the client keep anyway) and
draws it. The hot loop pays nothing but the GIL switches of that thread (~1 ms a second).

* On a terminal: scenario and phase, a progress bar with elapsed and remaining time, the
  request rate, p50/p99 of the last whole second, errors by kind, open connections and the
  generator's CPU, refreshed twice a second.
* Otherwise (CI logs, pipes): one plain line per ``line_interval_s`` with the same numbers.
* ``--quiet``: nothing while running.

The numbers come from ``loadgen.run.progress`` (a ``Snapshot`` read from the run's
``TickBoard``); this module only draws them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from types import TracebackType

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, Progress, TextColumn
from rich.table import Table

from loadgen.run.progress import Snapshot

#: Refreshes per second of the live panel (the issue asks for about two).
REFRESH_PER_S = 2.0


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
