"""io_uring ABI layouts and the io_uring backend's own behaviour beyond the shared contract.

Layout and formatting tests run everywhere; tests that need a ring skip where io_uring is
unavailable (old kernel, seccomp, ``kernel.io_uring_disabled``), saying why.
"""

from __future__ import annotations

import ctypes
import errno
import os
import socket
import struct
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from loadgen.engine import BackendUnavailable
from loadgen.engine import uring_abi as abi
from loadgen.engine.base import FLAG_HANGUP, FLAG_READABLE, Completion
from loadgen.engine.uring import UringBackend


def _why_no_uring() -> str | None:
    if not sys.platform.startswith("linux"):
        return "io_uring is Linux-only"
    try:
        UringBackend(sq_entries=2, cq_entries=4).shutdown()
    except BackendUnavailable as exc:
        return str(exc)
    return None


_NO_URING = _why_no_uring()
needs_uring = pytest.mark.skipif(_NO_URING is not None, reason=f"io_uring: {_NO_URING}")


# --- layouts ----------------------------------------------------------------------------


def test_sqe_and_cqe_sizes() -> None:
    assert struct.calcsize(abi.SQE_FORMAT) == abi.SQE_SIZE == 64 == 1 << abi.SQE_SHIFT
    assert abi.SQE_HEAD.size == 40  # opcode .. user_data
    assert struct.calcsize(abi.CQE_FORMAT) == abi.CQE.size == abi.CQE_SIZE == 16


def test_sqe_field_offsets_match_the_kernel_header() -> None:
    # (offset, size) of each field of struct io_uring_sqe, as in include/uapi/linux/io_uring.h
    expected = [
        (0, 1),
        (1, 1),
        (2, 2),
        (4, 4),
        (8, 8),
        (16, 8),
        (24, 4),
        (28, 4),
        (32, 8),
        (40, 2),
        (42, 2),
        (44, 4),
        (48, 8),
        (56, 8),
    ]
    offset = 0
    for code, (want_offset, want_size) in zip(abi.SQE_FORMAT[1:], expected, strict=True):
        size = struct.calcsize("=" + code)
        assert (offset, size) == (want_offset, want_size), code
        offset += size


def test_params_and_wait_argument_layouts() -> None:
    assert ctypes.sizeof(abi.io_sqring_offsets) == 40
    assert ctypes.sizeof(abi.io_cqring_offsets) == 40
    assert ctypes.sizeof(abi.io_uring_params) == 120
    assert abi.io_uring_params.sq_off.offset == 40
    assert abi.io_uring_params.cq_off.offset == 80
    assert abi.io_uring_params.features.offset == 20
    assert ctypes.sizeof(abi.kernel_timespec) == 16
    assert ctypes.sizeof(abi.io_uring_getevents_arg) == 24
    assert abi.io_uring_getevents_arg.ts.offset == 16


def test_opcodes_and_flags_have_kernel_values() -> None:
    assert (
        abi.IORING_OP_POLL_ADD,
        abi.IORING_OP_ACCEPT,
        abi.IORING_OP_ASYNC_CANCEL,
        abi.IORING_OP_LINK_TIMEOUT,
        abi.IORING_OP_CONNECT,
        abi.IORING_OP_SEND,
        abi.IORING_OP_RECV,
    ) == (6, 13, 14, 15, 16, 26, 27)
    assert (abi.NR_IO_URING_SETUP, abi.NR_IO_URING_ENTER, abi.NR_IO_URING_REGISTER) == (
        425,
        426,
        427,
    )
    assert abi.IORING_OFF_CQ_RING == 0x8000000 and abi.IORING_OFF_SQES == 0x10000000
    assert abi.IORING_ASYNC_CANCEL_FD | abi.IORING_ASYNC_CANCEL_ALL == 0b11
    assert abi.POLLIN | abi.POLLRDHUP == 0x2001


