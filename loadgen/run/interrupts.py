"""Ctrl-C during a run: recorded as the run's stop reason, and the run asked to stop.

Python delivers signals to the main thread only, so outside it (a run driven from another
thread, as tests and library users may) nothing is installed and the reasons stay empty.
The handler records the stop ``interrupted (SIGINT)`` once and calls ``on_signal``, which
must only set flags or events (a signal handler may interrupt any call, a Dask or queue call
among them); the previous handler is restored on exit.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

from loadgen.result.stop import StopKind, StopReason


@contextmanager
def sigint_recorded(on_signal: Callable[[], None] | None = None) -> Iterator[list[StopReason]]:
    """While active, SIGINT appends its reason (first time only) and calls ``on_signal``;
    yields the list of reasons (empty: not interrupted)."""
    reasons: list[StopReason] = []
    if threading.current_thread() is not threading.main_thread():
        yield reasons
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        if not reasons:
            reasons.append(StopReason(StopKind.INTERRUPTED, signal.Signals(signum).name))
        if on_signal is not None:
            on_signal()

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield reasons
    finally:
        signal.signal(signal.SIGINT, previous)
