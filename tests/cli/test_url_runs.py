"""``loadgen run URL``, ``loadgen run -`` and the exit codes of failing targets, through the
real command (a subprocess where the process boundary matters, typer's runner elsewhere),
against one built-in HTTP target for the module."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from loadgen.cli.app import app
from tests.adversarial.servers import free_port
from tests.recording_http import recording_http
from tests.servers import nginx_tls
from tests.shared_targets import SharedTargets
from tests.tls_certs import make_tls_files

runner = CliRunner()


@pytest.fixture(scope="module")
def http_port(shared_targets: SharedTargets) -> int:
    """The session's shared built-in HTTP target (``tests/conftest.py``)."""
    return shared_targets.address("http")[1]


def _loadgen(*arguments: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "loadgen", *arguments],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_url_closed_loop_through_the_real_command(http_port: int, tmp_path: Path) -> None:
    out = tmp_path / "url.json"
    url = f"http://127.0.0.1:{http_port}/bytes/100"
    arguments = ["-c", "4", "-d", "1s", "-p", "1", "-q", "--json", str(out), "--allow-saturated"]
    done = _loadgen("run", url, *arguments)
    assert done.returncode == 0, done.stdout + done.stderr
    data = json.loads(out.read_text())
    scenario = data["scenario"]
    assert scenario["target"] == url and scenario["name"] == f"127.0.0.1-{http_port}"
    assert scenario["load"]["model"] == "closed" and scenario["load"]["connections"] == 4
    assert scenario["protocol"]["http"]["path"] == "/bytes/100"
    assert data["summary"]["requests"] > 0 and data["summary"]["errors"] == {}
    assert data["summary"]["bytes_received"] >= 100 * data["summary"]["requests"]


def test_url_open_model_through_the_real_command(http_port: int, tmp_path: Path) -> None:
    out = tmp_path / "rate.json"
    url = f"http://127.0.0.1:{http_port}/"
    arguments = ["--rate", "200/s", "-d", "1s", "-p", "1", "-q", "--json", str(out)]
    done = _loadgen("run", url, *arguments, "--allow-saturated")
    assert done.returncode == 0, done.stdout + done.stderr
    data = json.loads(out.read_text())
    assert data["scenario"]["load"]["model"] == "open"
    assert data["scenario"]["load"]["phases"][0]["rate"] == [200.0, 200.0]
    assert abs(data["summary"]["requests"] - 200) <= 20  # the schedule, not the target's pace
    assert data["summary"]["latency_corrected_us"]["count"] == data["summary"]["requests"]


def test_method_headers_and_body_file_reach_the_server(tmp_path: Path) -> None:
    body = tmp_path / "body.json"
    body.write_bytes(b'{"hello": "world"}')
    with recording_http() as (port, record):
        done = _loadgen(
            "run",
            f"http://localhost:{port}/submit?x=1",
            "-c",
            "1",
            "-d",
            "300ms",
            "-p",
            "1",
            "-q",
            "-m",
            "POST",
            "-H",
            "Content-Type: application/json",
            "-H",
            "X-Run: ${n}",
            "--set",
            "protocol.http.variables={n: {sequence: connection}}",
            "--body",
            f"@{body}",
            "--requests-per-connection",
            "3",
            "--set",
            "close=rst",  # churn to a host name: no TIME_WAIT to budget ports for
            "--json",
            str(tmp_path / "r.json"),
            "--allow-saturated",
        )
        assert done.returncode == 0, done.stdout + done.stderr
        requests = record.snapshot()
    assert requests
    for request in requests:
        assert (request.method, request.path) == ("POST", "/submit?x=1")
        assert request.headers["host"] == f"localhost:{port}"  # the URL's host, as written
        assert request.headers["content-type"] == "application/json"
        assert request.body == b'{"hello": "world"}'
    # A fresh connection every 3 responses; the per-connection sequence keeps counting.
    by_connection = record.by_connection()
    assert len(by_connection) >= 2 and all(len(c) <= 3 for c in by_connection.values())
    counted = [int(request.headers["x-run"]) for request in requests]
    assert counted == list(range(1, len(counted) + 1))  # one slot: 1, 2, 3, ... throughout


