"""Run a built-in target in its own process for the length of a run.

The target gets its own process (and so its own core and its own descriptor budget): a
server sharing the client's loop would steal the client's time and halve how many
connections one process can hold. It is started as ``python -m loadgen serve NAME --port 0``
(with ``--processes N``: N processes on one port, ``targets.scaled``) and the run waits for
its one ``listening on HOST:PORT`` line, printed once every process listens.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from loadgen.config.scenario import parse_address

#: A cold interpreter that imports numpy and rich takes ~1 s; Wine takes several.
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 5.0


class TargetError(RuntimeError):
    """The built-in target did not start; the message carries what it printed."""


@dataclass(frozen=True)
class RunningTarget:
    """A built-in target serving in its own process."""

    address: tuple[str, int]
    process: subprocess.Popen[str]

    def death(self) -> str | None:
        """How the target's process ended (``killed by SIGKILL``, ``exited with code 1``)
        when it has, else None: a run must not call a target that died "completed"."""
        code = self.process.poll()
        if code is None:
            return None
        if code < 0:
            try:
                return f"killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"killed by signal {-code}"
        return f"exited with code {code}"


@contextmanager
def builtin_target(
    name: str, backend: str = "auto", host: str = "127.0.0.1", processes: int = 1
) -> Iterator[tuple[str, int]]:
    """Start ``loadgen serve NAME`` and yield its (host, port); stop it on exit."""
    with running_builtin_target(name, backend, host, processes) as target:
        yield target.address


@contextmanager
def running_builtin_target(
    name: str, backend: str = "auto", host: str = "127.0.0.1", processes: int = 1
) -> Iterator[RunningTarget]:
    """``builtin_target``, yielding the running target (its address and its process)."""
    command = [sys.executable, "-m", "loadgen", "serve", name, "--host", host, "--port", "0"]
    command += ["--backend", backend, "--stop-on-stdin-eof"]
    if processes > 1:
        command += ["--processes", str(processes)]
    process = subprocess.Popen(
        command,
        stdin=subprocess.PIPE,  # the server stops when this pipe closes (works on Windows too)
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield RunningTarget(_wait_until_listening(process), process)
    finally:
        _stop(process)


def _wait_until_listening(process: subprocess.Popen[str]) -> tuple[str, int]:
    assert process.stdout is not None and process.stderr is not None
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(process.stdout.readline()))  # type: ignore[union-attr]
    reader.daemon = True
    reader.start()
    reader.join(START_TIMEOUT_S)
    line = lines[0].strip() if lines else ""
    if not line.startswith("listening on "):
        process.kill()
        _, err = process.communicate()
        raise TargetError(
            f"built-in target did not start (exit code {process.returncode}): "
            f"{line or err.strip() or 'no output'}"
        )
    return parse_address(line.removeprefix("listening on "))


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        try:
            assert process.stdin is not None
            process.stdin.close()
            process.wait(STOP_TIMEOUT_S)
        except (OSError, subprocess.TimeoutExpired):
            process.kill()
            process.wait()
    for stream in (process.stdout, process.stderr):
        if stream is not None:
            stream.close()
