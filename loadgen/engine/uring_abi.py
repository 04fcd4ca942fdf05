"""The io_uring ABI as ctypes sees it: layouts, constants, raw syscalls, ring mapping.

Everything here is a transcription of ``include/uapi/linux/io_uring.h`` (x86-64), kept to
what the backend in ``uring.py`` uses, plus the few neighbours a reader would look for.
Names keep the kernel's spelling (``IORING_OP_RECV``) so they can be grepped against the
header. No liburing: the three syscalls are called through libc's variadic ``syscall``.

Hot-path layouts are ``struct`` formats, not ``ctypes.Structure``: building a Structure
costs 600-800 ns, while ``Struct.pack_into`` straight into the mmap'd SQE array costs
~250 ns and ``struct.iter_unpack`` over the CQ ring ~100 ns per CQE. ctypes Structures are
used only for the once-per-ring objects (``io_uring_params``, the wait timeout).
"""

from __future__ import annotations

import ctypes
import errno
import functools
import mmap
import os
import socket
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, cast

from loadgen.engine.base import BackendUnavailable

# --- syscalls (numbers shared by every architecture that got io_uring after 5.1) ---------
NR_IO_URING_SETUP: Final = 425
NR_IO_URING_ENTER: Final = 426
NR_IO_URING_REGISTER: Final = 427

# --- SQE: struct io_uring_sqe, 64 bytes --------------------------------------------------
#: opcode u8, flags u8, ioprio u16, fd s32, off/addr2 u64, addr/splice_off_in u64, len u32,
#: op_flags u32 (msg_flags, poll32_events, accept_flags, cancel_flags ... share this slot),
#: user_data u64, buf_index u16, personality u16, splice_fd_in/file_index s32, addr3 u64,
#: __pad2 u64.
SQE_FORMAT: Final = "=BBHiQQIIQHHiQQ"
SQE_SIZE: Final = 64
#: The first 40 bytes (opcode .. user_data): every field this backend ever sets. The last 24
#: bytes of every slot are zeroed once at setup and never written again, so per operation
#: only these 40 bytes are packed (one ``pack_into`` call, no template copy needed).
SQE_HEAD_FORMAT: Final = "=BBHiQQIIQ"
SQE_HEAD: Final = struct.Struct(SQE_HEAD_FORMAT)
#: log2(SQE_SIZE), to turn a slot index into a byte offset with a shift.
SQE_SHIFT: Final = 6
#: Byte offset of buf_index / buf_group (u16) in an SQE: the one field past the packed head
#: that some operations need (READ_FIXED's buffer index, BUFFER_SELECT's group).
SQE_BUF_INDEX_OFFSET: Final = 40

# --- CQE: struct io_uring_cqe, 16 bytes (no IORING_SETUP_CQE32) --------------------------
#: user_data u64, res s32, flags u32.
CQE_FORMAT: Final = "=QiI"
CQE_SIZE: Final = 16
CQE: Final = struct.Struct(CQE_FORMAT)

# --- opcodes (enum io_uring_op) -----------------------------------------------------------
IORING_OP_NOP: Final = 0
IORING_OP_READ_FIXED: Final = 4
IORING_OP_POLL_ADD: Final = 6
IORING_OP_POLL_REMOVE: Final = 7
IORING_OP_TIMEOUT: Final = 11
IORING_OP_ACCEPT: Final = 13
IORING_OP_ASYNC_CANCEL: Final = 14
IORING_OP_LINK_TIMEOUT: Final = 15
IORING_OP_CONNECT: Final = 16
IORING_OP_CLOSE: Final = 19
IORING_OP_SEND: Final = 26
IORING_OP_RECV: Final = 27
IORING_OP_SHUTDOWN: Final = 34

# --- sqe->flags (IOSQE_*) -----------------------------------------------------------------
IOSQE_FIXED_FILE: Final = 1 << 0
IOSQE_IO_DRAIN: Final = 1 << 1
IOSQE_IO_LINK: Final = 1 << 2
IOSQE_IO_HARDLINK: Final = 1 << 3
IOSQE_ASYNC: Final = 1 << 4
IOSQE_BUFFER_SELECT: Final = 1 << 5
IOSQE_CQE_SKIP_SUCCESS: Final = 1 << 6

