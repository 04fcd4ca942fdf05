"""TLS over the completion engine, end to end against real TLS servers: nginx (HTTPS, a
server that requires a client certificate, and its stream module terminating TLS in front
of the built-in stream target) and redis-server's TLS port, with certificates made here by
a throw-away CA (``tests.tls_certs``).

Every case is a real run (``loadgen.run.api.run``) on real sockets; what is asserted is what
the result says: requests, errors by kind with their reasons, and the TLS handshakes
(``tls_handshake_us``, ``tls_resumed``).
"""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from rich.console import Console

from loadgen.config.plan import LoadPlan
from loadgen.config.scenario import Scenario, parse_scenario
from loadgen.engine import Completion, select_backend
from loadgen.load.recorder import Recorder
from loadgen.load.tls import TlsConfig, client_context, failure_reason
from loadgen.load.tls_clients import TlsLoadClient
from loadgen.load.tokens import OP_MASK, OP_SEND
from loadgen.report.console import render_summary
from loadgen.report.html import render_html
from loadgen.report.loading import from_result
from loadgen.result.model import RunResult
from loadgen.run.api import run
from loadgen.run.wiring import client_config
from loadgen.targets.process import builtin_target
from tests.adversarial.servers import bad_target
from tests.engine.conftest import AVAILABLE
from tests.servers import NginxTls, nginx, nginx_tls, nginx_tls_proxy, redis_tls
from tests.tls_certs import TlsFiles, make_tls_files
from tests.tls_endings import tls_server_recording_endings, wait_for_endings

ANY_BACKEND = AVAILABLE[0]


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def https(tmp_path_factory: pytest.TempPathFactory, certs: TlsFiles) -> Iterator[NginxTls]:
    with nginx_tls(tmp_path_factory.mktemp("nginx"), certs) as server:
        yield server


def scenario(target: str, tls: Mapping[str, object], **fields: object) -> Scenario:
    """A short closed-loop scenario over TLS (``tls`` is the section, ``enabled`` added)."""
    settings: dict[str, object] = {
        "name": "tls",
        "target": target,
        "protocol": "http",
        "connections": 4,
        "duration": "0.6s",
        **fields,
        "tls": {"enabled": True, **tls},
    }
    settings = {key: value for key, value in settings.items() if value is not None}
    return parse_scenario(json.dumps(settings), "tls.yaml")


def handshakes(result: RunResult) -> int:
    latency = result.summary.tls_handshake_us
    assert latency is not None, "a TLS run records its handshakes"
    assert result.histogram("tls_handshake").total_count == latency.count
    return latency.count


def receive_cases() -> list[tuple[str, dict[str, object]]]:
    cases: list[tuple[str, dict[str, object]]] = []
    for backend in AVAILABLE:
        cases += [(backend, {"receive": "buffered"}), (backend, {"receive": "zero-byte"})]
    if "io_uring" in AVAILABLE:
        engine = select_backend("io_uring")
        try:
            cases.append(("io_uring", {"register_buffers": True}))
            if engine.supports_buffer_ring:
                cases.append(("io_uring", {"receive": "buffer-ring"}))
        finally:
            engine.shutdown()
    return cases


@pytest.mark.parametrize(("backend", "receive"), receive_cases(), ids=str)
def test_https_verified_with_the_ca_on_every_backend_and_receive_mode(
    https: NginxTls, certs: TlsFiles, backend: str, receive: dict[str, object]
) -> None:
    result = run(
        scenario(f"127.0.0.1:{https.port}", {"ca_file": str(certs.ca)}, **receive),
        backend=backend,
    )
    summary = result.summary
    assert summary.errors == {}, summary.error_reasons
    assert summary.requests > 20
    assert handshakes(result) == 4  # keep-alive: one handshake per connection
    assert summary.tls_resumed == 0
    # Bytes are the application's (plaintext): each GET and each "ok" response in full.
    assert summary.bytes_received >= summary.requests * len(b"HTTP/1.1 200 OK\r\n\r\nok")
    assert result.summary.tls_handshake_us is not None
    assert result.summary.tls_handshake_us.p50 is not None


def test_without_the_ca_every_handshake_fails_as_tls_with_its_reason(https: NginxTls) -> None:
    result = run(scenario(f"127.0.0.1:{https.port}", {}), backend=ANY_BACKEND)
    summary = result.summary
    assert summary.requests == 0
    assert set(summary.errors) == {"tls"} and summary.errors["tls"] >= 4
    (reason,) = summary.error_reasons["tls"]
    assert reason.startswith("certificate verify failed: "), reason
    assert summary.error_reasons["tls"][reason] == summary.errors["tls"]
    assert handshakes(result) == 0


