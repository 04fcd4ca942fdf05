"""Receive buffers the kernel fills for the io_uring backend (``uring.py`` owns them).

Two ways to receive without a user buffer per posted operation, or with buffers the kernel
has pinned once for all. ``uring.py`` packs the SQEs and reaps the CQEs; what lives here is
the memory, its registration, and the accounting of who holds which buffer.

* **Provided-buffer ring (``setup_buffer_ring``, ``recv_ring``).** A third ring, shared
  with the kernel like the SQ and CQ: an array of 16-byte ``io_uring_buf`` entries
  (address, length, buffer id) whose u16 tail lives in the last two bytes of entry 0. We
  fill entries and advance the tail; the kernel takes a buffer from the head only when a
  receive has data to put somewhere, and says which one in the CQE (IORING_CQE_F_BUFFER,
  id in the upper 16 bits). Registered with IORING_REGISTER_PBUF_RING (5.19) as buffer
  group 0, so the SQE's buf_group field stays the zero every slot already holds. A RECV
  with IOSQE_BUFFER_SELECT and IORING_RECV_MULTISHOT (6.0) stays armed: one CQE per chunk,
  each with IORING_CQE_F_MORE while armed, so the per-socket work is one SQE per
  connection instead of one per message. When the ring is empty as data arrives, the
  receive ends with -ENOBUFS (the data stays in the socket buffer) and the caller re-arms it
  after giving buffers back. Giving one back is one 14-byte ``pack_into`` of the entry
  (never touching the tail beside it) and one u16 store of the tail, ordered by TSO as
  for the SQ (``uring.py``). **Memory consequence:** the receive memory is the ring's
  ``count * size``, whatever the number of sockets: an idle connection holds no user
  buffer, only its armed multishot receive, one kernel request (a pending RECV measured
  ~830 B, docs/recv-modes.md; the multishot one was not measured apart). Data that
  arrives faster than buffers come back waits in socket buffers (kernel memory), not in
  ours. The buffers are *not* pinned: the kernel copies into them by address, in our task.
  Multishot receive arrived in 6.0, so the ring is offered only when DEFER_TASKRUN (6.1)
  was accepted. The buffers are an anonymous mmap and ``ring_bytes`` slices it (one
  memcpy into a new bytes, ~120 ns for a small message: cheaper than a memoryview slice).

* **Registered buffers (``register_buffers``, ``recv_fixed``).** One anonymous mmap
  sliced into the per-connection buffers, registered with IORING_REGISTER_BUFFERS as
  iovecs of whole buffers, each at most 1 GiB and at most 16,384 of them (the kernel's
  limits). Registration pins every page at once (pin_user_pages, FOLL_LONGTERM) and adds
  them to the process's ``pinned_vm``: **VmPin in /proc/self/status grows by the whole
  region before any data moves**, which is the Linux counterpart of the pages Windows
  locks for each posted overlapped receive. They count against RLIMIT_MEMLOCK unless the
  process has CAP_IPC_LOCK (ENOMEM otherwise; the error says how to raise it), and stay
  pinned until the ring is closed. Receives are IORING_OP_READ_FIXED with off 0 (a socket
  accepts no other position) and ioprio 0 (for a read it is an I/O priority, not
  POLL_FIRST). A buffer past the first iovec needs a non-zero buf_index in the SQE
  (``uring.py`` sets it, and zeroes it again once the SQE is submitted).

Both regions stay referenced by the backend (its ``_regions``) until the ring fd is
closed, because the kernel may write into them until then.
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
import struct
from typing import Final

from loadgen.engine import uring_abi as abi
from loadgen.engine.base import FeatureUnavailable

__all__ = ["BufferRing", "register_buffers"]

_PACK_BUF: Final = struct.Struct(abi.BUF_FORMAT).pack_into


class BufferRing:
    """The provided-buffer ring of one io_uring (buffer group 0), and which of its
    buffers are lent to the caller right now (``out``, ``held``)."""

    __slots__ = (
        "base",
        "buffers",
        "count",
        "held",
        "mask",
        "out",
        "regions",
        "ring",
        "size",
        "tail",
        "tail_val",
    )

    def __init__(self, ring_fd: int, count: int, size: int) -> None:
        if not 1 <= count <= abi.BUF_RING_MAX_ENTRIES or count & (count - 1):
            raise ValueError(
                f"a buffer ring holds a power of two of buffers, 1 to "
                f"{abi.BUF_RING_MAX_ENTRIES:,}; got {count}"
            )
        if not 1 <= size < 1 << 32:
            raise ValueError(f"ring buffer size must be 1 B to 4 GiB, got {size}")
        buffers = mmap.mmap(-1, count * size)
        ring = mmap.mmap(-1, max(count * abi.BUF_SIZE, mmap.PAGESIZE))  # page aligned
        buffers_export = ctypes.c_char.from_buffer(buffers)
        ring_export = ctypes.c_char.from_buffer(ring)
        base = ctypes.addressof(buffers_export)
        for bid in range(count):
            _PACK_BUF(ring, bid << abi.BUF_SHIFT, base + bid * size, size, bid)
        tail = memoryview(ring)[abi.BUF_RING_TAIL_OFFSET : abi.BUF_RING_TAIL_OFFSET + 2].cast("H")
        tail[0] = count  # every buffer is the kernel's; published before registering
        reg = bytearray(
            struct.pack(abi.BUF_REG_FORMAT, ctypes.addressof(ring_export), count, 0, 0, 0, 0, 0)
        )
        reg_export = (ctypes.c_char * len(reg)).from_buffer(reg)
        try:
            abi.io_uring_register(
                ring_fd, abi.IORING_REGISTER_PBUF_RING, ctypes.addressof(reg_export), 1
            )
        except OSError as exc:
            del reg_export
            tail.release()
            del buffers_export, ring_export
            buffers.close()
            ring.close()
            raise FeatureUnavailable(
                f"io_uring: registering a buffer ring of {count} x {size} B failed: "
                f"{os.strerror(exc.errno or 0)}"
            ) from None
        #: What must stay referenced until the ring fd is closed.
        self.regions: list[object] = [buffers, ring, buffers_export, ring_export, tail]
        self.buffers = buffers
        self.ring = ring
        self.tail = tail
        self.tail_val = count  # our copy of the tail
        self.count = count
        self.size = size
        self.mask = count - 1
        self.base = base
        self.held = 0  # buffers lent to the caller (reaped, not yet released)
        self.out = bytearray(count)  # 1 where the buffer is lent to the caller

    def bytes(self, bid: int, nbytes: int) -> bytes:
        size = self.size
        if not 0 <= nbytes <= size:
            raise ValueError(f"a ring buffer holds at most {size} bytes, asked for {nbytes}")
        start = bid * size
        # Slicing an mmap is one memcpy into a new bytes (~120 ns for a small echo): cheaper
        # than a memoryview slice, and bytes compare with memcmp.
        return self.buffers[start : start + nbytes]

    def release(self, bid: int) -> None:
        out = self.out
        if not 0 <= bid < len(out) or not out[bid]:
            raise ValueError(f"ring buffer {bid} is not lent out (released twice, or unknown)")
        out[bid] = 0
        tail = self.tail_val
        size = self.size
        # The entry first, then the tail: TSO keeps the stores in this order, and the kernel
        # reads the tail with acquire semantics before it reads the entry.
        _PACK_BUF(self.ring, (tail & self.mask) << 4, self.base + bid * size, size, bid)
        tail = (tail + 1) & 0xFFFF
        self.tail_val = tail
        self.tail[0] = tail
        self.held -= 1

    def posted_bytes(self) -> int:
        """Bytes of the buffers the kernel holds (the ring's share of posted receives)."""
        return (self.count - self.held) * self.size


def _register_failed(code: int, count: int, size: int) -> str:
    """Why registering receive buffers failed, and what to do about it."""
    total = count * size
    head = f"io_uring: registering {count:,} receive buffers of {size:,} B ({total:,} B) failed"
    if code == errno.ENOMEM:
        try:
            import resource

            soft, _hard = resource.getrlimit(resource.RLIMIT_MEMLOCK)
            limit = "unlimited" if soft == resource.RLIM_INFINITY else f"{soft:,} B"
        except (ImportError, OSError):
            limit = "unknown"
        return (
            f"{head}: ENOMEM. Registered buffers are pinned and count against "
            f"RLIMIT_MEMLOCK (now {limit}) unless the process has CAP_IPC_LOCK: raise it "
            "with `ulimit -l` (or memlock in /etc/security/limits.conf, LimitMEMLOCK= for a "
            "systemd unit), or use fewer connections or a smaller receive_buffer"
        )
    return f"{head}: {errno.errorcode.get(code, code)} ({os.strerror(code)})"


def register_buffers(
    ring_fd: int, count: int, size: int
) -> tuple[list[tuple[int, int, int]], list[memoryview], list[object]]:
    """Register ``count`` buffers of ``size`` bytes with the ring: (address, size,
    buf_index) of each, a view of each for the caller, and what must stay referenced
    until the ring fd is closed."""
    if count < 1 or size < 1:
        raise ValueError(f"need at least one buffer of at least 1 byte, got {count} x {size}")
    limit = abi.IORING_MAX_REG_BUFFER_BYTES
    if size > limit:
        raise ValueError(f"a registered buffer is at most 1 GiB (the kernel's limit), got {size}")
    per_iovec = limit // size  # whole buffers per iovec of at most 1 GiB
    iovecs = -(-count // per_iovec)
    if iovecs > abi.IORING_MAX_REG_BUFFERS:
        raise ValueError(
            f"{count:,} buffers of {size:,} B need {iovecs:,} registered iovecs of 1 GiB; "
            f"the kernel takes at most {abi.IORING_MAX_REG_BUFFERS:,}"
        )
    region = mmap.mmap(-1, count * size)
    export = ctypes.c_char.from_buffer(region)
    base = ctypes.addressof(export)
    iov = bytearray(16 * iovecs)
    for k in range(iovecs):
        first = k * per_iovec
        n = min(per_iovec, count - first)
        struct.pack_into(abi.IOVEC_FORMAT, iov, 16 * k, base + first * size, n * size)
    iov_export = (ctypes.c_char * len(iov)).from_buffer(iov)
    try:
        abi.io_uring_register(
            ring_fd, abi.IORING_REGISTER_BUFFERS, ctypes.addressof(iov_export), iovecs
        )
    except OSError as exc:
        del iov_export, export
        region.close()
        raise FeatureUnavailable(_register_failed(exc.errno or 0, count, size)) from None
    entries = [(base + i * size, size, i // per_iovec) for i in range(count)]
    whole = memoryview(region)
    views = [whole[i * size : (i + 1) * size] for i in range(count)]
    return entries, views, [region, export]