# Linux's value, spelled out: this layout test also runs under Windows CPython.
LINUX_MSG_NOSIGNAL = 0x4000


def test_sqe_head_packing_round_trip() -> None:
    slot = bytearray(abi.SQE_SIZE * 2)
    abi.SQE_HEAD.pack_into(
        slot,
        abi.SQE_SIZE,
        abi.IORING_OP_SEND,
        0,
        0,
        17,
        0,
        0x7F00_DEAD_BEEF,
        64,
        LINUX_MSG_NOSIGNAL,
        (1 << 63) - 1,
    )
    fields = struct.unpack_from(abi.SQE_FORMAT, slot, abi.SQE_SIZE)
    assert fields == (
        abi.IORING_OP_SEND,
        0,
        0,
        17,
        0,
        0x7F00_DEAD_BEEF,
        64,
        LINUX_MSG_NOSIGNAL,
        (1 << 63) - 1,
        0,
        0,
        0,
        0,
        0,
    )
    assert slot[: abi.SQE_SIZE] == bytes(abi.SQE_SIZE)  # the neighbouring slot is untouched


def test_cqe_unpacking() -> None:
    raw = struct.pack("=QiI", 42, -errno.ECANCELED, abi.IORING_CQE_F_SOCK_NONEMPTY)
    raw += struct.pack("=QiI", 1 << 63, 0, 0)
    assert list(abi.CQE.iter_unpack(raw)) == [
        (42, -errno.ECANCELED, abi.IORING_CQE_F_SOCK_NONEMPTY),
        (1 << 63, 0, 0),
    ]


# --- why io_uring is unavailable ----------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "disabled", "expected"),
    [
        (errno.EPERM, 2, "io_uring_setup failed: EPERM (kernel.io_uring_disabled=2)"),
        (
            errno.EPERM,
            1,
            "io_uring_setup failed: EPERM (kernel.io_uring_disabled=1 and "
            "this process is not in kernel.io_uring_group nor has CAP_SYS_ADMIN)",
        ),
        (
            errno.EPERM,
            None,
            "io_uring_setup failed: EPERM (blocked by a seccomp or LSM "
            "policy, e.g. a container runtime)",
        ),
        (
            errno.ENOSYS,
            None,
            "io_uring_setup failed: ENOSYS (this kernel has no io_uring, "
            "or a seccomp filter hides it)",
        ),
        (
            errno.EINVAL,
            0,
            "io_uring_setup failed: EINVAL (kernel too old: "
            "IORING_SETUP_SUBMIT_ALL|COOP_TASKRUN need Linux >= 5.19)",
        ),
    ],
)
def test_unavailable_reason(code: int, disabled: int | None, expected: str) -> None:
    assert abi.unavailable_reason(code, disabled) == expected


def test_read_io_uring_disabled(tmp_path: Path) -> None:
    sysctl = tmp_path / "io_uring_disabled"
    sysctl.write_text("2\n")
    assert abi.read_io_uring_disabled(str(sysctl)) == 2
    assert abi.read_io_uring_disabled(str(tmp_path / "missing")) is None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")
def test_constructor_raises_backend_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(entries: int, params: abi.io_uring_params) -> int:
        raise OSError(errno.EPERM, os.strerror(errno.EPERM))

    monkeypatch.setattr(abi, "io_uring_setup", refuse)
    monkeypatch.setattr(abi, "read_io_uring_disabled", lambda: 2)
    with pytest.raises(
        BackendUnavailable, match=r"^io_uring_setup failed: EPERM \(kernel.io_uring_disabled=2\)$"
    ):
        UringBackend()


# --- the backend on a real ring -----------------------------------------------------------


@pytest.fixture
def small_ring() -> Iterator[UringBackend]:
    # Tiny rings so the full-SQ and CQ-wrap paths run within a handful of operations.
    engine = UringBackend(sq_entries=4, cq_entries=8)
    try:
        yield engine
    finally:
        engine.shutdown()