def test_verify_false_runs_without_the_ca(https: NginxTls) -> None:
    result = run(scenario(f"127.0.0.1:{https.port}", {"verify": False}), backend=ANY_BACKEND)
    assert result.summary.errors == {}
    assert result.summary.requests > 20


def test_insecure_on_the_command_line_turns_verification_off(
    https: NginxTls, tmp_path: Path
) -> None:
    spec = tmp_path / "tls.yaml"
    spec.write_text(
        f"name: insecure\ntarget: 127.0.0.1:{https.port}\nprotocol: http\n"
        "connections: 2\nduration: 0.5s\ntls: {enabled: true}\n"
    )
    result_path = tmp_path / "result.json"
    command = [sys.executable, "-m", "loadgen", "run", str(spec), "-q", "--processes", "1"]
    command += ["--json", str(result_path), "--insecure"]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert completed.returncode in (0, 3), completed.stderr  # 3: a saturated generator
    result = RunResult.read(result_path)
    assert result.summary.errors == {} and result.summary.requests > 0
    assert result.scenario["tls"]["verify"] is False


def test_a_name_the_certificate_does_not_carry_fails_the_hostname_check(
    https: NginxTls, certs: TlsFiles
) -> None:
    tls = {"ca_file": str(certs.ca), "server_name": "elsewhere.example"}
    result = run(scenario(f"127.0.0.1:{https.port}", tls), backend=ANY_BACKEND)
    assert result.summary.requests == 0
    (reason,) = result.summary.error_reasons["tls"]
    assert "Hostname mismatch" in reason and "elsewhere.example" in reason


