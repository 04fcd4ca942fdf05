"""Fixtures shared by the engine tests: one backend per available engine, and a reaper."""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable, Iterator

import pytest

from loadgen.engine import Backend, Completion, available_backends, select_backend

# LOADGEN_TEST_BACKENDS=epoll,io_uring narrows the run while working on one backend.
_ONLY = [n for n in os.environ.get("LOADGEN_TEST_BACKENDS", "").split(",") if n]
_STATUS = available_backends(_ONLY or None)
AVAILABLE = [name for name, reason in _STATUS.items() if reason is None]


@pytest.fixture(params=AVAILABLE)
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    engine = select_backend(request.param)
    try:
        yield engine
    finally:
        engine.shutdown()


class Reaper:
    """Collects completions by token so tests can wait for the ones they care about."""

    def __init__(self, engine: Backend) -> None:
        self.engine = engine
        self.done: dict[int, Completion] = {}
        self._tokens = itertools.count(1)

    def token(self) -> int:
        return next(self._tokens)

    def poll(self, timeout_s: float) -> None:
        for completion in self.engine.wait(timeout_s):
            assert completion[0] not in self.done, f"token {completion[0]} completed twice"
            self.done[completion[0]] = completion

    def until(self, predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"timed out; completions so far: {self.done}")
            self.poll(min(remaining, 0.1))

    def take(self, token: int, timeout_s: float = 10.0) -> Completion:
        self.until(lambda: token in self.done, timeout_s)
        return self.done.pop(token)


@pytest.fixture
def reaper(backend: Backend) -> Reaper:
    return Reaper(backend)
