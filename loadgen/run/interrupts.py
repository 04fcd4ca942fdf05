"""Ctrl-C (and on Windows Ctrl-Break) during a run: recorded as the run's stop reason, and
the run asked to stop.

Python delivers signals to the main thread only, so outside it (a run driven from another
thread, as tests and library users may) nothing is installed and the reasons stay empty.
The handler records the stop ``interrupted (SIGINT)`` (``interrupted (SIGBREAK)`` for
Ctrl-Break) once and calls ``on_signal``, which must only set flags or events (a signal
handler may interrupt any call, a Dask or queue call among them); the previous handlers are
restored on exit.

Windows delivers Ctrl-Break as SIGBREAK, whose default ends the process at once: the partial
result would be lost, so it is handled exactly like Ctrl-C. (CTRL_BREAK_EVENT is also what a
parent sends a process group it started, where Ctrl-C cannot be sent.)
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

from loadgen.result.stop import StopKind, StopReason


def interrupt_signals() -> tuple[signal.Signals, ...]:
    """The signals that mean "stop the run": SIGINT, and SIGBREAK where it exists (Windows)."""
    extra = getattr(signal, "SIGBREAK", None)
    return (signal.SIGINT,) if extra is None else (signal.SIGINT, signal.Signals(extra))


@contextmanager
def sigint_recorded(on_signal: Callable[[], None] | None = None) -> Iterator[list[StopReason]]:
    """While active, SIGINT (or SIGBREAK) appends its reason (first time only) and calls
    ``on_signal``; yields the list of reasons (empty: not interrupted)."""
    reasons: list[StopReason] = []
    if threading.current_thread() is not threading.main_thread():
        yield reasons
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        if not reasons:
            reasons.append(StopReason(StopKind.INTERRUPTED, signal.Signals(signum).name))
        if on_signal is not None:
            on_signal()

    previous = {signum: signal.signal(signum, handler) for signum in interrupt_signals()}
    try:
        yield reasons
    finally:
        for signum, before in previous.items():
            signal.signal(signum, before)


@contextmanager
def interrupts_ignored() -> Iterator[None]:
    """SIGINT (and SIGBREAK) ignored while active, in the main thread; the handlers restored
    after. Children started meanwhile inherit the ignoring through exec."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, signal.SIG_IGN) for signum in interrupt_signals()}
    try:
        yield
    finally:
        for signum, before in previous.items():
            signal.signal(signum, before)
