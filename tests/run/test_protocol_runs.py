"""Whole runs with the HTTP and Redis codecs against real servers (nginx, redis-server and
the built-in HTTP target), on every backend available."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from loadgen.config.scenario import parse_scenario
from loadgen.result.model import RunResult
from loadgen.run.api import run
from tests.engine.conftest import AVAILABLE
from tests.servers import NGINX_STATIC_BYTES, nginx, redis


@pytest.fixture(scope="module")
def nginx_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    with nginx(tmp_path_factory.mktemp("nginx")) as port:
        yield port


@pytest.fixture(scope="module")
def redis_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    with redis(tmp_path_factory.mktemp("redis")) as port:
        yield port


def _run(target: str, protocol: str, backend: str = "auto", **load: str) -> RunResult:
    fields = {"connections": "10", "duration": "700ms", **load}
    text = f"name: proto\ntarget: {target}\nprotocol: {protocol}\n"
    text += "".join(f"{key}: {value}\n" for key, value in fields.items())
    return run(parse_scenario(text), backend=backend)


@pytest.mark.parametrize("recv_mode", ["buffered", "zero-byte"])
@pytest.mark.parametrize("backend", AVAILABLE)
def test_http_against_nginx(nginx_port: int, backend: str, recv_mode: str) -> None:
    result = _run(
        f"127.0.0.1:{nginx_port}",
        "{http: {path: /static/file.bin}}",
        backend,
        receive=recv_mode,
    )
    summary = result.summary
    assert summary.errors == {}
    assert summary.requests > 50
    # Every response carried the whole file (plus a head), and nothing else arrived.
    assert summary.bytes_received >= summary.requests * NGINX_STATIC_BYTES


def test_http_pipelining_and_status_classes(nginx_port: int) -> None:
    ok = _run(f"127.0.0.1:{nginx_port}", "{http: {path: /, pipeline: 8}}")
    assert ok.summary.errors == {} and ok.summary.requests > 100
    # A response outside the expectation is a request (timed) and a failed one.
    missing = _run(f"127.0.0.1:{nginx_port}", "{http: {path: /missing-teapot}}")
    assert missing.summary.requests > 0
    assert missing.summary.failed == missing.summary.requests
    assert missing.summary.errors == {"http_4xx": missing.summary.requests}
    assert missing.summary.latency_us.count == missing.summary.requests
    unavailable = _run(f"127.0.0.1:{nginx_port}", "{http: {path: /unavailable}}")
    assert set(unavailable.summary.errors) == {"http_5xx"}
    assert unavailable.summary.failed == unavailable.summary.errors["http_5xx"]


def test_http_connection_close_reconnects_without_errors(nginx_port: int) -> None:
    result = _run(f"127.0.0.1:{nginx_port}", "{http: {path: /close}}")
    summary = result.summary
    assert summary.errors == {}
    assert summary.requests > 20
    assert summary.connects >= summary.requests  # one connection per response


def test_http_against_the_builtin_target() -> None:
    result = _run("builtin:http", "{http: {path: /chunked/3000, pipeline: 2}}")
    assert result.summary.errors == {}
    assert result.summary.bytes_received >= result.summary.requests * 3000


def test_redis(redis_port: int) -> None:
    result = _run(f"127.0.0.1:{redis_port}", "{redis: {command: [SET, k, v], pipeline: 4}}")
    assert result.summary.errors == {} and result.summary.requests > 100
    error = _run(f"127.0.0.1:{redis_port}", "{redis: {command: [INCR, k]}}")
    # "v" is not an integer: every reply is an error reply, a failed request
    assert error.summary.requests > 0
    assert error.summary.failed == error.summary.requests
    assert error.summary.errors == {"redis_error": error.summary.requests}


def test_open_model_http(nginx_port: int) -> None:
    result = run(
        parse_scenario(
            f"name: open-http\ntarget: 127.0.0.1:{nginx_port}\nprotocol: http\n"
            "load:\n  model: open\n  connections: 10\n  phases: [{duration: 1s, rate: 500/s}]\n"
        )
    )
    assert result.summary.errors == {}
    assert abs(result.summary.requests - 500) <= 25
    assert result.summary.latency_corrected_us is not None


def test_garbage_is_a_protocol_error(tmp_path: Path) -> None:
    from tests.adversarial.servers import bad_target

    with bad_target("corrupt") as (host, port):  # echoes the request back, mangled
        result = _run(f"{host}:{port}", "http", connections="2")
    assert result.summary.requests == 0
    assert set(result.summary.errors) == {"protocol"}


def test_http10_body_ended_by_close_is_a_response() -> None:
    from tests.adversarial.servers import bad_target

    with bad_target("http10") as (host, port):
        result = _run(f"{host}:{port}", "http", connections="2")
    summary = result.summary
    assert summary.errors == {}
    assert summary.requests > 10
    assert summary.connects >= summary.requests  # each response ended its connection


def test_http_response_cut_short_is_eof() -> None:
    from tests.adversarial.servers import bad_target

    with bad_target("http_cut") as (host, port):
        result = _run(f"{host}:{port}", "http", connections="2")
    assert result.summary.requests == 0
    assert set(result.summary.errors) == {"eof"}
    assert result.summary.errors["eof"] > 5
