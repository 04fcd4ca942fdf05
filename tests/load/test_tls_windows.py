"""TLS on IOCP: Windows CPython (under Wine) against a TLS server on the Linux side.

``tests/test_wine.py`` starts nginx over TLS (a certificate from a throw-away CA) before it
runs the Windows suite, and hands its address and the CA here (``LOADGEN_TLS_TARGET``,
``LOADGEN_TLS_CA_PEM``), and the server's certificate and key (``LOADGEN_TLS_SERVER_PEM``)
for a server of the test's own that records how each session ended; anywhere else these
tests skip. The engine is IOCP, the TLS is
Windows CPython's own ``ssl`` (OpenSSL), and the server is a real one.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from loadgen.config.scenario import Scenario, parse_scenario
from loadgen.run.api import run
from tests.tls_endings import tls_server_recording_endings, wait_for_endings

TARGET = os.environ.get("LOADGEN_TLS_TARGET")
CA_PEM = os.environ.get("LOADGEN_TLS_CA_PEM")
#: The server certificate and its key (one PEM), for a TLS server of this process's own.
SERVER_PEM = os.environ.get("LOADGEN_TLS_SERVER_PEM")

pytestmark = [
    pytest.mark.skipif(sys.platform != "win32", reason="IOCP: Windows (or Wine) only"),
    pytest.mark.skipif(
        not TARGET or not CA_PEM,
        reason="tests/test_wine.py starts the TLS server on the Linux side and passes it here",
    ),
]


def _scenario(tls: dict[str, object], **fields: object) -> Scenario:
    settings: dict[str, object] = {
        "name": "tls-iocp",
        "target": TARGET,
        "protocol": "http",
        "connections": 4,
        "duration": "1s",
        **fields,
        "tls": {"enabled": True, **tls},
    }
    settings = {key: value for key, value in settings.items() if value is not None}
    return parse_scenario(json.dumps(settings), "tls-iocp.yaml")


@pytest.mark.parametrize("receive", ["buffered", "zero-byte"])
def test_https_on_iocp_verified_with_the_ca(tmp_path: Path, receive: str) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text(CA_PEM or "")
    result = run(_scenario({"ca_file": str(ca)}, receive=receive), backend="iocp")
    summary = result.summary
    assert result.environment.backend == "iocp"
    assert summary.errors == {}, summary.error_reasons
    assert summary.requests > 0
    assert summary.tls_handshake_us is not None and summary.tls_handshake_us.count == 4


def test_resumption_and_a_failed_verification_on_iocp(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text(CA_PEM or "")
    load = {"connections": 2, "phases": [{"duration": "1s"}], "requests_per_connection": 1}
    churn = run(
        _scenario({"ca_file": str(ca)}, connections=None, duration=None, load=load),
        backend="iocp",
    )
    assert churn.summary.errors == {}, churn.summary.error_reasons
    assert churn.summary.tls_handshake_us is not None
    assert churn.summary.tls_handshake_us.count > 2
    assert churn.summary.tls_resumed is not None and churn.summary.tls_resumed > 0
    unknown = run(_scenario({}), backend="iocp")  # the system's CAs do not know the test CA
    assert unknown.summary.requests == 0
    (reason,) = unknown.summary.error_reasons["tls"]
    assert reason.startswith("certificate verify failed"), reason


@pytest.mark.skipif(not SERVER_PEM, reason="tests/test_wine.py passes the server's PEM here")
def test_close_notify_at_the_end_of_a_run_on_iocp(tmp_path: Path) -> None:
    ca, server = tmp_path / "ca.pem", tmp_path / "server.pem"
    ca.write_text(CA_PEM or "")
    server.write_text(SERVER_PEM or "")
    with tls_server_recording_endings(server) as (port, endings):
        settings = {"target": f"127.0.0.1:{port}", "connections": 2}
        result = run(_scenario({"ca_file": str(ca)}, **settings), backend="iocp")
        assert result.summary.errors == {}, result.summary.error_reasons
        assert result.summary.requests >= 2
        wait_for_endings(endings, 2)
    assert endings == ["close_notify"] * 2
