"""The Windows kernel-memory sampler: real numbers on Windows, an honest "no" elsewhere."""

from __future__ import annotations

import json
import socket
import struct
import sys

import pytest

from loadgen.engine import win32
from loadgen.stats import memory_windows as mw


def _pool_answer(entries: list[tuple[bytes, int, int, int, int, int, int]]) -> bytes:
    raw = struct.pack("<I4x", len(entries))  # Count, then the array at offset 8
    for entry in entries:
        raw += struct.pack("<4sII4xQII4xQ", *entry)
    return raw


def test_pool_tag_parsing_picks_the_afd_tags() -> None:
    raw = _pool_answer(
        [
            (b"AfdB", 0, 0, 0, 120, 20, 409_600),
            (b"File", 5, 1, 4096, 9, 3, 8192),
            (b"Irp ", 0, 0, 0, 0xFFFF_FFF0, 0x10, 52_000),  # allocs wrapped past 2**32
        ]
    )
    tags = mw.parse_pool_tags(raw)
    assert tags["AfdB"] == mw.PoolTagUsage(409_600, 100, 0, 0)
    assert tags["Irp "].nonpaged_allocations == 0xFFFF_FFE0
    assert tags["Mdl "] == mw.PoolTagUsage(0, 0, 0, 0)  # absent: nothing allocated
    assert "File" not in tags


def test_pool_tag_parsing_rejects_a_short_answer() -> None:
    raw = _pool_answer([(b"AfdB", 0, 0, 0, 1, 0, 64)])
    with pytest.raises(ValueError, match="claims 2 entries"):
        mw.parse_pool_tags(struct.pack("<I", 2) + raw[4:])


def _assert_not_measurable(sample: mw.WindowsMemorySample) -> None:
    assert not sample.measurable
    assert sample.reason is not None and sample.reason.startswith(mw.NOT_MEASURABLE)
    numbers = (
        sample.process_nonpaged_bytes,
        sample.process_peak_nonpaged_bytes,
        sample.process_paged_bytes,
        sample.process_peak_paged_bytes,
        sample.system_nonpaged_bytes,
        sample.pool_tags,
    )
    assert numbers == (None,) * len(numbers), "a not-measurable sample must carry no zeros"
    json.dumps(sample.as_dict())


@pytest.mark.skipif(sys.platform == "win32", reason="checks the answer off Windows")
def test_off_windows_the_sampler_says_not_measurable() -> None:
    sample = mw.sample(engine_posted_bytes=4096)
    _assert_not_measurable(sample)
    assert sample.engine_posted_bytes == 4096


def _wine() -> str | None:
    return win32.wine_version() if sys.platform == "win32" else None


@pytest.mark.skipif(
    _wine() is None, reason="checks Wine's answer (runs under scripts/windows-python)"
)
def test_under_wine_the_pool_is_not_measurable() -> None:
    sample = mw.sample()
    _assert_not_measurable(sample)
    assert sample.reason is not None and "Wine" in sample.reason


@pytest.mark.skipif(
    sys.platform != "win32" or _wine() is not None,
    reason="needs real Windows: Wine and other OSes have no nonpaged pool to read",
)
def test_on_windows_pending_receives_are_charged_to_the_process() -> None:
    from loadgen.engine import select_backend

    engine = select_backend("iocp")
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(256)
    peers = []
    try:
        before = mw.sample()
        assert before.measurable, before.reason
        assert before.process_nonpaged_bytes and before.process_nonpaged_bytes > 0
        assert before.system_nonpaged_bytes and before.system_nonpaged_bytes > 0
        handles = []
        for token in range(200):
            handle = engine.tcp_socket()
            engine.connect(handle, server.getsockname(), token)
            handles.append(handle)
        done = 0
        while done < len(handles):
            done += len(engine.wait(10))
            while len(peers) < done:
                peers.append(server.accept()[0])
        for token, handle in enumerate(handles, start=1000):
            engine.recv(handle, bytearray(65536), token)
        after = mw.sample(engine.posted_recv_bytes())  # type: ignore[attr-defined]
        assert after.engine_posted_bytes == 200 * 65536
        assert after.process_nonpaged_bytes is not None
        # Each pending receive holds an IRP (hundreds of bytes) charged to our quota.
        assert after.process_nonpaged_bytes > before.process_nonpaged_bytes
        json.dumps(after.as_dict())
    finally:
        engine.shutdown()
        for peer in peers:
            peer.close()
        server.close()
