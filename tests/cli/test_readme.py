"""The README's first HTTP example is a run one generator keeps: run against a real nginx."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from loadgen.cli.app import app
from loadgen.config.scenario import parse_scenario
from tests.servers import nginx

ROOT = Path(__file__).resolve().parents[2]
#: A shared 2-core machine can starve any one run (other tests' processes): the example is
#: a valid run when one of a few attempts is; each invalid attempt's reasons are reported.
ATTEMPTS = 3


def first_http_example() -> str:
    blocks = re.findall(r"```yaml\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    return next(block for block in blocks if "http:" in block)


@pytest.mark.slow
def test_the_first_http_example_is_a_valid_run(tmp_path: Path) -> None:
    example = tmp_path / "example.yaml"
    example.write_text(first_http_example())
    assert parse_scenario(example.read_text()).protocol_name == "http"
    reasons = []
    with nginx(tmp_path / "nginx") as port:
        for attempt in range(ATTEMPTS):
            out = tmp_path / f"run-{attempt}.json"
            args = ["run", str(example), "-d", "4s", "-q", "--json", str(out)]
            args += ["--set", f"target=127.0.0.1:{port}", "--processes", "1"]
            result = CliRunner().invoke(app, args)
            data = json.loads(out.read_text())
            assert data["summary"]["requests"] > 0 and not data["summary"]["errors"]
            if data["self_check"]["valid"]:
                assert result.exit_code in (0, 99), result.output  # valid: never exit 3
                return
            assert result.exit_code == 3 and "What to do" in result.stderr
            reasons.append(data["self_check"]["reasons"])
    pytest.fail(f"invalid in all {ATTEMPTS} attempts: {reasons}")