# --- sqe->ioprio for SEND/RECV ------------------------------------------------------------
#: Arm the poll before trying the socket (5.19): saves the doomed first attempt of a
#: receive posted right after its request was sent, when no reply can be there yet.
IORING_RECVSEND_POLL_FIRST: Final = 1 << 0
#: RECV stays armed after each completion (6.0; needs IOSQE_BUFFER_SELECT): one CQE per
#: chunk received, with IORING_CQE_F_MORE while it stays armed.
IORING_RECV_MULTISHOT: Final = 1 << 1

# --- sqe->cancel_flags for IORING_OP_ASYNC_CANCEL (5.19+) ---------------------------------
IORING_ASYNC_CANCEL_ALL: Final = 1 << 0
IORING_ASYNC_CANCEL_FD: Final = 1 << 1
IORING_ASYNC_CANCEL_ANY: Final = 1 << 2

# --- cqe->flags ---------------------------------------------------------------------------
IORING_CQE_F_BUFFER: Final = 1 << 0
IORING_CQE_F_MORE: Final = 1 << 1
IORING_CQE_F_SOCK_NONEMPTY: Final = 1 << 2
#: With IORING_CQE_F_BUFFER, the upper 16 bits of cqe->flags are the buffer id.
IORING_CQE_BUFFER_SHIFT: Final = 16

# --- io_uring_setup flags (params.flags) --------------------------------------------------
IORING_SETUP_IOPOLL: Final = 1 << 0
IORING_SETUP_SQPOLL: Final = 1 << 1
IORING_SETUP_CQSIZE: Final = 1 << 3
IORING_SETUP_CLAMP: Final = 1 << 4
IORING_SETUP_R_DISABLED: Final = 1 << 6
IORING_SETUP_SUBMIT_ALL: Final = 1 << 7  # 5.18: one bad SQE does not stop the batch
IORING_SETUP_COOP_TASKRUN: Final = 1 << 8  # 5.19: no IPI to run completion task work
IORING_SETUP_TASKRUN_FLAG: Final = 1 << 9
IORING_SETUP_SINGLE_ISSUER: Final = 1 << 12  # 6.0
IORING_SETUP_DEFER_TASKRUN: Final = 1 << 13  # 6.1
IORING_SETUP_NO_SQARRAY: Final = 1 << 16  # 6.6

# --- params.features ----------------------------------------------------------------------
IORING_FEAT_SINGLE_MMAP: Final = 1 << 0  # 5.4: SQ and CQ rings share one mapping
IORING_FEAT_NODROP: Final = 1 << 1  # 5.5: CQ overflow is kept, never dropped
IORING_FEAT_SUBMIT_STABLE: Final = 1 << 2
IORING_FEAT_FAST_POLL: Final = 1 << 5  # 5.7: sockets wait on an internal poll, no thread
IORING_FEAT_EXT_ARG: Final = 1 << 8  # 5.11: io_uring_enter takes a timeout
IORING_FEAT_CQE_SKIP: Final = 1 << 11  # 5.17: IOSQE_CQE_SKIP_SUCCESS
#: Features the backend cannot do without, with the reason shown when one is missing.
REQUIRED_FEATURES: Final = (
    (IORING_FEAT_SINGLE_MMAP, "IORING_FEAT_SINGLE_MMAP"),
    (IORING_FEAT_NODROP, "IORING_FEAT_NODROP"),
    (IORING_FEAT_FAST_POLL, "IORING_FEAT_FAST_POLL"),
    (IORING_FEAT_EXT_ARG, "IORING_FEAT_EXT_ARG"),
)

# --- io_uring_enter flags -----------------------------------------------------------------
IORING_ENTER_GETEVENTS: Final = 1 << 0
IORING_ENTER_SQ_WAKEUP: Final = 1 << 1
IORING_ENTER_SQ_WAIT: Final = 1 << 2
IORING_ENTER_EXT_ARG: Final = 1 << 3

# --- sq_ring->flags -----------------------------------------------------------------------
IORING_SQ_NEED_WAKEUP: Final = 1 << 0
IORING_SQ_CQ_OVERFLOW: Final = 1 << 1
IORING_SQ_TASKRUN: Final = 1 << 2