def _pair(engine: UringBackend) -> tuple[int, socket.socket, socket.socket]:
    """An engine socket connected to a plain peer socket (connected synchronously)."""
    server = socket.create_server(("127.0.0.1", 0))
    handle = engine.tcp_socket()
    engine.connect(handle, server.getsockname(), 1 << 40)
    got = _collect(engine, 1)
    assert got == [(1 << 40, 0, 0)]
    peer, _ = server.accept()
    return handle, peer, server


def _collect(engine: UringBackend, count: int, max_completions: int = 512) -> list[Completion]:
    out: list[Completion] = []
    for _ in range(200):
        batch = engine.wait(0.05, max_completions)
        assert len(batch) <= max_completions
        out += batch
        if len(out) >= count:
            break
    return out


def _drain(engine: UringBackend, handle: int) -> None:
    while engine.recv_now(handle, bytearray(64)) > 0:
        pass


@needs_uring
def test_nop_through_the_mapped_rings() -> None:
    params = abi.io_uring_params()
    fd = abi.io_uring_setup(4, params)
    maps = abi.map_rings(fd, params)
    try:
        assert params.features & abi.IORING_FEAT_SINGLE_MMAP
        abi.SQE_HEAD.pack_into(maps.sqes, 0, abi.IORING_OP_NOP, 0, 0, -1, 0, 0, 0, 0, 0xABC)
        maps.sq_tail[0] = 1
        assert abi.io_uring_enter(fd, 1, 1, abi.IORING_ENTER_GETEVENTS) == 1
        assert maps.cq_tail[0] == 1
        assert abi.CQE.unpack_from(maps.cqes, 0) == (0xABC, 0, 0)
        assert abi.IORING_OP_RECV in abi.probe_opcodes(fd)
    finally:
        maps.close()
        os.close(fd)


@needs_uring
def test_tokens_must_be_unique_and_below_bit_63(small_ring: UringBackend) -> None:
    engine = small_ring
    a, peer_a, server_a = _pair(engine)
    b, peer_b, server_b = _pair(engine)
    with pytest.raises(ValueError, match="out of range"):
        engine.recv_zero(a, 1 << 63)
    with pytest.raises(ValueError, match="out of range"):
        engine.recv_zero(a, -1)
    engine.recv_zero(a, 7)
    with pytest.raises(ValueError, match="already pending"):
        engine.recv_zero(b, 7)
    with pytest.raises(RuntimeError, match="read-side operation"):
        engine.recv(a, bytearray(8), 8)
    with pytest.raises(ValueError, match="unknown socket handle"):
        engine.recv_zero(10**6, 9)
    assert engine.pending() == 1
    for sock in (peer_a, peer_b, server_a, server_b):
        sock.close()


@needs_uring
def test_full_sq_ring_submits_early_and_capped_batches_wrap_the_cq(
    small_ring: UringBackend,
) -> None:
    engine = small_ring
    pairs = [_pair(engine) for _ in range(6)]  # 6 > the 4 SQ slots
    for i, (handle, _, _) in enumerate(pairs):
        engine.recv_zero(handle, 100 + i)
    assert engine.pending() == 6
    for _, peer, _ in pairs:
        peer.sendall(b"x")
    seen: list[Completion] = []
    for _ in range(3):  # 3 rounds x 6 completions on an 8-entry CQ: the ring wraps
        batch = _collect(engine, 6, max_completions=4)
        seen += batch
        assert sorted(t for t, _, _ in batch) == [100 + i for i in range(6)]
        assert all(r == 0 and f == FLAG_READABLE for _, r, f in batch)
        for i, (handle, _, _) in enumerate(pairs):
            _drain(engine, handle)
            engine.recv_zero(handle, 100 + i)
        for _, peer, _ in pairs:
            peer.sendall(b"y")
    assert len(seen) == 18
    for _, peer, server in pairs:
        peer.close()
        server.close()


