"""Whether this machine can hold a connection count, checked (and fitted) before a run starts.

Three limits end a run that asks for too many connections, and all fail late and
confusingly (EMFILE, EADDRNOTAVAIL or the OOM killer thousands of connections in), so they
are checked up front. ``fit_run`` spreads what can be spread (more client processes, more
built-in target processes, more loopback source addresses) and refuses the rest with a
message that names the limit and how to raise it:

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
  (127.0.0.0/8 is all loopback). On Windows the range is the dynamic port range that
  ``netsh int ipv4 show dynamicport tcp`` prints (49152-65535 by default: 16,384 ports);
  the IOCP engine sets SO_REUSE_UNICASTPORT (Windows 10 1703 and later), so there too a
  port is taken per (source address, target) at connect time and the same arithmetic
  holds. It is widened as an administrator with ``netsh int ipv4 set dynamicport tcp
  start=N num=M``. Where netsh prints no range (Wine: the Linux host's range applies
  there), nothing is checked. A churn run that closes with FIN also holds each closed port
  in TIME_WAIT (60 s; about 2 s where ``tcp_tw_reuse`` applies, as it does to loopback by
  default); ``close: rst`` holds none.
* **Memory**: an estimate from the costs measured at 50,000 connections here (README,
  "Tens of thousands of connections") against MemAvailable.
"""

from __future__ import annotations

import ipaddress
import math
import re
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from loadgen.config.plan import LoadPlan
from loadgen.config.receive import ReceiveMode
from loadgen.config.scenario import Scenario

#: Descriptors a process keeps besides its sockets: stdio, the engine's ring or epoll fd,
#: the built-in target's pipes, imports.
RESERVED_FDS = 64
PORT_RANGE_FILE = "/proc/sys/net/ipv4/ip_local_port_range"
#: Where Windows says its dynamic port range; how long to wait for it (netsh starts in well
#: under a second, but a cold machine or Wine may take a few).
NETSH_DYNAMIC_PORTS = ("netsh", "int", "ipv4", "show", "dynamicport", "tcp")
NETSH_TIMEOUT_S = 15.0


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


def _windows() -> bool:
    # A function, not an inline check: type checkers on Linux would call the rest unreachable.
    return sys.platform == "win32"


def parse_netsh_dynamic_ports(text: str) -> tuple[int, int] | None:
    """(low, high) from ``netsh int ipv4 show dynamicport tcp``'s output, in any language:
    its two ``label : number`` lines are the start port and the number of ports."""
    numbers = [int(n) for n in re.findall(r":\s*(\d+)\s*$", text, re.MULTILINE)]
    if len(numbers) != 2:
        return None
    start, count = numbers
    if not (0 < start <= 65535 and count > 0 and start + count - 1 <= 65535):
        return None
    return start, start + count - 1


