"""The adversarial suite's matrix and checks: every Linux backend (io_uring, epoll) in every
receive mode it has, a run bounded in time, and its result written and read back.

IOCP runs under Wine (``tests/test_wine.py`` runs ``tests/adversarial`` there too); a
backend or mode this machine lacks is skipped with the reason its probe gave.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from loadgen.config.scenario import Scenario
from loadgen.engine import BackendUnavailable, available_backends, select_backend
from loadgen.report.loading import load_run
from loadgen.result.model import RunResult
from loadgen.result.stop import StopKind
from loadgen.run.api import LiveFactory, run

#: Every backend and receive mode pair loadgen has (IOCP: buffered and zero-byte; the
#: buffer ring is io_uring's alone).
PAIRS = [
    ("io_uring", "buffered"),
    ("io_uring", "zero-byte"),
    ("io_uring", "buffer-ring"),
    ("epoll", "buffered"),
    ("epoll", "zero-byte"),
    ("iocp", "buffered"),
    ("iocp", "zero-byte"),
]
#: A run of at most a second (plus its start and end) that takes longer than this hung:
#: generous for a busy 2-core machine, short enough not to stall the suite for long.
RUN_BOUND_S = 30.0
# LOADGEN_TEST_BACKENDS=epoll,io_uring narrows the matrix (as in tests/engine).
_ONLY = [n for n in os.environ.get("LOADGEN_TEST_BACKENDS", "").split(",") if n]


def _skip_reason(backend: str, mode: str) -> str | None:
    """Why this machine cannot run ``backend`` in ``mode`` (None: it can)."""
    if _ONLY and backend not in _ONLY:
        return f"LOADGEN_TEST_BACKENDS={','.join(_ONLY)}"
    reason = available_backends([backend])[backend]
    if reason is not None:
        return reason
    if mode == "buffer-ring":
        try:
            engine = select_backend(backend)
        except BackendUnavailable as exc:
            return str(exc)
        usable = engine.supports_buffer_ring
        engine.shutdown()
        if not usable:
            return f"{backend} here has no provided-buffer rings (Linux 6.1+)"
    return None


#: Each pair and why this machine cannot run it (None: it can), probed once.
SKIP_REASONS = {(backend, mode): _skip_reason(backend, mode) for backend, mode in PAIRS}


def matrix(fast: set[str] | None = None, platforms: str = "all") -> list[object]:
    """``@pytest.mark.parametrize(("backend", "mode"), matrix())``: every pair, the ones this
    machine lacks skipped with the reason. ``fast``: the ids (``epoll-zero-byte``) a heavy
    test runs in the quick suite (``-m 'not slow'``); the others are marked ``slow`` (CI runs
    them with ``-m slow``), keeping the quick suite within ~30 s. ``platforms="linux"``
    leaves IOCP out (for tests that need Linux around the run)."""
    params: list[object] = []
    for (backend, mode), reason in SKIP_REASONS.items():
        if platforms == "linux" and backend == "iocp":
            continue
        name = f"{backend}-{mode}"
        marks = [pytest.mark.skip(reason=reason)] if reason else []
        if fast is not None and name not in fast:
            marks.append(pytest.mark.slow)
        params.append(pytest.param(backend, mode, marks=marks, id=name))
    return params


def run_bounded(scenario: Scenario, backend: str, live: LiveFactory | None = None) -> RunResult:
    """``loadgen.run.api.run`` in one process, from a worker thread (as library users may),
    failing the test if it has not returned within ``RUN_BOUND_S``: a hang is a bug too."""
    outcome: list[RunResult | BaseException] = []

    def target() -> None:
        try:
            outcome.append(run(scenario, backend=backend, processes=1, live=live))
        except BaseException as exc:  # handed to the test's thread, which raises it
            outcome.append(exc)

    worker = threading.Thread(target=target, name="adversarial-run", daemon=True)
    worker.start()
    worker.join(RUN_BOUND_S)
    assert not worker.is_alive(), f"the run did not end within {RUN_BOUND_S} s"
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return outcome[0]


def check_result(result: RunResult, folder: Path) -> RunResult:
    """The run ended on its own (not failed, no traceback), and its result survives the trip
    through a file: written as ``loadgen run --json`` writes it, read back by the reader of
    ``report`` and ``compare`` (which checks every field's type) with the same counts.
    Returns the result as read back."""
    assert result.stop.kind is StopKind.COMPLETED, result.stop
    assert result.stop.traceback is None, result.stop.traceback
    assert not result.partial
    path = result.write(folder / "result.json")
    loaded = load_run(path).result
    assert loaded.summary.errors == result.summary.errors
    assert loaded.summary.requests == result.summary.requests
    assert loaded.environment.backend == result.environment.backend
    assert loaded.environment.recv_mode == result.environment.recv_mode
    assert RunResult.read(path).to_dict() == result.to_dict()
    return loaded
