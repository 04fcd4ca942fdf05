"""Real results for the report tests: short runs of the built-in echo target, made once.

``closed``: the closed model; ``open``: the open model (corrected and raw latency, thresholds
of which one fails); ``refused``: a target that refuses every connection (errors, no latency).
Each is written to JSON once per session; tests read the files like a user would.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from loadgen.config.scenario import parse_scenario
from loadgen.result.model import RunResult
from loadgen.run.api import run

from ..adversarial.servers import free_port

SCENARIOS = {
    "closed": """
name: report-closed
target: builtin:echo
connections: 10
duration: 2.2s
""",
    "open": """
name: report-open
target: builtin:echo
load:
  model: open
  connections: 10
  phases:
    - {duration: 2.2s, rate: 500/s to 2k/s}
thresholds:
  - p99 < 10s
  - throughput > 1M/s
""",
    "refused": """
name: report-refused
target: 127.0.0.1:{port}
connections: 2
duration: 1.2s
timeouts: {{connect: 200ms, request: 200ms}}
""",
}


@dataclass(frozen=True)
class RunFile:
    path: Path
    result: RunResult


@pytest.fixture(scope="session")
def real_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, RunFile]:
    folder = tmp_path_factory.mktemp("runs")
    runs = {}
    for name, text in SCENARIOS.items():
        if name == "refused":
            text = text.format(port=free_port())
        result = run(parse_scenario(text, f"<{name}>"), backend="auto")
        runs[name] = RunFile(result.write(folder / f"{name}.json"), result)
    return runs