def test_scenario_from_stdin(http_port: int, tmp_path: Path) -> None:
    out = tmp_path / "stdin.json"
    text = (
        f"name: from-stdin\ntarget: http://127.0.0.1:{http_port}/\n"
        "connections: 2\nduration: 500ms\n"
    )
    done = _loadgen(
        "run", "-", "-p", "1", "-q", "--json", str(out), "--allow-saturated", stdin=text
    )
    assert done.returncode == 0, done.stdout + done.stderr
    data = json.loads(out.read_text())
    assert data["scenario"]["name"] == "from-stdin" and data["summary"]["requests"] > 0
    bad = _loadgen("run", "-", stdin="name: x\ntarget: http://h/\nconections: 2\nduration: 1s\n")
    assert bad.returncode == 2
    assert "<stdin>:3: conections: unknown key; did you mean 'connections'?" in bad.stderr


def test_404_is_timed_counted_and_exits_1(http_port: int, tmp_path: Path) -> None:
    out, html = tmp_path / "404.json", tmp_path / "404.html"
    url = f"http://127.0.0.1:{http_port}/status/404"
    arguments = ["run", url, "-c", "2", "-d", "500ms", "-p", "1", "--json", str(out)]
    arguments.append("--allow-saturated")  # exit 1 comes first anyway; the pass below needs it
    result = runner.invoke(app, [*arguments, "--html", str(html)])
    assert result.exit_code == 1, result.output
    summary = json.loads(out.read_text())["summary"]
    requests = summary["requests"]
    assert requests > 0 and summary["latency_us"]["count"] == requests
    assert summary["failed"] == requests and summary["errors"] == {"http_4xx": requests}
    assert f"{requests:,} failed (100.00%)" in result.output
    assert f"NO REQUEST SUCCEEDED: all {requests:,} responses failed the expectation" in (
        result.output
    )
    page = html.read_text()
    assert "No request succeeded: " in page and "no request succeeded</span>" in page
    # The same target, with 404 expected, passes.
    expected = runner.invoke(app, [*arguments, "--set", "protocol.http.expect.status=[404]"])
    assert expected.exit_code == 0, expected.output


def test_refused_url_exits_1(tmp_path: Path) -> None:
    out = tmp_path / "refused.json"
    url = f"http://127.0.0.1:{free_port()}/"
    result = runner.invoke(app, ["run", url, "-c", "2", "-d", "300ms", "-q", "--json", str(out)])
    assert result.exit_code == 1, result.output
    assert "NO REQUEST SUCCEEDED: no response arrived (refused" in result.output
    data = json.loads(out.read_text())
    assert data["summary"]["requests"] == 0 and data["summary"]["errors"]["refused"] > 0


MIX = """\
name: mix
target: http://127.0.0.1:{port}/
connections: 4
duration: 600ms
protocol:
  http:
    requests:
      - {{name: ok, path: /status/200}}
      - {{name: boom, path: /status/500}}
"""


def test_a_name_that_does_not_resolve_exits_1() -> None:
    result = runner.invoke(app, ["run", "http://no-such-host.invalid:8080/", "-d", "1s"])
    assert result.exit_code == 1
    assert "target host 'no-such-host.invalid' does not resolve" in result.output


def test_200_500_mix_counts_and_thresholds(http_port: int, tmp_path: Path) -> None:
    scenario = tmp_path / "mix.yaml"
    scenario.write_text(MIX.format(port=http_port))
    out = tmp_path / "mix.json"
    # --allow-saturated: a full-speed loop may saturate the generator (exit 3 before 99).
    arguments = ["run", str(scenario), "-p", "1", "--json", str(out), "--allow-saturated"]
    html = tmp_path / "mix.html"
    result = runner.invoke(app, [*arguments, "--html", str(html)])
    assert result.exit_code == 0, result.output  # some succeeded: a pass
    data = json.loads(out.read_text())
    summary = data["summary"]
    named = {item["name"]: item for item in data["requests_by_name"]}
    assert named["boom"]["failed"] == named["boom"]["requests"] == summary["failed"] > 0
    assert summary["errors"] == {"http_5xx": summary["failed"]}
    assert named["ok"]["failed"] == 0 and named["ok"]["errors"] == {}
    assert named["ok"]["requests"] + named["boom"]["requests"] == summary["requests"]
    assert "boom" in result.output and "http_5xx" in result.output  # the per-name table
    page = html.read_text()
    assert '<section id="by-name"><h2>Requests by name</h2>' in page
    assert "<th>boom</th>" in page and "<th>ok</th>" in page
    assert "No request succeeded" not in page
    # About half failed: a failed_rate threshold fails the run (99), error_rate agrees.
    gate = "thresholds=['failed_rate < 10%', 'error_rate < 10%', 'failed > 0']"
    gated = runner.invoke(app, [*arguments, "--set", gate])
    assert gated.exit_code == 99, gated.output
    verdicts = {v["metric"]: v for v in json.loads(out.read_text())["thresholds"]}
    assert 0.3 < verdicts["failed_rate"]["value"] < 0.7 and not verdicts["failed_rate"]["passed"]
    assert verdicts["error_rate"]["value"] == verdicts["failed_rate"]["value"]
    assert verdicts["failed"]["passed"]


