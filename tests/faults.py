"""A bug injected into loadgen's own loop, for the tests of how a run reports loadgen's
failures (the stop kept with its traceback, exit 1).

Nothing a target or the OS does fails a run any more (a refused bind or connect is an error
counted by kind), so these tests need loadgen itself to break: the epoll backend's
``connect`` raises, inside the client's loop (``SlotPool._open``). In this process through
``patch_connect``; in spawned shard processes through a ``sitecustomize`` module on their
PYTHONPATH (``fault_in_children``), which Python runs at start-up before the shard's code.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from loadgen.engine.epoll import EpollBackend

#: The injected exception's message (HTML-escaped it reads ``&lt;boom&gt;``).
MESSAGE = "injected fault <boom>"

_SITECUSTOMIZE = f"""\
from loadgen.engine.epoll import EpollBackend

def connect(self, handle, address, token):
    raise RuntimeError({MESSAGE!r})

EpollBackend.connect = connect
"""


def failing_connect(self: EpollBackend, handle: int, address: tuple[str, int], token: int) -> None:
    raise RuntimeError(MESSAGE)


def patch_connect(monkeypatch: pytest.MonkeyPatch) -> None:
    """In this process: every epoll connect raises (run with ``--backend epoll``)."""
    monkeypatch.setattr(EpollBackend, "connect", failing_connect)


def fault_in_children(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """In processes started from now on: every epoll connect raises."""
    (folder / "sitecustomize.py").write_text(_SITECUSTOMIZE)
    paths = [str(folder), *filter(None, [os.environ.get("PYTHONPATH")])]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(paths))
