"""The Linux kernel-memory sampler, on the real /proc of this machine (no stand-ins)."""

from __future__ import annotations

import json
import os
import socket
import statistics
import sys
import time
from pathlib import Path

import pytest

from loadgen.stats import memory
from loadgen.stats.memory import LinuxMemorySample, sample, sample_memory

# Linux-only (skipped below), but Windows must still collect it: no `resource` there.
resource = pytest.importorskip("resource", reason="RLIMIT_NOFILE: a Unix module, not on Windows")
pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads Linux's /proc")

SLABINFO_READABLE = os.access(memory.SLABINFO, os.R_OK)
PAIRS = 1000  # loopback connections: 2,000 TCP sockets (client and accepted ends)


def test_every_field_is_plausible() -> None:
    keep = socket.socket()  # at least one live TCP socket, so the TCP cache exists
    try:
        reading = sample(12345)
    finally:
        keep.close()
    assert reading.measurable
    assert reading.sunreclaim_bytes is not None and reading.sunreclaim_bytes > 1 << 20
    assert reading.slab_bytes is not None and reading.slab_bytes >= reading.sunreclaim_bytes
    assert reading.tcp_buffer_bytes is not None and reading.tcp_buffer_bytes >= 0
    assert reading.tcp_buffer_bytes % reading.page_size == 0  # counted in pages
    assert reading.vm_rss_bytes is not None and reading.vm_rss_bytes > 1 << 20
    assert reading.vm_pin_bytes is not None and reading.vm_pin_bytes >= 0
    assert reading.vm_lck_bytes is not None and reading.vm_lck_bytes >= 0
    assert reading.engine_posted_bytes == 12345
    if SLABINFO_READABLE:
        assert reading.slab_caches is not None
        assert (reading.slab_caches["TCP"] or 0) > 0
        assert (reading.slab_caches["sock_inode_cache"] or 0) > 0
        assert reading.kmalloc_bytes is not None and reading.kmalloc_bytes > 0
        for name, size in reading.slab_caches.items():
            assert (size is None) == (f"slab_caches.{name}" in reading.reasons)
    else:
        assert reading.slab_caches is None and reading.kmalloc_bytes is None
        assert reading.reasons["slab_caches"].startswith(memory.NOT_MEASURABLE)
    json.dumps(reading.as_dict())  # plain JSON-ready data


def test_unreadable_counters_are_none_with_a_reason_never_zero(tmp_path: Path) -> None:
    reading = sample(slabinfo_path=str(tmp_path / "no-slabinfo"))
    assert reading.slab_caches is None and reading.kmalloc_bytes is None
    for key in ("slab_caches", "kmalloc_bytes"):
        assert reading.reasons[key].startswith(f"{memory.NOT_MEASURABLE}: ")
        assert "no-slabinfo" in reading.reasons[key]
    assert reading.as_dict()["slab_caches"] is None
    assert reading.measurable  # the rest was still read


def test_the_one_entry_point_picks_the_linux_sampler() -> None:
    reading = sample_memory(4096)
    assert isinstance(reading, LinuxMemorySample)
    assert reading.engine_posted_bytes == 4096


def test_a_sample_costs_well_under_one_percent_of_a_core_at_one_per_second() -> None:
    costs = []
    for _ in range(20):
        started = time.perf_counter()
        sample()
        costs.append(time.perf_counter() - started)
    assert statistics.median(costs) < 0.01  # 10 ms once a second is 1% of a core


def _tcp_kernel_bytes() -> tuple[int, int]:
    """(TCP slab bytes, or 0 when slabinfo is unreadable; SUnreclaim bytes)."""
    reading = sample()
    assert reading.sunreclaim_bytes is not None
    caches = reading.slab_caches
    tcp = (caches or {}).get("TCP") or 0
    return tcp, reading.sunreclaim_bytes


def test_a_thousand_connections_grow_tcp_slab_by_a_socket_each() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2 * PAIRS + 64:
        if hard < 2 * PAIRS + 64:
            pytest.skip(f"RLIMIT_NOFILE hard limit {hard} is below {2 * PAIRS + 64}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (2 * PAIRS + 64, hard))
    tcp_before, unreclaim_before = _tcp_kernel_bytes()
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(PAIRS)
    sockets: list[socket.socket] = []
    try:
        for _ in range(PAIRS):
            sockets.append(socket.create_connection(server.getsockname(), timeout=10))
            sockets.append(server.accept()[0])
        tcp_open, unreclaim_open = _tcp_kernel_bytes()
    finally:
        for sock in sockets:
            sock.close()
        server.close()
    count = len(sockets)
    per_socket_unreclaim = (unreclaim_open - unreclaim_before) / count
    # ~2.4-2.8 KB of slab per socket (docs/recv-modes.md); system-wide, so a wide band.
    assert 1_000 < per_socket_unreclaim < 10_000, per_socket_unreclaim
    if not SLABINFO_READABLE:
        return
    grown = tcp_open - tcp_before
    assert 1_500 < grown / count < 4_000, grown / count
    # Freed sockets give their slab back (RCU-deferred, so allow a moment).
    deadline = time.monotonic() + 5
    while (tcp_now := _tcp_kernel_bytes()[0]) - tcp_before > grown / 4:
        assert time.monotonic() < deadline, f"TCP slab still {tcp_now - tcp_before} above"
        time.sleep(0.1)
