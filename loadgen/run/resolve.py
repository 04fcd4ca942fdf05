"""Target host names to addresses, once, at the start of a run.

An IP address is used as it is. A name is resolved with ``getaddrinfo`` (TCP), which lists
its addresses in the order the system prefers (RFC 6724: IPv6 first where it is routed,
``/etc/gai.conf``); they are tried in that order with a plain connect, as a client such as
curl does, and the first that accepts is the run's address for that target. The connection
of that probe is closed at once. When none accepts, the first address is used anyway: the
run then counts the refusals (a dead target is a result, not a failure to start).

Every connection of the run then goes to that one address: the run measures the target,
not the resolver (a name that resolves to several servers is load-balanced by the target's
side, or listed as several targets).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence

Notice = Callable[[str], None]


class ResolveError(RuntimeError):
    """A target's host name does not resolve; the message names it and says why."""


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _candidates(host: str, port: int) -> list[tuple[socket.AddressFamily, str]]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ResolveError(f"target host {host!r} does not resolve: {exc.strerror}") from None
    found: dict[tuple[socket.AddressFamily, str], None] = {}
    for family, _, _, _, sockaddr in infos:
        if family in (socket.AF_INET, socket.AF_INET6):
            found[(family, str(sockaddr[0]))] = None
    if not found:
        raise ResolveError(f"target host {host!r} has no IPv4 or IPv6 address")
    return list(found)


def _accepts(family: socket.AddressFamily, address: str, port: int, timeout_s: float) -> bool:
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.settimeout(timeout_s)
            probe.connect((address, port))
    except OSError:
        return False
    return True


def first_accepting(
    candidates: Sequence[tuple[socket.AddressFamily, str]], port: int, timeout_s: float
) -> str:
    """The first of ``candidates`` (in order) that accepts a connection on ``port`` within
    ``timeout_s`` each; the first one when none does (one alone is not probed)."""
    if len(candidates) > 1:
        for family, address in candidates:
            if _accepts(family, address, port, timeout_s):
                return address
    return candidates[0][1]


def resolve_address(host: str, port: int, timeout_s: float) -> tuple[str, int]:
    """(address, port) for one target: an IP address as it is; a name's first address
    that accepts a connection (``first_accepting``)."""
    if _is_address(host):
        return host, port
    return first_accepting(_candidates(host, port), port, timeout_s), port


def resolve_targets(
    targets: Sequence[tuple[str, int]], timeout_s: float, notice: Notice | None = None
) -> list[tuple[str, int]]:
    """Every target's address (``resolve_address``); a notice names each name resolved."""
    resolved = []
    for host, port in targets:
        address = resolve_address(host, port, timeout_s)
        if notice is not None and address[0] != host:
            notice(f"target {host}:{port} resolved to {address[0]}")
        resolved.append(address)
    return resolved
