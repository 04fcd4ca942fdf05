"""``run(..., fit=True)``: the library applies the run policy of ``loadgen run`` (process
counts, the descriptor, port and memory checks), and tells the caller what it changed.

The descriptor limit is real: the library runs in a child process whose RLIMIT_NOFILE
hard limit is lowered (which any process may do), against an echo server in this one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from loadgen.run.limits import RESERVED_FDS
from tests.adversarial.servers import bad_target

ROOT = Path(__file__).resolve().parents[2]
#: A hard limit that leaves room for 36 sockets a process (less RESERVED_FDS).
HARD_NOFILE = RESERVED_FDS + 36

LIBRARY_RUNS = """
import json, resource, sys
resource.setrlimit(resource.RLIMIT_NOFILE, ({hard}, {hard}))
from loadgen.config.scenario import parse_scenario
from loadgen.run.api import run
from loadgen.run.limits import ConnectionLimitError

def scenario(connections):
    return parse_scenario(
        f"name: fit\\ntarget: {address}\\nconnections: {{connections}}\\nduration: 500ms\\n"
    )

report = {{}}
try:
    run(scenario(40), processes=1, fit=True)
except ConnectionLimitError as exc:
    report["refused"] = str(exc)
unfitted = run(scenario(40), processes=1)  # no fit: no check, and 40 sockets do fit
report["unfitted"] = [unfitted.stop_reason, unfitted.summary.connections]
notices = []
fitted = run(scenario({many}), fit=True, notice=notices.append)
report["notices"] = notices
report["fitted"] = [
    fitted.stop_reason, fitted.environment.processes, fitted.summary.connections,
    fitted.summary.errors,
]
print(json.dumps(report))
"""


@pytest.mark.skipif(sys.platform == "win32", reason="Windows has no descriptor limit for sockets")
def test_library_run_fits_to_the_descriptor_limit() -> None:
    cores = os.cpu_count() or 1
    many = 36 * cores + 1  # one more than the default processes (one a core) can hold
    with bad_target("echo") as (host, port):
        script = LIBRARY_RUNS.format(hard=HARD_NOFILE, address=f"{host}:{port}", many=many)
        child = subprocess.run(
            [sys.executable, "-c", script],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            timeout=240,
        )
    assert child.returncode == 0, child.stderr
    report = json.loads(child.stdout.strip().splitlines()[-1])
    assert "RLIMIT_NOFILE" in report["refused"] and "--processes 2" in report["refused"]
    assert report["unfitted"] == ["completed", 40]
    wanted = cores + 1
    assert report["notices"] == [
        f"{many:,} connections need {wanted} client processes: each process may hold 36 "
        f"sockets (RLIMIT_NOFILE hard limit {HARD_NOFILE:,}, less {RESERVED_FDS} kept for "
        f"other descriptors): running {wanted} client processes"
    ]
    assert report["fitted"] == ["completed", wanted, many, {}]
