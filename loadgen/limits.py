"""Whether this machine can hold a connection count at all, checked before a run starts.

Two limits end a run that asks for too many connections, and both fail late and
confusingly (EMFILE or EADDRNOTAVAIL thousands of connections in), so they are checked up
front and refused with a message that names the limit and how to raise it:

* **File descriptors** (``RLIMIT_NOFILE``, Linux/Unix): every socket is a descriptor. The
  soft limit is raised to the hard limit here when the count needs it (any process may do
  that); past the hard limit only root can help (``ulimit -Hn``, ``LimitNOFILE=`` for a
  systemd unit, ``nofile`` in /etc/security/limits.conf), or the connections must be
  spread over more processes. A built-in target holds as many sockets in its own process
  and meets the same limit. Windows has no descriptor limit for sockets.
* **Ephemeral ports** (/proc/sys/net/ipv4/ip_local_port_range, 32768-60999 by default:
  28,232 ports): each connection to one target from one source address needs its own local
  port. The engines bind source addresses with ``IP_BIND_ADDRESS_NO_PORT``, so the ports
  multiply by source addresses times targets. Raise it with ``sysctl -w
  net.ipv4.ip_local_port_range="1024 65535"`` (root) or give more ``source`` addresses
  (127.0.0.0/8 is all loopback). Windows' dynamic range (``netsh int ipv4 show dynamicport
  tcp``) is not read here, so only Linux counts are checked against ports.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from loadgen.scenario import Scenario

#: Descriptors a process keeps besides its sockets: stdio, the engine's ring or epoll fd,
#: the built-in target's pipes, imports.
RESERVED_FDS = 64
PORT_RANGE_FILE = "/proc/sys/net/ipv4/ip_local_port_range"


class ConnectionLimitError(ValueError):
    """A connection count this machine cannot hold; ``str()`` names the limit and the fix."""


def nofile_limits() -> tuple[int, int] | None:
    """(soft, hard) RLIMIT_NOFILE, or None where there is no such limit (Windows)."""
    try:
        import resource
    except ImportError:
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft, hard


def ephemeral_ports(path: str = PORT_RANGE_FILE) -> tuple[int, int] | None:
    """(low, high) of the local port range, or None where it cannot be read."""
    try:
        low, high = (int(part) for part in Path(path).read_text().split())
    except (OSError, ValueError):
        return None
    return low, high


def _unlimited(value: int) -> bool:
    try:
        import resource
    except ImportError:
        return True
    return value == resource.RLIM_INFINITY


def check_descriptors(connections: int, *, raise_soft: bool = True) -> None:
    """Refuse ``connections`` past the hard descriptor limit; lift the soft one to fit."""
    limits = nofile_limits()
    if limits is None:
        return
    soft, hard = limits
    needed = connections + RESERVED_FDS
    if not _unlimited(hard) and needed > hard:
        raise ConnectionLimitError(
            f"{connections:,} connections need about {needed:,} file descriptors in one "
            f"process, but RLIMIT_NOFILE is {soft:,} (soft) / {hard:,} (hard); loadgen "
            f"raises the soft limit up to the hard one, and at most {hard - RESERVED_FDS:,} "
            "connections fit. Raise the hard limit as root (`ulimit -Hn N` in the shell that "
            "starts loadgen, LimitNOFILE= for a systemd unit, or nofile in "
            "/etc/security/limits.conf), or use fewer connections per run"
        )
    if raise_soft and not _unlimited(soft) and needed > soft:
        import resource

        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, needed), hard))


def check_ports(
    connections: int, sources: int, targets: int, *, port_range: tuple[int, int] | None = None
) -> None:
    """Refuse more connections than local ports for (source address, target) pairs."""
    ports = port_range if port_range is not None else ephemeral_ports()
    if ports is None:
        return
    low, high = ports
    per_pair = high - low + 1
    capacity = per_pair * max(1, sources) * max(1, targets)
    if connections > capacity:
        raise ConnectionLimitError(
            f"{connections:,} connections need more local ports than this machine gives: "
            f"the ephemeral port range is {low}-{high} ({per_pair:,} ports per source "
            f"address and target), {max(1, sources)} source address(es) x {max(1, targets)} "
            f"target(s) = {capacity:,}. Give more source addresses (source: "
            "127.0.0.2-127.0.0.9), or widen the range as root: sysctl -w "
            'net.ipv4.ip_local_port_range="1024 65535"'
        )


def check_connections(connections: int, sources: int = 0, targets: int = 1) -> None:
    """Both checks (descriptors first: the one a single process meets soonest); raises
    ``ConnectionLimitError`` for a count that cannot fit."""
    check_descriptors(connections)
    check_ports(connections, sources, targets)


def peak_connections(scenario: Scenario) -> int:
    """The most connections a scenario holds at once (its pool, over every phase)."""
    plan = scenario.plan  # the same count as runner.client_config's pool
    if plan.model == "closed" and any(p.connections is not None for p in plan.phases):
        return max(max(p.connections or (plan.connections,)) for p in plan.phases)
    return plan.connections


def check_scenario(scenario: Scenario) -> None:
    """``check_connections`` for a scenario's peak count, sources and targets."""
    check_connections(
        peak_connections(scenario), len(scenario.source_addresses()), len(scenario.targets)
    )
