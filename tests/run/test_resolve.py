"""Target names resolved once at the start of a run, each address tried in turn as a client
does (real sockets on loopback; the system resolver for real names)."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from loadgen.run.resolve import ResolveError, first_accepting, resolve_address, resolve_targets


@contextmanager
def _listening(family: socket.AddressFamily, address: str) -> Iterator[int]:
    with socket.socket(family, socket.SOCK_STREAM) as server:
        server.bind((address, 0))
        server.listen(8)
        yield server.getsockname()[1]


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


needs_ipv6 = pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback (::1) here")
V6, V4 = (socket.AF_INET6, "::1"), (socket.AF_INET, "127.0.0.1")


@needs_ipv6
def test_the_first_address_that_accepts_wins_in_the_resolvers_order() -> None:
    with _listening(socket.AF_INET, "127.0.0.1") as port:  # nothing on ::1 at this port
        assert first_accepting([V6, V4], port, 1.0) == "127.0.0.1"
    with _listening(socket.AF_INET6, "::1") as port:
        assert first_accepting([V6, V4], port, 1.0) == "::1"
        assert first_accepting([V4, V6], port, 1.0) == "::1"  # 127.0.0.1 refuses


def test_none_accepting_keeps_the_first_address() -> None:
    from tests.adversarial.servers import free_port

    port = free_port()  # the run then counts the refusals, as for any dead target
    assert first_accepting([V4, (socket.AF_INET, "127.0.0.2")], port, 1.0) == "127.0.0.1"


def test_names_and_addresses() -> None:
    assert resolve_address("127.0.0.1", 80, 1.0) == ("127.0.0.1", 80)
    assert resolve_address("::1", 80, 1.0) == ("::1", 80)  # an address is never looked up
    host, port = resolve_address("localhost", 80, 1.0)
    assert port == 80 and host in {"127.0.0.1", "::1"}
    notices: list[str] = []
    assert resolve_targets([("localhost", 8080)], 1.0, notices.append)[0][0] == host
    assert notices == [f"target localhost:8080 resolved to {host}"]
    message = re.escape("target host 'no-such-host.invalid' does not resolve")
    with pytest.raises(ResolveError, match=message):
        resolve_address("no-such-host.invalid", 80, 1.0)
