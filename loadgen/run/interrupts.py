"""Ctrl-C and the stop signals: recorded as the run's stop reason, and the run asked to stop.

SIGINT is Ctrl-C; SIGTERM is what ``timeout``, ``docker stop``, Kubernetes and CI
cancellation send; SIGHUP is a closed terminal or SSH session. All three end a run early
the same way: the partial result is kept, with ``interrupted (SIGTERM)`` (etc.) as its stop
reason. Windows has no SIGHUP and delivers no SIGTERM to a console process (its Ctrl-C
arrives as SIGINT), so only the signals this platform defines are handled; it delivers
Ctrl-Break as SIGBREAK, whose default ends the process at once (the partial result would be
lost), so there SIGBREAK is handled exactly like Ctrl-C, exit code included. (CTRL_BREAK_EVENT
is also what a parent sends a process group it started, where Ctrl-C cannot be sent.)

Python delivers signals to the main thread only, so outside it (a run driven from another
thread, as tests and library users may) nothing is installed and the reasons stay empty.
The handler records the stop ``interrupted (SIGNAME)`` once (the first signal wins) and
calls ``on_signal``, which must only set flags or events (a signal handler may interrupt any
call, a Dask or queue call among them); the previous handlers are restored on exit.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

from loadgen.result.stop import StopKind, StopReason

#: The signals that stop a run (those this platform has; SIGBREAK is Windows' Ctrl-Break).
STOP_SIGNAL_NAMES = ("SIGINT", "SIGTERM", "SIGHUP", "SIGBREAK")
STOP_SIGNALS: tuple[signal.Signals, ...] = tuple(
    getattr(signal, name) for name in STOP_SIGNAL_NAMES if hasattr(signal, name)
)


@contextmanager
def interrupts_recorded(
    on_signal: Callable[[], None] | None = None,
) -> Iterator[list[StopReason]]:
    """While active, a stop signal appends its reason (first time only) and calls
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

    previous = {number: signal.signal(number, handler) for number in STOP_SIGNALS}
    try:
        yield reasons
    finally:
        for number, action in previous.items():
            signal.signal(number, action)


@contextmanager
def stop_signals_ignored() -> Iterator[None]:
    """While active, the stop signals are ignored; processes started meanwhile inherit
    that (through exec too), so a signal during their start-up does not kill them before
    they install their own handlers (``interrupts_recorded``)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {number: signal.signal(number, signal.SIG_IGN) for number in STOP_SIGNALS}
    try:
        yield
    finally:
        for number, action in previous.items():
            signal.signal(number, action)


def interrupted_exit_code(stop: StopReason) -> int | None:
    """The shell's exit code for a run stopped by a signal (128 + its number: 130 for
    SIGINT and Windows' Ctrl-Break, 143 for SIGTERM, 129 for SIGHUP); None when the run was
    not interrupted."""
    if stop.kind is not StopKind.INTERRUPTED:
        return None
    if stop.detail == "SIGBREAK":  # Windows' Ctrl-Break: the user stopped it, as with Ctrl-C
        return 128 + int(signal.SIGINT)
    try:
        return 128 + int(signal.Signals[stop.detail])
    except KeyError:  # a signal this platform does not have (a result from elsewhere)
        return 128 + int(signal.SIGINT)