@needs_uring
def test_max_completions_leaves_the_rest_in_the_ring(small_ring: UringBackend) -> None:
    engine = small_ring
    pairs = [_pair(engine) for _ in range(3)]
    for i, (handle, _, _) in enumerate(pairs):
        engine.recv_zero(handle, 10 + i)
    assert engine.wait(0) == []  # submitted; nothing readable yet
    for _, peer, _ in pairs:
        peer.close()  # FIN: each recv_zero completes with FLAG_HANGUP
    time.sleep(0.05)  # loopback delivers the FINs at once; this is only a margin
    # The one enter of this wait posts all three CQEs; only one is handed back.
    first = engine.wait(1.0, max_completions=1)
    assert (engine._cq_ktail[0] - engine._cq_head) & 0xFFFFFFFF == 2  # left in the ring
    second = engine.wait(0, max_completions=5)
    assert len(first) == 1 and len(second) == 2
    for _, result, flags in first + second:
        assert result == 0 and flags == FLAG_READABLE | FLAG_HANGUP
    for _, _, server in pairs:
        server.close()


@needs_uring
def test_cancel_completions_stay_internal(small_ring: UringBackend) -> None:
    engine = small_ring
    handle, peer, server = _pair(engine)
    engine.recv_zero(handle, 5)
    engine.cancel(handle, 5)
    engine.cancel(handle, 5)  # a second cancel of the same token: still one completion
    got = _collect(engine, 1)
    got += engine.wait(0.1)
    assert got == [(5, -errno.ECANCELED, 0)]
    engine.cancel(handle, 5)  # no longer pending: a no-op
    assert engine.wait(0.05) == [] and engine.pending() == 0
    engine.recv_zero(handle, 6)
    engine.close(handle, abort=True)
    assert _collect(engine, 1) == [(6, -errno.ECANCELED, 0)]
    with pytest.raises(ConnectionResetError):
        peer.recv(1)
    peer.close()
    server.close()


@needs_uring
def test_shutdown_with_operations_in_flight() -> None:
    engine = UringBackend(sq_entries=8, cq_entries=16)
    handle, peer, server = _pair(engine)
    engine.recv(handle, bytearray(64), 1)
    engine.wait(0)
    engine.shutdown()
    assert engine.pending() == 0
    engine.shutdown()  # idempotent
    with pytest.raises(RuntimeError, match="shut down"):
        engine.wait(0)
    assert peer.recv(1) == b""
    peer.close()
    server.close()


@needs_uring
@pytest.mark.parametrize("abort", [False, True])
def test_close_with_pending_ops_closes_at_once(small_ring: UringBackend, abort: bool) -> None:
    # A pending request holds a file reference; close() must cancel it and let it go before
    # returning, so the peer sees FIN/RST without another wait() (DEFER_TASKRUN included).
    engine = small_ring
    handle, peer, server = _pair(engine)
    engine.recv_zero(handle, 1)
    assert engine.wait(0) == []
    engine.close(handle, abort=abort)
    peer.settimeout(5)
    if abort:
        with pytest.raises(ConnectionResetError):
            peer.recv(1)
    else:
        assert peer.recv(1) == b""
    assert _collect(engine, 1) == [(1, -errno.ECANCELED, 0)]
    assert engine.pending() == 0
    peer.close()
    server.close()


@needs_uring
def test_ring_belongs_to_the_first_submitting_thread() -> None:
    engine = UringBackend(sq_entries=8, cq_entries=16)  # built on this thread ...
    errors: list[BaseException] = []

    def use() -> None:
        try:
            handle, peer, server = _pair(engine)  # ... first used on another: fine
            peer.close()
            server.close()
            engine.close(handle)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    worker = threading.Thread(target=use)
    worker.start()
    worker.join()
    assert not errors, errors
    if engine._enter is engine._syscall and _has_defer_taskrun(engine):
        with pytest.raises(RuntimeError, match="second thread"):
            engine.wait(0)
    engine.shutdown()