# --- mmap offsets -------------------------------------------------------------------------
IORING_OFF_SQ_RING: Final = 0
IORING_OFF_CQ_RING: Final = 0x8000000
IORING_OFF_SQES: Final = 0x10000000

# --- io_uring_register opcodes ------------------------------------------------------------
IORING_REGISTER_BUFFERS: Final = 0
IORING_UNREGISTER_BUFFERS: Final = 1
IORING_REGISTER_PROBE: Final = 8
IORING_REGISTER_ENABLE_RINGS: Final = 12
IORING_REGISTER_PBUF_RING: Final = 22  # 5.19
IORING_UNREGISTER_PBUF_RING: Final = 23
IO_URING_OP_SUPPORTED: Final = 1 << 0
#: Size of the ops[] array handed to IORING_REGISTER_PROBE; the kernel fills up to its own
#: last opcode (~60 on 6.x), 256 covers every opcode an u8 can name.
PROBE_OPS: Final = 256

# --- registered buffers (IORING_REGISTER_BUFFERS) -----------------------------------------
#: struct iovec: iov_base u64, iov_len u64.
IOVEC_FORMAT: Final = "=QQ"
#: IORING_MAX_REG_BUFFERS: iovecs one registration may hold.
IORING_MAX_REG_BUFFERS: Final = 1 << 14
#: The kernel refuses an iovec longer than 1 GiB (io_buffer_validate: SZ_1G).
IORING_MAX_REG_BUFFER_BYTES: Final = 1 << 30

# --- provided-buffer rings (IORING_REGISTER_PBUF_RING) -------------------------------------
#: struct io_uring_buf_reg: ring_addr u64, ring_entries u32, bgid u16, flags u16, resv u64[3].
BUF_REG_FORMAT: Final = "=QIHH3Q"
#: struct io_uring_buf (16 bytes): addr u64, len u32, bid u16, resv u16. The ring is an
#: array of these; the ``resv`` of entry 0 is the ring's tail (struct io_uring_buf_ring),
#: so an entry is written as its first 14 bytes only, never clobbering the tail.
BUF_FORMAT: Final = "=QIH"
BUF_SIZE: Final = 16
BUF_SHIFT: Final = 4
BUF_RING_TAIL_OFFSET: Final = 14
#: ring_entries must be a power of two below 65,536.
BUF_RING_MAX_ENTRIES: Final = 1 << 15

# --- poll bits (asm-generic/poll.h) used in poll32_events ---------------------------------
POLLIN: Final = 0x0001
POLLERR: Final = 0x0008
POLLHUP: Final = 0x0010
POLLRDHUP: Final = 0x2000

# --- Linux socket constants (spelled here so this module imports on every OS) --------------
SOCK_NONBLOCK: Final = 0o4000  # = O_NONBLOCK
SOCK_CLOEXEC: Final = 0o2000000  # = O_CLOEXEC
MSG_NOSIGNAL: Final = 0x4000
#: On a SEND (stream socket, 5.19+): a short send is retried by io_uring until all is sent.
MSG_WAITALL: Final = 0x100
#: <linux/in.h>: defer the port choice of bind() to connect(), so thousands of sockets on
#: one source address share ephemeral ports across different destinations.
IP_BIND_ADDRESS_NO_PORT: Final = 24

# --- socket addresses ----------------------------------------------------------------------


