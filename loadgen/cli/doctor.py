"""``loadgen doctor``: what this machine allows a load generator to do: backends, limits,
ports, and the clock latencies are timed with.

Pure inspection; nothing is changed. Linux facts come from /proc. On Windows they come from
Windows itself, never from /proc (under Wine, Z:\\proc is the Linux host's and would be
printed as if it were Windows'): the dynamic port range from ``netsh int ipv4 show
dynamicport tcp``, the system timer from NtQueryTimerResolution, and from one IOCP engine
whether client sockets can defer their port (SO_REUSE_UNICASTPORT) and whether the TCP
provider's sockets are IFS handles (so operations that succeed at once skip the port).
Windows has no descriptor limit for sockets.
"""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from loadgen.cli.common import console
from loadgen.engine import available_backends

#: Descriptors a process keeps for itself: stdio, the engine's ring/epoll fd, pipes.
RESERVED_FDS = 32
NOT_MEASURABLE = "not measurable here"


def _windows() -> bool:
    # A function, not an inline check: type checkers on Linux would call the rest unreachable.
    return sys.platform == "win32"


def _read_proc(path: str) -> str | None:
    if _windows():
        return None  # Wine maps /proc to the Linux host's: not this Windows' facts
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def _nofile() -> tuple[int, int] | None:
    try:
        import resource
    except ImportError:
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft, hard


def _windows_facts(iocp_available: bool) -> dict[str, Any]:
    """Timer resolution, Wine, and what one IOCP engine finds (None: could not be asked)."""
    from loadgen.engine import win32
    from loadgen.stats.clock import timer_resolution

    timer = timer_resolution()
    facts: dict[str, Any] = {
        "timer_resolution_ms": None
        if timer is None
        else {
            "current": timer.current_ms,
            "finest": timer.finest_ms,
            "coarsest": timer.coarsest_ms,
        },
        "wine": win32.wine_version(),
        "reuse_unicast_port": None,
        "ifs_handles": None,
    }
    if iocp_available:
        from loadgen.engine.iocp import IocpBackend

        engine = IocpBackend()
        try:
            handle = engine.tcp_socket()
            engine.bind(handle, ("0.0.0.0", 0))  # sets SO_REUSE_UNICASTPORT first
            engine.close(handle)
            facts["reuse_unicast_port"] = engine.reuse_unicast_port
            facts["ifs_handles"] = engine.ifs_handles()
        finally:
            engine.shutdown()
    return facts


