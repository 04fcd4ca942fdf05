"""Where ``run`` writes its JSON: ``--json -``, paths that cannot be written (the result kept
elsewhere), outputs that fail (named)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from loadgen.cli.app import app

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "scenarios" / "quickstart.yaml"
SHORT_RUN = ["run", str(QUICKSTART), "-d", "300ms", "-p", "1", "--set", "load.connections=10"]
runner = CliRunner()


def test_json_dash_writes_pure_json_to_stdout(tmp_path: Path) -> None:
    outcome = runner.invoke(app, [*SHORT_RUN, "--json", "-"])
    assert outcome.exit_code == 0, outcome.output
    data = json.loads(outcome.stdout)  # nothing else on stdout
    assert data["scenario"]["name"] == "quickstart"
    assert data["summary"]["requests"] > 0
    assert "throughput" in outcome.stderr
    # The console is back on stdout for the next command of this process.
    again = runner.invoke(app, [*SHORT_RUN, "-q", "--json", str(tmp_path / "again.json")])
    assert f"result: {tmp_path / 'again.json'}" in again.stdout


def test_an_unwritable_json_path_keeps_the_result_elsewhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "a-folder"
    folder.mkdir()
    outcome = runner.invoke(app, [*SHORT_RUN, "-q", "--json", str(folder)])
    assert outcome.exit_code == 1, outcome.output
    assert "Traceback" not in outcome.output
    assert f"cannot write {folder}: it is a directory; the result is kept in " in outcome.stderr
    kept = outcome.stderr.split("the result is kept in ")[1].split()[0]
    assert Path(kept).parent == Path("reports") and Path(kept).name.startswith("quickstart-")
    assert json.loads(Path(kept).read_text())["summary"]["requests"] > 0
    assert f"result: {kept}" in outcome.stdout
    assert list(folder.iterdir()) == [] and not list(tmp_path.rglob("*.tmp"))


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
def test_a_failed_html_write_names_its_path(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    outcome = runner.invoke(app, [*SHORT_RUN, "-q", "--json", str(out), "--html", "/dev/full"])
    assert outcome.exit_code == 1, outcome.output
    assert "cannot write /dev/full: No space left on device" in outcome.stderr
    assert "None" not in outcome.stderr
    assert json.loads(out.read_text())["summary"]["requests"] > 0
    assert Path("/dev/full").is_char_device()


@pytest.mark.skipif(sys.platform == "win32", reason="FIFOs are POSIX")
def test_json_to_a_fifo_reaches_its_reader(tmp_path: Path) -> None:
    import os
    import threading

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    received: list[str] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_text()), daemon=True)
    reader.start()
    outcome = runner.invoke(app, [*SHORT_RUN, "-q", "--json", str(fifo)])
    reader.join(30)
    assert outcome.exit_code == 0, outcome.output
    assert json.loads(received[0])["scenario"]["name"] == "quickstart"
    assert fifo.is_fifo()
