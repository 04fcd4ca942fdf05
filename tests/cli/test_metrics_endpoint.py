"""``run --metrics-port``: a real run scraped while it runs, parsed by prometheus_client."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from prometheus_client.openmetrics.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "scenarios" / "quickstart.yaml"
OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"


def _scrape(url: str) -> dict[str, list[Sample]]:
    request = urllib.request.Request(url, headers={"Accept": OPENMETRICS})
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.headers["Content-Type"].startswith("application/openmetrics-text")
        text = response.read().decode()
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def _value(samples: list[Sample], name: str) -> float:
    return next(s.value for s in samples if s.name == name)


def test_metrics_are_scraped_during_a_two_process_run(tmp_path: Path) -> None:
    out = tmp_path / "run.json"
    command = [
        sys.executable, "-m", "loadgen", "run", str(QUICKSTART), "-d", "8s", "-q",
        "--processes", "2", "--set", "load.connections=20", "--json", str(out),
        "--metrics-port", "0", "--allow-saturated",
    ]  # fmt: skip
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        url = ""
        for line in process.stderr:
            if line.startswith("metrics: "):
                url = line.split()[1]
                break
        assert url.startswith("http://127.0.0.1:") and url.endswith("/metrics"), url
        deadline = time.monotonic() + 30
        families: dict[str, list[Sample]] = {}
        while time.monotonic() < deadline:  # until a second has closed in both processes
            families = _scrape(url)
            latency = families["loadgen_latency_seconds"]
            if _value(latency, "loadgen_latency_seconds_count") > 0:
                break
            time.sleep(0.2)
        requests = _value(families["loadgen_requests"], "loadgen_requests_total")
        latency = families["loadgen_latency_seconds"]
        count = _value(latency, "loadgen_latency_seconds_count")
        assert requests > 0 and count > 0
        assert count <= requests  # the histogram holds closed seconds, the counter all
        buckets = [s for s in latency if s.name == "loadgen_latency_seconds_bucket"]
        counts = [s.value for s in buckets]
        assert counts == sorted(counts) and buckets[-1].labels["le"] == "+Inf"
        assert counts[-1] == count
        assert _value(latency, "loadgen_latency_seconds_sum") > 0
        # Both processes' connections added up (10 each): the board merged them.
        open_connections = _value(families["loadgen_open_connections"], "loadgen_open_connections")
        assert open_connections == 20
        sent = _value(families["loadgen_sent_bytes"], "loadgen_sent_bytes_total")
        assert sent >= 64 * requests
        assert (
            _value(families["loadgen_generator_cpu_seconds"], "loadgen_generator_cpu_seconds_total")
            > 0
        )
        info = families["loadgen_run"][0]
        assert info.labels["scenario"] == "quickstart" and info.labels["target"] == "builtin:echo"
        assert "loadgen_errors" in families
        assert process.wait(60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    result = json.loads(out.read_text())
    assert result["summary"]["requests"] >= requests
    assert result["environment"]["processes"] == 2
