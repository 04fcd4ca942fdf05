"""``loadgen run --json PATH`` against misbehaving targets, as a user runs it (a separate
process): the exit code says no request succeeded (1), nothing on stderr is a traceback,
and the file at PATH is a valid result with the errors counted by kind.

A few pairs of server and backend/receive mode, each different, keep this quick; the whole
matrix runs through the library in ``test_misbehaving_targets``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from loadgen.cli.common import EXIT_RUNTIME_FAILURE
from loadgen.report.loading import load_run
from loadgen.result.stop import StopKind
from tests.adversarial.conftest import RUN_BOUND_S, matrix
from tests.adversarial.servers import bad_target

#: (server behaviour, protocol, the error kind it provokes), spread over the matrix below.
#: In the order of ``matrix()``'s Linux pairs: io_uring buffered, zero-byte, buffer-ring,
#: epoll buffered, zero-byte.
TARGETS = [
    ("silent", "echo", "timeout"),
    ("resp_malformed", "redis", "protocol"),
    ("http_endless", {"http": {"max_body": "256KiB"}}, "reply_too_large"),
    ("reset", "echo", "reset"),
    ("corrupt", "echo", "verify"),
]
#: Interpreter start and imports on top of the run's 0.3 s.
COMMAND_BOUND_S = RUN_BOUND_S + 30


def _cases() -> Iterator[object]:
    """Each target with one backend/mode pair (a different one each; IOCP left out): the
    first two (one per backend) in the quick suite, the rest marked ``slow`` (~3 s each,
    mostly the interpreter's start)."""
    pairs = matrix(fast={"io_uring-buffered", "epoll-buffered"}, platforms="linux")
    for index, (behaviour, protocol, kind) in enumerate(TARGETS):
        pair = pairs[index % len(pairs)]
        backend, mode = pair.values  # type: ignore[attr-defined]
        name = f"{behaviour}-{pair.id}"  # type: ignore[attr-defined]
        marks = pair.marks  # type: ignore[attr-defined]
        yield pytest.param(behaviour, protocol, kind, backend, mode, marks=marks, id=name)


@pytest.mark.parametrize(("behaviour", "protocol", "kind", "backend", "mode"), list(_cases()))
def test_the_cli_writes_a_valid_result_and_exits_1(
    behaviour: str, protocol: object, kind: str, backend: str, mode: str, tmp_path: Path
) -> None:
    scenario = tmp_path / "scenario.json"  # JSON is YAML
    out = tmp_path / "out.json"
    with bad_target(behaviour) as (host, port):
        settings = {
            "name": f"cli-{behaviour}",
            "target": f"{host}:{port}",
            "protocol": protocol,
            "connections": 2,
            "duration": "0.3s",
            "receive": mode,
            # Short for the silent target to time out; long for the others, whose kind
            # comes without waiting (a busy machine never makes it a timeout).
            "timeouts": {"connect": "500ms", "request": "50ms" if kind == "timeout" else "5s"},
        }
        scenario.write_text(json.dumps(settings))
        command = [sys.executable, "-m", "loadgen", "run", str(scenario), "--json", str(out)]
        command += ["--backend", backend, "--quiet"]
        completed = subprocess.run(
            command, capture_output=True, text=True, timeout=COMMAND_BOUND_S, check=False
        )
    output = completed.stdout + completed.stderr
    assert "Traceback" not in output, output
    assert completed.returncode == EXIT_RUNTIME_FAILURE, output  # no request succeeded
    result = load_run(out).result
    assert result.stop.kind is StopKind.COMPLETED, result.stop
    assert result.environment.backend == backend
    assert result.environment.recv_mode == mode
    assert set(result.summary.errors) == {kind}, result.summary.errors
    assert result.summary.errors[kind] > 0
    assert result.summary.requests == 0