def diagnose() -> dict[str, Any]:
    """A JSON-ready report of the machine's load-generation limits."""
    from loadgen.run.environment import os_description
    from loadgen.run.limits import PORT_RANGE_FILE, ephemeral_ports
    from loadgen.stats.clock import measuring_clock

    backends = available_backends()
    ports = ephemeral_ports()
    nofile = _nofile()
    clock = measuring_clock()
    limits: list[int] = []
    if nofile is not None:
        limits.append(nofile[1] - RESERVED_FDS)
    if ports is not None:
        limits.append(ports[1] - ports[0] + 1)
    port_source = "netsh int ipv4 show dynamicport tcp" if _windows() else PORT_RANGE_FILE
    report: dict[str, Any] = {
        "os": os_description(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "backends": {
            name: {"available": reason is None, "reason": reason}
            for name, reason in backends.items()
        },
        "clock": {
            "implementation": clock.implementation,
            "resolution_ns": clock.resolution_ns,
            "fine_enough": clock.fine_enough,
        },
        "io_uring_disabled": _read_proc("/proc/sys/kernel/io_uring_disabled"),
        "rlimit_nofile": {"soft": nofile[0], "hard": nofile[1]} if nofile else None,
        "ephemeral_ports": {
            "low": ports[0],
            "high": ports[1],
            "count": ports[1] - ports[0] + 1,
            "source": port_source,
        }
        if ports
        else None,
        "somaxconn": _read_proc("/proc/sys/net/core/somaxconn"),
        "tcp_fin_timeout_s": _read_proc("/proc/sys/net/ipv4/tcp_fin_timeout"),
        "max_connections_per_process": min(limits) if limits else None,
        "windows": _windows_facts(backends.get("iocp") is None) if _windows() else None,
        "notes": [],
    }
    notes: list[str] = report["notes"]
    if not clock.fine_enough:
        notes.append(
            f"the clock ticks every {clock.resolution_ns / 1000:,.1f} us: runs here are "
            "marked invalid for latency"
        )
    if nofile is not None:
        notes.append(
            f"one process can hold about {nofile[1] - RESERVED_FDS:,} sockets (RLIMIT_NOFILE "
            f"hard limit {nofile[1]:,}; loadgen raises the soft limit to it); more connections "
            "need more processes"
        )
    if ports is not None:
        notes.append(
            f"{ports[1] - ports[0] + 1:,} ephemeral ports per source address and target; "
            "beyond that spread connections over more 127.x.y.z source addresses"
        )
    if _windows():
        notes += _windows_notes(report["windows"], ports is not None)
    return report


def _windows_notes(facts: dict[str, Any], ports_known: bool) -> list[str]:
    notes = ["Windows: no descriptor limit for sockets"]
    if not ports_known:
        where = (
            " (Wine: the Linux host's /proc/sys/net/ipv4/ip_local_port_range applies)"
            if facts["wine"]
            else ""
        )
        notes.append(
            "the dynamic port range could not be read: `netsh int ipv4 show dynamicport tcp` "
            f"printed none{where}"
        )
    if facts["reuse_unicast_port"] is False:
        notes.append(
            "SO_REUSE_UNICASTPORT is refused (before Windows 10 1703): every client socket "
            "takes its own dynamic port, so about 16,384 connections is the machine's limit"
        )
    if facts["ifs_handles"] is False:
        notes.append(
            "the TCP provider's sockets are not IFS handles (a layered provider is "
            "installed): every operation completes through the port, a little slower"
        )
    timer = facts["timer_resolution_ms"]
    if timer is not None and timer["current"] > 1.0:
        notes.append(
            f"the system timer ticks every {timer['current']:g} ms now; loadgen raises it to "
            "1 ms for a run (timeBeginPeriod) so waits and pacing are not rounded to a tick"
        )
    return notes


def _yes_no(value: bool | None) -> str:
    return NOT_MEASURABLE if value is None else "yes" if value else "no"


def doctor(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """What this machine allows: backends, descriptor limit, ports, clock."""
    report = diagnose()
    if as_json:
        print(json.dumps(report, indent=2))
        return
    table = Table(show_header=False, box=None)
    for name, status in report["backends"].items():
        table.add_row(
            f"backend {name}",
            "[green]available[/]" if status["available"] else f"[red]no[/]: {status['reason']}",
        )
    table.add_row("os", report["os"])
    clock = report["clock"]
    table.add_row("clock", f"{clock['implementation']}, {clock['resolution_ns']:g} ns resolution")
    nofile = report["rlimit_nofile"]
    table.add_row(
        "RLIMIT_NOFILE", f"soft {nofile['soft']:,}, hard {nofile['hard']:,}" if nofile else "n/a"
    )
    ports = report["ephemeral_ports"]
    table.add_row(
        "ephemeral ports",
        f"{ports['low']}-{ports['high']} ({ports['count']:,}; {ports['source']})"
        if ports
        else NOT_MEASURABLE,
    )
    windows = report["windows"]
    if windows is not None:
        timer = windows["timer_resolution_ms"]
        table.add_row(
            "timer resolution",
            f"{timer['current']:g} ms now (finest {timer['finest']:g} ms)"
            if timer
            else NOT_MEASURABLE,
        )
        table.add_row("SO_REUSE_UNICASTPORT", _yes_no(windows["reuse_unicast_port"]))
        table.add_row("IFS handles (skip-on-success)", _yes_no(windows["ifs_handles"]))
        if windows["wine"]:
            table.add_row("wine", windows["wine"])
    limit = report["max_connections_per_process"]
    table.add_row("connections / process", f"{limit:,}" if limit else NOT_MEASURABLE)
    console.print(table)
    for note in report["notes"]:
        console.print(f"- {note}", highlight=False)