def test_sni_alpn_and_minimum_version_reach_the_server(https: NginxTls, certs: TlsFiles) -> None:
    """The client context as a run builds it, on a blocking socket: nginx echoes back the
    protocol version, the ALPN protocol and the server name it saw."""
    config = TlsConfig(
        server_names=["localhost"], ca_file=str(certs.ca), alpn=("http/1.1",), min_version="1.3"
    )
    context = client_context(config)
    with (
        socket.create_connection(("127.0.0.1", https.port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        tls.sendall(b"GET /protocol HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        response = b""
        while chunk := tls.recv(4096):
            response += chunk
    assert response.endswith(b"\r\n\r\nTLSv1.3 http/1.1 localhost"), response


@pytest.mark.parametrize("resumption", [True, False], ids=["resumption-on", "resumption-off"])
def test_session_resumption_across_reconnects(
    https: NginxTls, certs: TlsFiles, resumption: bool
) -> None:
    """One request per connection: every reconnect of a slot is a new handshake, which
    resumes the slot's last session when resumption is on (counted by the client from
    ``SSLObject.session_reused``), and never when it is off."""
    tls = {"ca_file": str(certs.ca), "session_resumption": resumption}
    load = {"connections": 2, "phases": [{"duration": "0.8s"}], "requests_per_connection": 1}
    result = run(
        scenario(f"127.0.0.1:{https.port}", tls, connections=None, duration=None, load=load),
        backend=ANY_BACKEND,
    )
    summary = result.summary
    assert summary.errors == {}
    total = handshakes(result)
    assert total > 10  # churn: a handshake per request
    assert summary.tls_resumed is not None
    if resumption:
        # Each slot's first handshake is full; after that, every one but a few resumes
        # (a connection that closed before its session ticket arrived would not).
        assert summary.tls_resumed >= 0.9 * (total - 2), (summary.tls_resumed, total)
    else:
        assert summary.tls_resumed == 0


@pytest.fixture(params=["separate", "bundle"])
def client_identity(request: pytest.FixtureRequest, certs: TlsFiles) -> dict[str, object]:
    if request.param == "bundle":  # the certificate and its key in one file
        return {"client_cert": str(certs.client_bundle)}
    return {"client_cert": str(certs.client_cert), "client_key": str(certs.client_key)}


def test_a_client_certificate_where_the_server_requires_one(
    https: NginxTls, certs: TlsFiles, client_identity: dict[str, object]
) -> None:
    target = f"127.0.0.1:{https.client_cert_port}"
    tls = {"ca_file": str(certs.ca), **client_identity}
    result = run(scenario(target, tls), backend=ANY_BACKEND)
    assert result.summary.errors == {}
    assert result.summary.requests > 20


def test_without_the_client_certificate_nginx_answers_400(https: NginxTls, certs: TlsFiles) -> None:
    target = f"127.0.0.1:{https.client_cert_port}"
    result = run(scenario(target, {"ca_file": str(certs.ca)}), backend=ANY_BACKEND)
    summary = result.summary
    # Every response is nginx's 400 "No required SSL certificate was sent": timed, failed.
    assert summary.requests > 0 and summary.failed == summary.requests
    assert summary.errors == {"http_4xx": summary.requests}
    assert handshakes(result) >= 4  # the handshakes themselves succeed


def test_https_through_two_processes(https: NginxTls, certs: TlsFiles) -> None:
    result = run(
        scenario(f"127.0.0.1:{https.port}", {"ca_file": str(certs.ca)}, duration="1s"),
        backend=ANY_BACKEND,
        processes=2,
    )
    assert result.environment.processes == 2
    assert result.summary.errors == {}
    assert result.summary.requests > 20
    assert handshakes(result) == 4  # two connections in each process, merged
    assert result.summary.tls_resumed == 0


def test_redis_over_tls(tmp_path: Path, certs: TlsFiles) -> None:
    with redis_tls(tmp_path, certs) as port:
        result = run(
            scenario(
                f"127.0.0.1:{port}",
                {"ca_file": str(certs.ca)},
                protocol={"redis": {"command": ["PING"], "pipeline": 4}},
            ),
            backend=ANY_BACKEND,
        )
    assert result.summary.errors == {}, result.summary.error_reasons
    assert result.summary.requests > 100
    assert handshakes(result) == 4


@pytest.mark.parametrize("pattern", ["push", "pull", "pushpull", "duplex"])
def test_stream_patterns_over_tls(tmp_path: Path, certs: TlsFiles, pattern: str) -> None:
    """nginx's stream module terminates TLS in front of the built-in stream target: the
    header, the verified payload and the trailer all travel inside TLS."""
    with (
        builtin_target("stream", backend=ANY_BACKEND) as upstream,
        nginx_tls_proxy(tmp_path, certs, upstream) as port,
    ):
        stream = {"pattern": pattern, "bytes": "200KiB", "segment": "16KiB"}
        result = run(
            scenario(
                f"127.0.0.1:{port}",
                {"ca_file": str(certs.ca)},
                protocol={"stream": stream},
                connections=2,
            ),
            backend=ANY_BACKEND,
        )
    summary = result.summary
    assert summary.errors == {}, summary.error_reasons
    assert summary.requests >= 2  # finished transfers, each verified by the server's trailer
    assert handshakes(result) >= summary.requests  # a connection (and handshake) per transfer
    moved = summary.bytes_sent + summary.bytes_received
    assert moved >= summary.requests * 200 * 1024  # payload bytes, counted in plaintext


@pytest.mark.parametrize("backend", AVAILABLE)
def test_a_run_ends_each_session_with_close_notify(certs: TlsFiles, backend: str) -> None:
    with tls_server_recording_endings(certs.server_cert, certs.server_key) as (port, endings):
        result = run(
            scenario(f"127.0.0.1:{port}", {"ca_file": str(certs.ca)}, connections=3),
            backend=backend,
        )
        assert result.summary.errors == {}, result.summary.error_reasons
        assert result.summary.requests >= 3
        wait_for_endings(endings, 3)
    assert endings == ["close_notify"] * 3


def test_a_reset_connection_sends_no_close_notify(certs: TlsFiles) -> None:
    """``close: rst`` resets every connection: an alert before a reset would be lost."""
    with tls_server_recording_endings(certs.server_cert, certs.server_key) as (port, endings):
        result = run(
            scenario(f"127.0.0.1:{port}", {"ca_file": str(certs.ca)}, connections=2, close="rst"),
            backend=ANY_BACKEND,
        )
        assert result.summary.requests >= 2
        wait_for_endings(endings, 2)
    assert len(endings) == 2 and "close_notify" not in endings


def test_a_plain_http_server_is_a_tls_error(tmp_path: Path) -> None:
    with nginx(tmp_path) as port:
        result = run(scenario(f"127.0.0.1:{port}", {"verify": False}), backend=ANY_BACKEND)
    assert result.summary.requests == 0
    assert set(result.summary.errors) == {"tls"}
    assert result.summary.error_reasons["tls"], "the reason is kept"


def test_a_server_that_closes_in_the_handshake_is_a_tls_error() -> None:
    with bad_target("close") as (host, port):
        result = run(scenario(f"{host}:{port}", {"verify": False}), backend=ANY_BACKEND)
    assert result.summary.requests == 0
    assert set(result.summary.errors) == {"tls"}
    assert list(result.summary.error_reasons["tls"]) == [
        "the server closed the connection in the handshake"
    ]


def test_a_silent_server_times_the_handshake_out() -> None:
    with bad_target("silent") as (host, port):
        result = run(
            scenario(
                f"{host}:{port}",
                {"verify": False},
                duration="1.5s",
                timeouts={"connect": "0.3s"},
            ),
            backend=ANY_BACKEND,
        )
    assert result.summary.requests == 0
    assert result.summary.errors.get("timeout", 0) >= 4
    (reason,) = result.summary.error_reasons["timeout"]
    assert reason.startswith("TLS handshake not finished within the connect timeout")


def test_failure_reasons_drop_the_source_line() -> None:
    error = ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:992)")
    assert failure_reason(error) == "[SSL: WRONG_VERSION_NUMBER] wrong version number"


def test_reports_show_the_handshakes_and_the_reasons(https: NginxTls, certs: TlsFiles) -> None:
    """The terminal summary and the HTML report of a TLS run: the handshake latency beside
    the connect latency, resumed handshakes, and why the failed connections failed."""
    good = run(scenario(f"127.0.0.1:{https.port}", {"ca_file": str(certs.ca)}), backend=ANY_BACKEND)
    bad = run(scenario(f"127.0.0.1:{https.port}", {}), backend=ANY_BACKEND)
    console = Console(record=True, width=120)
    render_summary(good, console)
    render_summary(bad, console)
    text = console.export_text()
    assert "handshake" in text and "4 handshakes, 0 resumed" in text
    assert "tls: certificate verify failed: " in text
    page = render_html([from_result(good, "good"), from_result(bad, "bad")])
    assert "TLS handshake (from the TCP connect to the handshake&#x27;s end)" in page
    assert "bad: tls: certificate verify failed: " in page


def test_a_request_set_over_tls(https: NginxTls, certs: TlsFiles) -> None:
    """Each exchange of a request set is rendered afresh and encrypted like any request."""
    http = {
        "requests": [
            {"name": "home", "path": "/", "weight": 3},
            {"name": "protocol", "path": "/protocol?n=${n}", "weight": 1},
        ],
        "variables": {"n": {"sequence": "connection"}},
    }
    result = run(
        scenario(f"127.0.0.1:{https.port}", {"ca_file": str(certs.ca)}, protocol={"http": http}),
        backend=ANY_BACKEND,
    )
    assert result.summary.errors == {}, result.summary.error_reasons
    names = {named.name: named.requests for named in result.requests_by_name}
    assert set(names) == {"home", "protocol"} and min(names.values()) > 0
    assert sum(names.values()) == result.summary.requests


@pytest.mark.parametrize("backend", AVAILABLE)
def test_requests_over_tls_go_as_quiet_sends(
    https: NginxTls, certs: TlsFiles, backend: str
) -> None:
    """Once a slot's request encrypts to its usual size (from its third request on), its
    ciphertext goes as a quiet send: no send completion per request, only the handshake's
    and the first requests' (sizes not seen before go as plain sends)."""
    plan_scenario = scenario(f"127.0.0.1:{https.port}", {"ca_file": str(certs.ca)})
    addresses = [("127.0.0.1", https.port)]
    config = client_config(plan_scenario, LoadPlan.from_scenario(plan_scenario), addresses)
    engine = select_backend(backend)
    recorder = Recorder(time.perf_counter_ns())
    client = TlsLoadClient(engine, config, recorder)
    sends = [0]
    handle = client._handle

    def counting(completions: list[Completion], now_ns: int) -> None:
        sends[0] += sum(1 for c in completions if c[0] & OP_MASK == OP_SEND)
        handle(completions, now_ns)

    client._handle = counting  # type: ignore[method-assign]
    try:
        start = time.perf_counter_ns()
        client.run(start + 500_000_000)
        recorder.finish(time.perf_counter_ns())
        client.close_all()
    finally:
        engine.shutdown()
    responses = recorder.latency.total_count
    assert not recorder.errors and responses > 100, recorder.errors
    # Per connection: the handshake's flights and the first two requests at most.
    assert sends[0] <= 4 * config.connections, (sends[0], responses)
