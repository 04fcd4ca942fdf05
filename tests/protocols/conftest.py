"""Real servers for the protocol tests, one per test session each: nginx, redis-server and
the built-in HTTP target (``loadgen serve http``, once per available engine backend)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from loadgen.engine import available_backends
from loadgen.targets.process import builtin_target

from .. import servers

_ONLY = [n for n in os.environ.get("LOADGEN_TEST_BACKENDS", "").split(",") if n]
BACKENDS = [name for name, reason in available_backends(_ONLY or None).items() if reason is None]


@pytest.fixture(scope="session")
def nginx_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    with servers.nginx(tmp_path_factory.mktemp("nginx")) as port:
        yield port


@pytest.fixture(scope="session")
def redis_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    with servers.redis(tmp_path_factory.mktemp("redis")) as port:
        yield port


@pytest.fixture(scope="session", params=BACKENDS)
def http_target(request: pytest.FixtureRequest) -> Iterator[tuple[str, int]]:
    """``loadgen serve http`` in its own process, as a run starts it (builtin:http)."""
    with builtin_target("http", backend=request.param) as address:
        yield address
