"""A target killed mid-run and restarted on the same port, on every backend and receive
mode: its open connections end (``eof`` or ``reset``), reconnects are ``refused`` while it
is down, and the run recovers once it listens again (requests succeed after the restart).

The kill and the restart wait on conditions, not on time: kill once every connection is
open (the server accepted them all), restart once the run's live numbers (a tick every
0.5 s) show a refused connect.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from loadgen.config.scenario import parse_scenario
from loadgen.run.progress import Snapshot
from tests.adversarial.conftest import check_result, matrix, run_bounded
from tests.adversarial.servers import KillableServer

CONNECTIONS = 4
#: The kinds the kill may provoke: an orderly close of an idle connection (eof), a close
#: with a request unread or in flight (reset), and the refused reconnects.
KILL_KINDS = {"eof", "reset", "refused"}
#: 2.5 s a run: two pairs run in the quick suite (the others are ``slow``), in the
#: modes where a reset was hardest to tell from an end of stream.
FAST_PAIRS = {"io_uring-buffer-ring", "epoll-zero-byte"}
#: How often the watcher reads the run's numbers.
POLL_S = 0.02


@dataclass
class Timeline:
    """What the watcher did, and the run's request count when the target came back."""

    killed: bool = False
    restarted: bool = False
    requests_at_restart: int = 0
    errors_at_restart: dict[str, int] = field(default_factory=dict)


def _killer(
    server: KillableServer, timeline: Timeline
) -> Callable[[Callable[[], Snapshot]], Iterator[None]]:
    @contextmanager
    def watch(read: Callable[[], Snapshot]) -> Iterator[None]:
        done = threading.Event()

        def loop() -> None:
            while not done.wait(POLL_S):
                snapshot = read()  # read at every step: the reader must hold up under it
                if not timeline.killed and len(server.peers) >= CONNECTIONS:
                    server.kill()
                    timeline.killed = True
                elif timeline.killed and snapshot.errors.get("refused", 0) > 0:
                    server.restart()
                    timeline.requests_at_restart = snapshot.requests
                    timeline.errors_at_restart = dict(snapshot.errors)
                    timeline.restarted = True
                    return

        thread = threading.Thread(target=loop, name="killer", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()

    return watch


#: Two seconds a run: two pairs in the quick suite, the modes a reset is hardest to tell in.
@pytest.mark.parametrize(
    ("backend", "mode"), matrix(fast={"io_uring-buffer-ring", "epoll-zero-byte"})
)
def test_a_killed_and_restarted_target_is_refused_then_recovers(
    backend: str, mode: str, tmp_path: Path
) -> None:
    timeline = Timeline()
    with KillableServer("echo") as server:
        scenario = parse_scenario(
            f"name: killed\ntarget: 127.0.0.1:{server.port}\nconnections: {CONNECTIONS}\n"
            "duration: 2.5s\n"
            f"receive: {mode}\ntimeouts: {{connect: 500ms, request: 5s}}\n"
        )
        started = time.monotonic()
        result = run_bounded(scenario, backend, live=_killer(server, timeline))
    assert timeline.killed, f"the server accepted {len(server.peers)} connections in the run"
    assert timeline.restarted, f"no connect refused after the kill: {result.summary.errors}"
    summary = check_result(result, tmp_path).summary
    assert summary.errors.get("refused", 0) > 0, summary.errors
    assert set(summary.errors) <= KILL_KINDS, summary.errors
    # The kill comes within ms, the first refusal at once (a reconnect after an error does
    # not wait) and shows in the tick 0.5 s later (1 s if that one is late), the restart
    # then; by then the reconnects back off 0.3-1 s (10 ms doubling): within the 2.5 s run.
    assert summary.requests > timeline.requests_at_restart, (
        f"no request succeeded after the restart ({time.monotonic() - started:.1f} s run)"
    )
