"""Windows' dynamic port range: read from netsh (never from a /proc that Wine maps to the
Linux host), and refusals that tell a Windows user how to widen it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from loadgen.run.limits import (
    PORT_RANGE_FILE,
    ConnectionLimitError,
    check_ports,
    ephemeral_ports,
    parse_netsh_dynamic_ports,
)

#: What `netsh int ipv4 show dynamicport tcp` prints on Windows 10/11 (English, German).
NETSH_EN = """
Protocol tcp Dynamic Port Range
---------------------------------
Start Port      : 49152
Number of Ports : 16384
"""
NETSH_DE = """
Protokoll tcp Dynamischer Portbereich
---------------------------------
Startport       : 10000
Anzahl der Ports: 55536
"""


def test_netsh_output_gives_the_range_in_any_language() -> None:
    assert parse_netsh_dynamic_ports(NETSH_EN) == (49152, 65535)
    assert parse_netsh_dynamic_ports(NETSH_DE) == (10000, 65535)
    assert parse_netsh_dynamic_ports("") is None  # Wine's netsh prints nothing
    assert parse_netsh_dynamic_ports("Start Port : 60000\nNumber of Ports : 16384\n") is None


@pytest.mark.skipif(sys.platform != "win32", reason="Windows' answer (Wine here)")
def test_windows_never_reads_the_port_range_from_proc() -> None:
    linux = Path(PORT_RANGE_FILE)  # under Wine, Z:\proc is the Linux host's
    ports = ephemeral_ports()
    if linux.exists():
        assert ports is None or ports != tuple(int(p) for p in linux.read_text().split())
    assert ephemeral_ports(PORT_RANGE_FILE) == ports  # the path is Linux's, not read here


@pytest.mark.skipif(sys.platform != "win32", reason="Windows' refusal (Wine here)")
def test_a_windows_refusal_names_netsh() -> None:
    with pytest.raises(ConnectionLimitError, match="netsh int ipv4 set dynamicport tcp"):
        check_ports(20_000, 1, 1, port_range=(49152, 65535))