def test_compare_works_on_url_runs(http_port: int, tmp_path: Path) -> None:
    scenario = tmp_path / "mix.yaml"
    scenario.write_text(MIX.format(port=http_port))
    paths = []
    for side in ("base", "cur"):
        paths.append(tmp_path / f"{side}.json")
        arguments = ["run", str(scenario), "-p", "1", "-q", "--json", str(paths[-1])]
        done = runner.invoke(app, [*arguments, "--allow-saturated"])
        assert done.exit_code == 0, done.output
    markdown = tmp_path / "compare.md"
    compared = runner.invoke(
        app,
        ["compare", "--baseline", str(paths[0]), "--current", str(paths[1]), "--tolerance", "900%"],
        catch_exceptions=False,
    )
    assert compared.exit_code in (0, 3), compared.output  # 3: a saturated generator, said so
    runner.invoke(
        app,
        [
            "compare",
            "--baseline",
            str(paths[0]),
            "--current",
            str(paths[1]),
            "--markdown",
            str(markdown),
        ],
    )
    text = markdown.read_text()
    assert "**Requests by name**" in text
    assert "| boom |" in text and "| ok |" in text


def test_an_https_url_runs_over_tls(tmp_path: Path) -> None:
    """``https://`` turns TLS on; the URL's host is the server name checked against the
    certificate (localhost here), and -k turns the check off."""
    certs = make_tls_files(tmp_path / "certs")
    scenario = tmp_path / "tls.yaml"
    with nginx_tls(tmp_path, certs) as server:
        url = f"https://localhost:{server.port}/"
        scenario.write_text(f"name: tls\ntarget: {url}\nconnections: 1\nduration: 1s\n")
        checked = runner.invoke(app, ["validate", str(scenario)])
        assert checked.exit_code == 0, checked.output
        verified = tmp_path / "verified.json"
        ran = _loadgen(
            "run", url, "-c", "2", "-d", "0.5s", "-q", "-p", "1", "--json", str(verified),
            "--set", f"tls.ca_file={certs.ca}",
        )  # fmt: skip
        insecure = tmp_path / "insecure.json"
        unverified = _loadgen(
            "run", url, "-c", "2", "-d", "0.5s", "-q", "-p", "1", "--json", str(insecure), "-k",
        )  # fmt: skip
    assert ran.returncode in (0, 3), ran.stderr  # 3: the generator was saturated
    assert unverified.returncode in (0, 3), unverified.stderr
    for path in (verified, insecure):
        result = json.loads(path.read_text())
        assert result["summary"]["errors"] == {} and result["summary"]["requests"] > 0
        assert result["summary"]["tls_handshake_us"]["count"] == 2
        assert result["scenario"]["tls"]["enabled"] is True
    assert json.loads(insecure.read_text())["scenario"]["tls"]["verify"] is False


def test_url_options_with_a_file_are_a_usage_error(tmp_path: Path) -> None:
    scenario = tmp_path / "s.yaml"
    scenario.write_text("name: s\ntarget: builtin:http\nconnections: 1\nduration: 1s\n")
    result = runner.invoke(app, ["run", str(scenario), "-c", "5", "--rate", "1k/s"])
    assert result.exit_code == 2
    assert "-c, --rate: only for a URL run" in result.output
    bad_header = runner.invoke(app, ["run", "http://127.0.0.1:1/", "-H", "nocolon"])
    assert bad_header.exit_code == 2 and "expected 'Name: value'" in bad_header.output
