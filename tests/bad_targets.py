"""Moved to ``tests.adversarial.servers`` (the misbehaving servers live beside the suite
that runs every backend and receive mode against them); kept so imports of the old name
keep working."""

from tests.adversarial.servers import (
    ABSURD_STREAM_BYTES,
    BEHAVIOURS,
    HUGE_BULK_BYTES,
    bad_target,
    free_port,
)

__all__ = ["ABSURD_STREAM_BYTES", "BEHAVIOURS", "HUGE_BULK_BYTES", "bad_target", "free_port"]