def windows_dynamic_ports() -> tuple[int, int] | None:
    """Windows' TCP dynamic port range as netsh prints it; None where it prints none."""
    try:
        completed = subprocess.run(
            NETSH_DYNAMIC_PORTS,
            capture_output=True,
            text=True,
            timeout=NETSH_TIMEOUT_S,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return parse_netsh_dynamic_ports(completed.stdout)


def widen_ports_hint() -> str:
    """How to widen the local port range on this OS (both need an administrator)."""
    if _windows():
        return (
            "widen the dynamic range as an administrator: "
            "netsh int ipv4 set dynamicport tcp start=1025 num=64511"
        )
    return 'widen the range as root: sysctl -w net.ipv4.ip_local_port_range="1024 65535"'


def ephemeral_ports(path: str = PORT_RANGE_FILE) -> tuple[int, int] | None:
    """(low, high) of the local port range: ``path`` on Linux, the dynamic port range
    (netsh) on Windows; None where it cannot be read."""
    if _windows():
        return windows_dynamic_ports()
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
    # Connection i goes to sources[i % S] and targets[i % T]: lcm(S, T) distinct pairs.
    capacity = per_pair * math.lcm(max(1, sources), max(1, targets))
    if connections > capacity:
        raise ConnectionLimitError(
            f"{connections:,} connections need more local ports than this machine gives: "
            f"the ephemeral port range is {low}-{high} ({per_pair:,} ports per source "
            f"address and target), {max(1, sources)} source address(es) and {max(1, targets)} "
            f"target(s) (connection i pairs source i mod S with target i mod T: "
            f"lcm(S, T) pairs) = {capacity:,}. Give more source addresses (source: "
            f"127.0.0.2-127.0.0.9), or {widen_ports_hint()}"
        )


def check_connections(connections: int, sources: int = 0, targets: int = 1) -> None:
    """Both checks for one process (descriptors first: the one a single process meets
    soonest); raises ``ConnectionLimitError`` for a count that cannot fit."""
    check_descriptors(connections)
    check_ports(connections, sources, targets)


# --- fitting a run to the machine: spread what can be spread, refuse the rest ---------------

#: Linux holds a closed connection's port in TIME_WAIT for TCP_TIMEWAIT_LEN, 60 s, fixed
#: at compile time (no sysctl changes it).
TIME_WAIT_S = 60.0
#: With net.ipv4.tcp_tw_reuse = 1 (any traffic) or 2 (the default: loopback only) and TCP
#: timestamps on, connect() may reuse a TIME_WAIT port once tcp_tw_reuse_delay (1,000 ms by
#: default) has passed since its last timestamp; rounded up to whole seconds, plus one.
TW_REUSE_FILE = "/proc/sys/net/ipv4/tcp_tw_reuse"
TW_REUSE_DELAY_FILE = "/proc/sys/net/ipv4/tcp_tw_reuse_delay"
TIMESTAMPS_FILE = "/proc/sys/net/ipv4/tcp_timestamps"
#: SO_REUSEPORT picks a listener by a hash of the connection's 4-tuple, so the target's
#: processes get about equal shares, not exact ones: leave this much headroom per process.
REUSEPORT_HEADROOM = 1.1
#: Automatic source spreading fills each source address's ports only to this share: the
#: kernel's search for a free port walks the range, so a nearly full one slows every connect.
AUTO_SOURCE_SHARE = 0.5
#: Where automatic source addresses start (all of 127.0.0.0/8 is loopback on Linux).
AUTO_SOURCE_FIRST = ipaddress.IPv4Address("127.0.0.1")
#: Closed-model churn rate one client process can reach (connect, one echo, close),
#: the ceiling assumed for its TIME_WAIT need when the rate is not given (measured here:
#: see README, "Tens of thousands of connections").
CLOSED_CHURN_PER_PROCESS = 10_000
#: Memory estimate per connection (bytes), measured here (README): the client's Python
#: slot and codec; the kernel's two sockets of a loopback connection with their queues;
#: a built-in target's per-connection state besides its 16 KiB buffer.
CLIENT_SLOT_BYTES = 5 * 1024  # RSS: 3.3 KiB idle, 4.1-4.2 KiB under traffic (zero-byte)
KERNEL_PER_CONNECTION_BYTES = 13 * 1024  # 6.7-7.3 KiB idle, 11.2-12.5 KiB under traffic
TARGET_SLOT_BYTES = 4 * 1024
#: What one loadgen process (interpreter, numpy, pydantic, the engine) costs before sockets.
PROCESS_BYTES = 80 * 1024 * 1024
MEMINFO_FILE = "/proc/meminfo"


def _read_int(path: str) -> int | None:
    try:
        return int(Path(path).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def mem_available(path: str = MEMINFO_FILE) -> int | None:
    """MemAvailable in bytes, or None where /proc/meminfo is not there."""
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def time_wait_hold_s(loopback: bool) -> float:
    """How long a port closed with FIN stays unusable for a new connect to the same target."""
    reuse = _read_int(TW_REUSE_FILE)
    timestamps = _read_int(TIMESTAMPS_FILE)
    if timestamps and (reuse == 1 or (reuse == 2 and loopback)):
        delay_ms = _read_int(TW_REUSE_DELAY_FILE)
        return math.ceil((delay_ms if delay_ms is not None else 1000) / 1000) + 1.0
    return TIME_WAIT_S


def _addresses(host: str) -> list[str]:
    """``host``'s addresses: an IP address as it is, a name as the resolver lists it for a
    TCP client (``getaddrinfo``: /etc/hosts first, so ``localhost`` costs no lookup); none
    for a name that does not resolve (the run says so when it starts)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return [host]
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return []
    return [str(sockaddr[0]) for *_, sockaddr in infos]


def _is_loopback_v4(host: str) -> bool:
    """True when every address ``host`` names is IPv4 loopback (``localhost`` is, where
    it resolves to 127.0.0.1 only). A name that also has an IPv6 address is not: the run
    may connect over IPv6, where 127.0.0.x source addresses cannot be bound."""
    addresses = _addresses(host)
    return bool(addresses) and all(
        (address := ipaddress.ip_address(text)).version == 4 and address.is_loopback
        for text in addresses
    )


def targets_are_loopback(scenario: Scenario) -> bool:
    """True for a built-in target (127.0.0.1) or IPv4 loopback targets only (host names
    resolved: ``_is_loopback_v4``)."""
    if scenario.builtin_target is not None:
        return True
    try:
        return all(_is_loopback_v4(host) for host, _ in scenario.target_addresses())
    except ValueError:
        return False


@dataclass(frozen=True)
class Machine:
    """The limits a run is fitted to (read from this machine by ``Machine.here``)."""

    nofile_hard: int | None  # None: no descriptor limit (Windows, or RLIM_INFINITY)
    port_range: tuple[int, int] | None
    mem_available: int | None
    reuse_port: bool = True
    time_wait_s: float | None = None  # None: read per run (depends on the target)

    @classmethod
    def here(cls) -> Machine:
        from loadgen.targets.scaled import reuse_port_supported

        limits = nofile_limits()
        hard = None if limits is None or _unlimited(limits[1]) else limits[1]
        return cls(hard, ephemeral_ports(), mem_available(), reuse_port_supported())

    @property
    def ports_per_pair(self) -> int | None:
        if self.port_range is None:
            return None
        return self.port_range[1] - self.port_range[0] + 1


@dataclass(frozen=True)
class Fit:
    """A run fitted to the machine: the scenario (maybe with source addresses added), the
    client and target process counts (maybe raised), and what was changed and why."""

    scenario: Scenario
    processes: int
    target_processes: int
    notices: list[str] = field(default_factory=list)


_NOFILE_HELP = (
    "Raise the hard limit as root (`ulimit -Hn N` in the shell that starts loadgen, "
    "LimitNOFILE= for a systemd unit, or nofile in /etc/security/limits.conf)"
)


def _processes_for_descriptors(connections: int, hard: int, headroom: float = 1.0) -> int:
    per_process = hard - RESERVED_FDS
    if per_process < 1:
        raise ConnectionLimitError(
            f"RLIMIT_NOFILE's hard limit is {hard:,}: no room for sockets besides the "
            f"{RESERVED_FDS} descriptors a process keeps. {_NOFILE_HELP}"
        )
    if connections <= per_process:
        return 1  # one process holds them all: no spread, no headroom needed
    return math.ceil(connections * headroom / per_process)


def churn_rate(plan: LoadPlan, processes: int) -> float:
    """Connections closed per second by a churn run (0 without requests_per_connection):
    the open model's highest rate / requests per connection; in the closed model at most
    ``CLOSED_CHURN_PER_PROCESS`` a process, and in a phase with a think time at most each of
    the phase's connections once per its think time (the busiest phase counts)."""
    per_connection = plan.requests_per_connection
    if per_connection is None:
        return 0.0
    if plan.open_model:
        return plan.highest_rate / per_connection
    ceiling = float(CLOSED_CHURN_PER_PROCESS * processes)
    busiest = max(
        (
            min(ceiling, phase.peak_connections / phase.think_time_s)
            if phase.think_time_s
            else ceiling
            for phase in plan.phases
            if not phase.idle  # an idle phase sends nothing, so closes nothing
        ),
        default=0.0,
    )
    return busiest / per_connection


def ports_needed(scenario: Scenario, processes: int, hold_s: float) -> tuple[int, float]:
    """(local ports one run needs at once, its churn rate): the connections held, plus
    what TIME_WAIT keeps for ``hold_s`` after each FIN close of a churn run."""
    plan = LoadPlan.from_scenario(scenario)
    rate = churn_rate(plan, processes) if scenario.close == "fin" else 0.0
    return plan.peak_connections + math.ceil(rate * hold_s), rate


def auto_sources(count: int) -> list[str]:
    """``count`` loopback source addresses from 127.0.0.1 on, as one range."""
    last = AUTO_SOURCE_FIRST + (count - 1)
    return [str(AUTO_SOURCE_FIRST) if count == 1 else f"{AUTO_SOURCE_FIRST}-{last}"]


def fit_run(
    scenario: Scenario,
    processes: int,
    target_processes: int = 1,
    *,
    processes_fixed: bool = False,
    target_processes_fixed: bool = False,
    machine: Machine | None = None,
) -> Fit:
    """Fit ``scenario`` on ``processes`` client processes (and ``target_processes`` for a
    built-in target) to this machine's limits, before anything starts.

    * Descriptors are per process: each client process holds its share of the connections,
      each target process about its share (SO_REUSEPORT, with ``REUSEPORT_HEADROOM``). A
      count that was not given (``*_fixed`` False) is raised to fit, with a notice; one
      that was given and is too small is refused, naming the count that fits.
    * Ports: each (source address, target) pair has the ephemeral range; a churn run that
      closes with FIN also needs the ports TIME_WAIT holds. Without ``source`` and with
      loopback targets, the run is spread over 127.0.0.x source addresses (a notice says
      so); otherwise it is refused, naming the range and the ways to widen it.
    * Memory: an estimate (per-connection buffers, kernel sockets, processes) against
      MemAvailable; a run that cannot fit is refused with the numbers.
    """
    machine = machine or Machine.here()
    notices: list[str] = []
    peak = LoadPlan.from_scenario(scenario).peak_connections
    builtin = scenario.builtin_target is not None
    processes = max(1, min(processes, peak))
    hard = machine.nofile_hard
    if hard is not None:
        wanted = _processes_for_descriptors(peak, hard)
        if wanted > processes:
            reason = (
                f"{peak:,} connections need {wanted} client processes: each process may "
                f"hold {hard - RESERVED_FDS:,} sockets (RLIMIT_NOFILE hard limit {hard:,}, "
                f"less {RESERVED_FDS} kept for other descriptors)"
            )
            if processes_fixed:
                raise ConnectionLimitError(
                    f"{reason}, and --processes is {processes}. Run with --processes "
                    f"{wanted} (or more), or: {_NOFILE_HELP}"
                )
            notices.append(f"{reason}: running {wanted} client processes")
            processes = wanted
        if builtin:
            wanted = _processes_for_descriptors(peak, hard, REUSEPORT_HEADROOM)
            if wanted > target_processes:
                reason = (
                    f"the built-in target accepts {peak:,} connections and needs {wanted} "
                    f"processes for them (SO_REUSEPORT spreads connections about evenly; "
                    f"{hard - RESERVED_FDS:,} sockets a process, "
                    f"{round((REUSEPORT_HEADROOM - 1) * 100)}% headroom for the uneven spread)"
                )
                if not machine.reuse_port:
                    raise ConnectionLimitError(
                        f"{reason}, but this OS has no SO_REUSEPORT: one target process "
                        f"holds at most {hard - RESERVED_FDS:,}. Use a target of your own or "
                        f"fewer connections, or: {_NOFILE_HELP}"
                    )
                if target_processes_fixed:
                    raise ConnectionLimitError(
                        f"{reason}, and --target-processes is {target_processes}. Run with "
                        f"--target-processes {wanted} (or more), or: {_NOFILE_HELP}"
                    )
                notices.append(f"{reason}: running {wanted} target processes")
                target_processes = wanted
    scenario = _fit_ports(scenario, processes, machine, notices)
    check_memory(scenario, processes, target_processes if builtin else 0, machine)
    return Fit(scenario, processes, target_processes, notices)


def _fit_ports(
    scenario: Scenario, processes: int, machine: Machine, notices: list[str]
) -> Scenario:
    per_pair = machine.ports_per_pair
    if per_pair is None:
        return scenario
    loopback = targets_are_loopback(scenario)
    hold_s = machine.time_wait_s
    if hold_s is None:
        hold_s = time_wait_hold_s(loopback)
    needed, rate = ports_needed(scenario, processes, hold_s)
    peak = LoadPlan.from_scenario(scenario).peak_connections
    sources = scenario.source_addresses()
    targets = len(scenario.targets)
    assert machine.port_range is not None
    low, high = machine.port_range
    churn = ""
    if rate:
        churn = (
            f" ({peak:,} held at once plus {math.ceil(rate * hold_s):,} "
            f"in TIME_WAIT: about {rate:,.0f} closes/s, each port held {hold_s:g} s)"
        )
    if sources:
        shards = processes if len(sources) >= processes else 1
        pairs = math.lcm(max(1, len(sources) // shards), targets)
        if needed > per_pair * pairs * shards:
            raise ConnectionLimitError(
                f"{needed:,} local ports are needed{churn}, but {len(sources)} source "
                f"address(es) and {targets} target(s) give {per_pair * pairs * shards:,} "
                f"(the ephemeral range is {low}-{high}: {per_pair:,} ports per source "
                "address and target). Give more source addresses (source: "
                "127.0.0.1-127.0.0.64 for a loopback target), close with RST (close: rst: "
                f"no TIME_WAIT), or {widen_ports_hint()}"
            )
        return scenario
    if needed <= per_pair * targets:
        return scenario
    if not loopback:
        raise ConnectionLimitError(
            f"{needed:,} local ports are needed{churn}, but one source address gives "
            f"{per_pair:,} per target ({low}-{high}) and {targets} target(s) "
            f"{per_pair * targets:,}. Give source addresses this host owns (source: "
            "A-B, spread with IP_BIND_ADDRESS_NO_PORT), close with RST (close: rst: no "
            f"TIME_WAIT), or {widen_ports_hint()}"
        )
    budget = max(1, int(per_pair * AUTO_SOURCE_SHARE))
    per_shard = math.ceil(needed / processes)
    count = processes * math.ceil(per_shard / (budget * targets))
    spread = auto_sources(count)
    notices.append(
        f"{needed:,} local ports are needed{churn}, more than one source address has per "
        f"target ({per_pair:,}: {low}-{high}): spreading the connections over {count} "
        f"loopback source addresses ({spread[0]}, at most {budget:,} ports each)"
    )
    return scenario.model_copy(update={"source": spread})


def estimate_memory(scenario: Scenario, processes: int, target_processes: int) -> int:
    """Bytes a run needs at its peak, from the measured per-connection costs: the client's
    receive buffers (buffered mode; buffer-ring's one shared ring a process), its slots,
    the kernel's sockets, a built-in target's 16 KiB buffer and state (``target_processes``
    0: not on this machine as far as loadgen knows), and each process's own footprint."""
    peak = LoadPlan.from_scenario(scenario).peak_connections
    per_connection = CLIENT_SLOT_BYTES + KERNEL_PER_CONNECTION_BYTES
    shared = 0
    if scenario.receive == ReceiveMode.BUFFERED:
        per_connection += scenario.receive_buffer
    elif scenario.receive == ReceiveMode.BUFFER_RING:
        shared = processes * scenario.ring_buffer_count * scenario.receive_buffer
    if target_processes:
        from loadgen.targets.echo import SERVER_BUFFER_BYTES

        per_connection += SERVER_BUFFER_BYTES + TARGET_SLOT_BYTES
    return peak * per_connection + shared + (processes + target_processes) * PROCESS_BYTES


def check_memory(
    scenario: Scenario, processes: int, target_processes: int, machine: Machine
) -> None:
    """Refuse a run whose estimated memory is more than MemAvailable."""
    if machine.mem_available is None:
        return
    need = estimate_memory(scenario, processes, target_processes)
    if need <= machine.mem_available:
        return
    peak = LoadPlan.from_scenario(scenario).peak_connections
    mib = 1024 * 1024
    buffer = (
        f"a {scenario.receive_buffer // 1024} KiB receive buffer each (buffered), "
        if scenario.receive == ReceiveMode.BUFFERED
        else ""
    )
    raise ConnectionLimitError(
        f"{peak:,} connections need about {need / mib:,.0f} MiB ({buffer}about "
        f"{KERNEL_PER_CONNECTION_BYTES // 1024} KiB of kernel sockets each on loopback, "
        f"{processes + target_processes} processes), but MemAvailable is "
        f"{machine.mem_available / mib:,.0f} MiB. Use fewer connections, a smaller "
        "receive_buffer, or receive: zero-byte or buffer-ring (no buffer per connection)"
    )