def _has_defer_taskrun(engine: UringBackend) -> bool:
    from loadgen.engine import uring

    return engine._setup_flags == uring._SETUP_DEFER


@needs_uring
def test_buffer_cache_is_bounded(monkeypatch: pytest.MonkeyPatch, small_ring: UringBackend) -> None:
    from loadgen.engine import uring

    monkeypatch.setattr(uring, "_BUF_CACHE_MAX", 8)
    monkeypatch.setattr(uring, "_VIEW_CACHE_MAX", 4)
    engine = small_ring
    keep = bytearray(16)
    engine._pin(keep)
    for _ in range(20):  # per-operation memoryview slices go to their own small cache ...
        engine._pin(memoryview(keep)[:8])
    assert len(engine._views) <= 4
    assert list(engine._bufs) == [id(keep)]  # ... and never push long-lived buffers out
    for _ in range(20):
        engine._pin(bytearray(16))
    assert len(engine._bufs) <= 8
    with pytest.raises(TypeError, match="writable"):
        engine._pin(memoryview(b"read-only"))


@needs_uring
def test_ipv6_and_read_only_send_buffers(small_ring: UringBackend) -> None:
    engine = small_ring
    try:
        listen_handle, address = engine.listen_socket("::1", 0, 16)
    except OSError as exc:  # pragma: no cover - hosts without IPv6 loopback
        pytest.skip(f"no IPv6 loopback: {exc}")
    engine.accept(listen_handle, 1)
    client = engine.tcp_socket(socket.AF_INET6)
    engine.connect(client, address, 2)
    done = {t: r for t, r, _ in _collect(engine, 2)}
    assert done[2] == 0 and done[1] >= 0
    server = done[1]
    buf = bytearray(64)
    # Beyond the contract's writable buffers, a send may read bytes or a read-only view.
    for data, token in ((b"immutable bytes", 3), (memoryview(b"read-only view")[:9], 5)):
        engine.send(client, data, token)
        engine.recv(server, buf, token + 1)
        done = {t: r for t, r, _ in _collect(engine, 2)}
        n = len(data)
        assert done == {token: n, token + 1: n} and bytes(buf[:n]) == bytes(data)
    with pytest.raises(TypeError, match="writable"):
        engine.recv(server, memoryview(b"no"), 9)
    for handle in (client, server, listen_handle):
        engine.close(handle)


@needs_uring
def test_cq_overflow_loses_nothing(small_ring: UringBackend) -> None:
    # 12 completions at once on an 8-entry CQ: the kernel parks the rest (FEAT_NODROP) and
    # hands them over on a later enter.
    engine = small_ring
    pairs = [_pair(engine) for _ in range(12)]
    for _, peer, _ in pairs:
        peer.sendall(b"x")
    for i, (handle, _, _) in enumerate(pairs):
        engine.recv_zero(handle, 200 + i)
    got = _collect(engine, 12, max_completions=512)
    assert sorted(t for t, _, _ in got) == list(range(200, 212))
    assert engine.pending() == 0
    for _, peer, server in pairs:
        peer.close()
        server.close()


@needs_uring
def test_recv_now_while_connect_is_still_queued_would_block(small_ring: UringBackend) -> None:
    # CONNECT is only submitted by the next wait(); until then the socket is unconnected
    # and recv() says ENOTCONN. Elsewhere a connecting socket says EAGAIN: so does this one.
    engine = small_ring
    server = socket.create_server(("127.0.0.1", 0))
    handle = engine.tcp_socket()
    engine.connect(handle, server.getsockname(), 1)
    code = -engine.recv_now(handle, bytearray(8))
    assert engine.would_block(code)
    assert _collect(engine, 1) == [(1, 0, 0)]
    engine.close(handle)
    other = engine.tcp_socket()  # never connected at all: a real error
    assert engine.recv_now(other, bytearray(8)) == -errno.ENOTCONN
    engine.close(other)
    server.close()