def family_of(host: str, port: int) -> int:
    """AF_INET or AF_INET6 for a literal address, else what the resolver says first."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
        except OSError:
            continue
        return family
    info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return int(info[0][0])


def pack_sockaddr(family: int, address: tuple[Any, ...]) -> bytes:
    """``sockaddr_in`` (16 bytes) or ``sockaddr_in6`` (28 bytes) for a connect SQE."""
    host, port = str(address[0]), int(address[1])
    try:
        ip = socket.inet_pton(family, host)
    except OSError:
        info = socket.getaddrinfo(host, port, family, socket.SOCK_STREAM)
        ip = socket.inet_pton(family, str(info[0][4][0]))
    if family == socket.AF_INET:
        # sa_family (host order), sin_port (network order), sin_addr, 8 bytes sin_zero.
        return struct.pack("=H", family) + struct.pack("!H", port) + ip + bytes(8)
    if family == socket.AF_INET6:
        flowinfo = int(address[2]) if len(address) > 2 else 0
        scope_id = int(address[3]) if len(address) > 3 else 0
        return (
            struct.pack("=H", family)
            + struct.pack("!HI", port, flowinfo)
            + ip
            + struct.pack("=I", scope_id)
        )
    raise ValueError(f"unsupported address family {family}")


# --- once-per-ring structures -------------------------------------------------------------


class io_sqring_offsets(ctypes.Structure):  # kernel spelling
    _fields_ = (
        ("head", ctypes.c_uint32),
        ("tail", ctypes.c_uint32),
        ("ring_mask", ctypes.c_uint32),
        ("ring_entries", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("dropped", ctypes.c_uint32),
        ("array", ctypes.c_uint32),
        ("resv1", ctypes.c_uint32),
        ("user_addr", ctypes.c_uint64),
    )


class io_cqring_offsets(ctypes.Structure):  # kernel spelling
    _fields_ = (
        ("head", ctypes.c_uint32),
        ("tail", ctypes.c_uint32),
        ("ring_mask", ctypes.c_uint32),
        ("ring_entries", ctypes.c_uint32),
        ("overflow", ctypes.c_uint32),
        ("cqes", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("resv1", ctypes.c_uint32),
        ("user_addr", ctypes.c_uint64),
    )


class io_uring_params(ctypes.Structure):  # kernel spelling
    _fields_ = (
        ("sq_entries", ctypes.c_uint32),
        ("cq_entries", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("sq_thread_cpu", ctypes.c_uint32),
        ("sq_thread_idle", ctypes.c_uint32),
        ("features", ctypes.c_uint32),
        ("wq_fd", ctypes.c_uint32),
        ("resv", ctypes.c_uint32 * 3),
        ("sq_off", io_sqring_offsets),
        ("cq_off", io_cqring_offsets),
    )


class kernel_timespec(ctypes.Structure):
    """``struct __kernel_timespec`` (the leading underscores would be name-mangled)."""

    _fields_ = (("tv_sec", ctypes.c_int64), ("tv_nsec", ctypes.c_int64))


class io_uring_getevents_arg(ctypes.Structure):  # kernel spelling
    # ``min_wait_usec`` was ``pad`` before 6.12; zero means "no minimum wait" on both.
    _fields_ = (
        ("sigmask", ctypes.c_uint64),
        ("sigmask_sz", ctypes.c_uint32),
        ("min_wait_usec", ctypes.c_uint32),
        ("ts", ctypes.c_uint64),
    )


# --- raw syscalls -------------------------------------------------------------------------


@functools.cache
def _syscall() -> Callable[..., int]:
    """libc's ``syscall(long, ...)`` with errno capture; loaded on first use, not import."""
    libc = ctypes.CDLL(None, use_errno=True)
    fn = libc.syscall
    fn.restype = ctypes.c_long
    # Declaring the variadic arguments as longs is exact on x86-64 SysV (all integer
    # arguments travel in registers either way) and stops ctypes from truncating
    # pointers to a 32-bit C int.
    fn.argtypes = (ctypes.c_long,) * 7
    return cast("Callable[..., int]", fn)


def io_uring_setup(entries: int, params: io_uring_params) -> int:
    """``io_uring_setup(2)``: the ring fd, or raise ``OSError`` with the errno."""
    ret = int(_syscall()(NR_IO_URING_SETUP, entries, ctypes.addressof(params), 0, 0, 0, 0))
    if ret < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
    return ret


def enter_function() -> Callable[..., int]:
    """The bare ``syscall`` function for the hot path (see ``io_uring_enter``)."""
    return _syscall()


def io_uring_enter(
    fd: int, to_submit: int, min_complete: int, flags: int, arg: int = 0, argsz: int = 0
) -> int:
    """``io_uring_enter(2)``: SQEs consumed (>= 0) or ``-errno``; never raises.

    Returning ``-errno`` instead of raising keeps EINTR/ETIME, which are normal outcomes of
    a wait, out of exception handling.
    """
    ret = int(_syscall()(NR_IO_URING_ENTER, fd, to_submit, min_complete, flags, arg, argsz))
    if ret < 0:
        return -ctypes.get_errno()
    return ret


