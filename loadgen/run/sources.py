"""Source addresses (``source:``) checked before a run: each must be one this machine can
bind to. An address that is not assigned here (EADDRNOTAVAIL), or of a family the machine
lacks, would otherwise fail every connect of the run, which then reads as a target that
refuses everything or as a saturated generator."""

from __future__ import annotations

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
