"""Source addresses (``source:``) checked before a run: each must be one this machine can
bind to. An address that is not assigned here (EADDRNOTAVAIL), or of a family the machine
lacks, would otherwise fail every connect of the run, which then reads as a target that
refuses everything or as a saturated generator."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence


def unusable_source(addresses: Sequence[str]) -> str | None:
    """Why one of ``addresses`` cannot be a source here (the first that cannot), or None.

    Each distinct address is bound once on an ephemeral port and closed at once: about
    10 µs each, so even the largest range a scenario allows (65,536) takes under a second."""
    for address in dict.fromkeys(addresses):
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        try:
            with socket.socket(family, socket.SOCK_STREAM) as probe:
                probe.bind((address, 0))
        except OSError as exc:
            return (
                f"{address} cannot be bound on this machine: {exc.strerror or exc} "
                "(a source must be an address of one of its interfaces)"
            )
    return None


def _family_name(address: str) -> str:
    return "IPv6" if ":" in address else "IPv4"


def mismatched_source(sources: Sequence[str], targets: Sequence[tuple[str, int]]) -> str | None:
    """Why ``sources`` cannot reach one of ``targets`` (the first that they cannot), or None.

    A socket binds and connects in one address family: each target needs at least one
    source of its own (an IPv4 source for an IPv6 target would fail every connect). Host
    names are resolved only when the run starts, so only address targets are checked."""
    if not sources:
        return None
    families = {_family_name(source) for source in sources}
    for host, port in targets:
        try:
            ipaddress.ip_address(host)
        except ValueError:
            continue  # a name: its family is known only once resolved
        if _family_name(host) not in families:
            shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            have = " and ".join(sorted(families))
            return (
                f"target {shown} is {_family_name(host)} but every source is {have} "
                "(a connection binds and connects in one address family: give a source "
                "of the target's family)"
            )
    return None