def io_uring_register(fd: int, opcode: int, arg: int, nr_args: int) -> int:
    """``io_uring_register(2)``: the syscall's result, or raise ``OSError``."""
    ret = int(_syscall()(NR_IO_URING_REGISTER, fd, opcode, arg, nr_args, 0, 0))
    if ret < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
    return ret


def probe_opcodes(fd: int) -> set[int]:
    """Opcodes this kernel supports (IORING_REGISTER_PROBE, 5.6+)."""
    # struct io_uring_probe: last_op u8, ops_len u8, resv u16, resv2 u32[3] (16 bytes),
    # then io_uring_probe_op[]: op u8, resv u8, flags u16, resv2 u32 (8 bytes each).
    buf = (ctypes.c_char * (16 + 8 * PROBE_OPS))()
    io_uring_register(fd, IORING_REGISTER_PROBE, ctypes.addressof(buf), PROBE_OPS)
    raw = bytes(buf)
    ops_len = raw[1]
    supported: set[int] = set()
    for i in range(ops_len):
        op, _resv, op_flags, _resv2 = struct.unpack_from("=BBHI", raw, 16 + 8 * i)
        if op_flags & IO_URING_OP_SUPPORTED:
            supported.add(op)
    return supported


# --- why io_uring is unavailable ----------------------------------------------------------

IO_URING_DISABLED_PATH: Final = "/proc/sys/kernel/io_uring_disabled"


def read_io_uring_disabled(path: str = IO_URING_DISABLED_PATH) -> int | None:
    """The ``kernel.io_uring_disabled`` sysctl (6.6+), or ``None`` when it does not exist."""
    try:
        with open(path, encoding="ascii") as fh:
            return int(fh.read().strip())
    except (OSError, ValueError):
        return None


def unavailable_reason(code: int, io_uring_disabled: int | None) -> str:
    """One human line saying why ``io_uring_setup`` failed with errno ``code``."""
    name = errno.errorcode.get(code, str(code))
    head = f"io_uring_setup failed: {name}"
    if code == errno.ENOSYS:
        return f"{head} (this kernel has no io_uring, or a seccomp filter hides it)"
    if code == errno.EPERM:
        if io_uring_disabled == 2:
            return f"{head} (kernel.io_uring_disabled=2)"
        if io_uring_disabled == 1:
            return (
                f"{head} (kernel.io_uring_disabled=1 and this process is not in "
                "kernel.io_uring_group nor has CAP_SYS_ADMIN)"
            )
        return f"{head} (blocked by a seccomp or LSM policy, e.g. a container runtime)"
    if code == errno.EINVAL:
        return f"{head} (kernel too old: IORING_SETUP_SUBMIT_ALL|COOP_TASKRUN need Linux >= 5.19)"
    if code == errno.ENOMEM:
        return f"{head} (no memory for the rings; RLIMIT_MEMLOCK too low on kernels < 5.12?)"
    if code in (errno.EMFILE, errno.ENFILE):
        return f"{head} (out of file descriptors)"
    return f"{head} ({os.strerror(code)})"


# --- opening a ring --------------------------------------------------------------------------


def open_ring(
    sq_entries: int, cq_entries: int, flag_choices: Sequence[int], ops: Mapping[int, str]
) -> tuple[int, io_uring_params]:
    """A ring fd with the first setup flags the kernel accepts, checked for what we need.

    A later choice is tried only when an earlier one fails with EINVAL (flags this kernel
    does not know). Raises ``BackendUnavailable`` with a human reason for anything else:
    no io_uring, a policy forbidding it, missing features or opcodes.
    """
    for i, flags in enumerate(flag_choices):
        params = io_uring_params()
        params.flags = flags | IORING_SETUP_CQSIZE
        params.cq_entries = cq_entries
        try:
            fd = io_uring_setup(sq_entries, params)
        except OSError as exc:
            code = exc.errno or 0
            if code == errno.EINVAL and i + 1 < len(flag_choices):
                continue
            raise BackendUnavailable(unavailable_reason(code, read_io_uring_disabled())) from None
        try:
            _check_ring(fd, params, ops)
        except BaseException:
            os.close(fd)
            raise
        return fd, params
    raise BackendUnavailable("io_uring_setup: no setup flags to try")


