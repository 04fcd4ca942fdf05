"""Session fixtures shared by every test directory (see ``tests/shared_targets.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack

import pytest

from tests.shared_targets import SharedTargets


@pytest.fixture(scope="session")
def shared_targets() -> Iterator[SharedTargets]:
    with ExitStack() as stack:
        yield SharedTargets(stack)


@pytest.fixture(scope="session")
def echo_target(shared_targets: SharedTargets) -> str:
    """``HOST:PORT`` of the session's built-in echo target (on the "auto" backend)."""
    return shared_targets.target("echo")
