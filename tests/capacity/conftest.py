"""The capacity tests' target: ``loadgen serve http --capacity RATE`` in its own process,
and a scenario file pointing at it."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

#: A cold interpreter importing numpy takes ~1 s; a loaded machine, several.
START_TIMEOUT_S = 60.0
PRESSURE_FILE = "/proc/pressure/cpu"


def cpu_pressure() -> float | None:
    """The share of the last minute in which some task here waited for a CPU (Linux PSI
    ``some avg60``, percent); None where the kernel does not say."""
    try:
        with open(PRESSURE_FILE, encoding="ascii") as pressure:
            first = pressure.readline()
    except OSError:
        return None
    for field in first.split():
        if field.startswith("avg60="):
            return float(field.removeprefix("avg60="))
    return None


@contextmanager
def capacity_server(*arguments: str) -> Iterator[int]:
    """``loadgen serve http ARGUMENTS`` on a free port; yields the port."""
    process = subprocess.Popen(
        [sys.executable, "-m", "loadgen", "serve", "http", "--port", "0", *arguments],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    assert process.stdout is not None
    reader = threading.Thread(target=lambda: lines.append(process.stdout.readline()))  # type: ignore[union-attr]
    reader.daemon = True
    reader.start()
    reader.join(START_TIMEOUT_S)
    try:
        line = lines[0] if lines else ""
        assert line.startswith("listening on "), (line, process.poll())
        yield int(line.rsplit(":", 1)[1])
    finally:
        process.kill()
        process.communicate()


def scenario_file(folder: Path, port: int, extra: str = "", name: str = "capacity-test") -> Path:
    """An HTTP scenario against 127.0.0.1:PORT; its load is what each step sets."""
    path = folder / f"{name}.yaml"
    path.write_text(
        f"name: {name}\ntarget: 127.0.0.1:{port}\nprotocol: http\nconnections: 1\n"
        f"duration: 1s\n{extra}",
        encoding="utf-8",
    )
    return path
