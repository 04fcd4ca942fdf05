"""``loadgen doctor``: what this machine allows a load generator to do: backends, limits, ports.

Pure inspection; nothing is changed. Linux facts come from /proc; on Windows the limits
that matter are different (no descriptor limit; the dynamic port range is netsh's) and
are reported as not measurable rather than guessed.
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


def _read_proc(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def _port_range() -> tuple[int, int] | None:
    text = _read_proc("/proc/sys/net/ipv4/ip_local_port_range")
    if not text:
        return None
    low, high = (int(part) for part in text.split())
    return low, high


def _nofile() -> tuple[int, int] | None:
    try:
        import resource
    except ImportError:
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft, hard


def diagnose() -> dict[str, Any]:
    """A JSON-ready report of the machine's load-generation limits."""
    from loadgen.run.environment import os_description

    backends = available_backends()
    ports = _port_range()
    nofile = _nofile()
    limits: list[int] = []
    if nofile is not None:
        limits.append(nofile[1] - RESERVED_FDS)
    if ports is not None:
        limits.append(ports[1] - ports[0] + 1)
    report: dict[str, Any] = {
        "os": os_description(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "backends": {
            name: {"available": reason is None, "reason": reason}
            for name, reason in backends.items()
        },
        "io_uring_disabled": _read_proc("/proc/sys/kernel/io_uring_disabled"),
        "rlimit_nofile": {"soft": nofile[0], "hard": nofile[1]} if nofile else None,
        "ephemeral_ports": {"low": ports[0], "high": ports[1], "count": ports[1] - ports[0] + 1}
        if ports
        else None,
        "somaxconn": _read_proc("/proc/sys/net/core/somaxconn"),
        "tcp_fin_timeout_s": _read_proc("/proc/sys/net/ipv4/tcp_fin_timeout"),
        "max_connections_per_process": min(limits) if limits else None,
        "notes": [],
    }
    notes: list[str] = report["notes"]
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
    if sys.platform == "win32":
        notes.append(
            "Windows: no descriptor limit; port range is `netsh int ipv4 show "
            "dynamicport tcp` (not read here)"
        )
    return report


def doctor(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """What this machine allows: backends, descriptor limit, ports."""
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
    nofile = report["rlimit_nofile"]
    table.add_row(
        "RLIMIT_NOFILE", f"soft {nofile['soft']:,}, hard {nofile['hard']:,}" if nofile else "n/a"
    )
    ports = report["ephemeral_ports"]
    table.add_row(
        "ephemeral ports",
        f"{ports['low']}-{ports['high']} ({ports['count']:,})" if ports else "not measurable here",
    )
    limit = report["max_connections_per_process"]
    table.add_row("connections / process", f"{limit:,}" if limit else "not measurable here")
    console.print(table)
    for note in report["notes"]:
        console.print(f"- {note}", highlight=False)