def _check_ring(fd: int, params: io_uring_params, ops: Mapping[int, str]) -> None:
    missing = [name for bit, name in REQUIRED_FEATURES if not params.features & bit]
    if missing:
        raise BackendUnavailable(f"io_uring lacks {', '.join(missing)} (kernel too old)")
    try:
        supported = probe_opcodes(fd)
    except OSError as exc:
        raise BackendUnavailable(f"io_uring opcode probe failed: {exc}") from None
    lacking = [name for op, name in ops.items() if op not in supported]
    if lacking:
        raise BackendUnavailable(f"io_uring lacks IORING_OP_{', IORING_OP_'.join(lacking)}")


# --- the mapped rings ---------------------------------------------------------------------


@dataclass
class RingMaps:
    """The shared memory of one ring: byte views plus u32 views of the indices.

    ``sq_head``/``sq_tail``/``cq_head``/``cq_tail`` are one-element ``memoryview``s cast to
    native ``I`` so each read or write is one aligned 4-byte load or store (atomic on
    x86), never the byte-by-byte access of ``struct``'s standard-size formats.
    """

    ring: mmap.mmap
    sqe_map: mmap.mmap
    sqes: memoryview
    cqes: memoryview
    sq_head: memoryview
    sq_tail: memoryview
    sq_flags: memoryview
    cq_head: memoryview
    cq_tail: memoryview
    sq_mask: int
    sq_entries: int
    cq_mask: int
    cq_entries: int

    def close(self) -> None:
        """Release every view, then unmap (mmap refuses to close while views exist)."""
        for view in (
            self.sqes,
            self.cqes,
            self.sq_head,
            self.sq_tail,
            self.sq_flags,
            self.cq_head,
            self.cq_tail,
        ):
            view.release()
        self.sqe_map.close()
        self.ring.close()


def map_rings(fd: int, p: io_uring_params) -> RingMaps:
    """mmap the SQ/CQ rings (one mapping, IORING_FEAT_SINGLE_MMAP) and the SQE array."""
    sq_size = p.sq_off.array + p.sq_entries * 4
    cq_size = p.cq_off.cqes + p.cq_entries * CQE_SIZE
    prot = mmap.PROT_READ | mmap.PROT_WRITE
    # MAP_POPULATE: fault the ring pages in now rather than on the first hot-loop touch.
    flags = mmap.MAP_SHARED | mmap.MAP_POPULATE
    ring = mmap.mmap(fd, max(sq_size, cq_size), flags=flags, prot=prot, offset=IORING_OFF_SQ_RING)
    sqe_map = mmap.mmap(fd, p.sq_entries * SQE_SIZE, flags=flags, prot=prot, offset=IORING_OFF_SQES)
    whole = memoryview(ring)

    def u32(offset: int) -> memoryview:
        return whole[offset : offset + 4].cast("I")

    sqes = memoryview(sqe_map)
    sqes[:] = bytes(len(sqes))  # the 24-byte tail of every slot must read as zero
    sq_mask = u32(p.sq_off.ring_mask)[0]
    cq_mask = u32(p.cq_off.ring_mask)[0]
    # SQ index array: slot i always carries SQE i, because SQEs are filled strictly in ring
    # order. Filled once here, it never needs a store on the hot path.
    array = whole[p.sq_off.array : p.sq_off.array + 4 * p.sq_entries].cast("I")
    for i in range(p.sq_entries):
        array[i] = i
    array.release()
    maps = RingMaps(
        ring=ring,
        sqe_map=sqe_map,
        sqes=sqes,
        cqes=whole[p.cq_off.cqes : p.cq_off.cqes + p.cq_entries * CQE_SIZE],
        sq_head=u32(p.sq_off.head),
        sq_tail=u32(p.sq_off.tail),
        sq_flags=u32(p.sq_off.flags),
        cq_head=u32(p.cq_off.head),
        cq_tail=u32(p.cq_off.tail),
        sq_mask=sq_mask,
        sq_entries=p.sq_entries,
        cq_mask=cq_mask,
        cq_entries=p.cq_entries,
    )
    whole.release()
    return maps
