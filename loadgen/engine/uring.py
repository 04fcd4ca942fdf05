"""Linux io_uring backend, driven through ctypes (raw syscalls, no liburing, no C code).

How io_uring fits this engine, and the facts the code below relies on:

* **Two rings shared with the kernel.** The submission queue (SQ) is an array of 64-byte
  SQEs plus a head/tail pair; the completion queue (CQ) is an array of 16-byte CQEs plus
  a head/tail pair. We write SQEs and advance the SQ tail; the kernel consumes them during
  ``io_uring_enter`` and advances the SQ head. The kernel writes CQEs and advances the CQ
  tail; we read them and advance the CQ head. Since 5.4 (IORING_FEAT_SINGLE_MMAP) both
  rings live in one mapping; the SQE array is a second one. The SQ index array is filled
  with the identity once at setup, because SQEs are always used in ring order.

* **Memory ordering (x86-64 only).** x86 is TSO: stores are seen in program order and
  loads are not reordered with other loads. Without SQPOLL the kernel reads the SQ only
  inside ``io_uring_enter``, a full barrier, so writing SQEs and then storing the tail is
  safe with plain stores. On the CQ side we load the tail *before* reading CQEs and store
  the head *after* reading them, which is exactly what TSO keeps in order. Head and tail
  go through ``memoryview.cast("I")`` so each access is one aligned 4-byte load/store.
  Weakly ordered CPUs (arm64) would need real acquire/release barriers that Python cannot
  issue, so the backend refuses to start there. SQPOLL is never used: a kernel thread
  reading the SQ concurrently would need a release store of the tail and a wake-up
  protocol, and it burns a core of the two this tool runs on.

* **One ``io_uring_enter`` per ``wait()``.** Every operation only packs an SQE (~250 ns,
  ``struct.pack_into`` straight into the mmap, user_data = the caller's token). ``wait``
  then makes one syscall that both submits the batch and sleeps for the first completion
  (IORING_ENTER_EXT_ARG carries the timeout, 5.11+). A syscall per operation would cost
  more than the operation's Python. Extra enters happen only when the SQ ring is full
  (submit early, no wait) and in ``close`` of a socket with operations in flight (below).
  When completions are already waiting and nothing is queued, ``wait`` makes no syscall.

* **Capped batches.** ``wait`` hands back at most ``max_completions`` CQEs and leaves the
  rest in the CQ ring for the next call: an unbounded batch at 5,000 connections stalled
  the caller's loop. The CQ ring is sized far above the operations that can be in flight
  (two per socket, RLIMIT_NOFILE 20,000), and IORING_FEAT_NODROP keeps any overflow in
  the kernel instead of losing it.

* **Zero-byte receive is POLL_ADD, not RECV with len 0.** On 6.18 a zero-length RECV
  stays pending until the socket is readable and then completes with res 0 — and a peer
  FIN also gives res 0, so it cannot tell "data waiting" from "EOF". POLL_ADD with
  POLLIN|POLLRDHUP completes with the revents mask, which can: POLLRDHUP/POLLHUP/POLLERR
  become FLAG_HANGUP. It also costs less kernel memory per pending operation (~254 B
  versus ~830 B for a RECV, measured with slabinfo: docs/recv-modes.md).

* **Closing does not end pending requests.** A pending request holds its own reference to
  the file, so ``close(fd)`` alone leaves it waiting forever. ``close`` therefore queues
  an IORING_OP_ASYNC_CANCEL per pending request, by its user_data (the kernel finds it in
  a hash; IORING_ASYNC_CANCEL_FD would walk every pending request per cancel: 145 ms of
  CPU to close 3,000 sockets against 30 ms), and submits them *before* closing the fd.
  The same enter runs the completion work, so the cancelled requests drop their file
  references and the FIN/RST leaves before ``close`` returns. ``close_many`` queues the
  cancels of every socket and submits them in one enter that also runs all of their
  completion work (the kernel runs at most max(20, min_complete) deferred completions per
  enter since 6.13, so it asks for as many as it knows will come); one ``close`` each was
  an enter per socket. The cancelled requests complete with -ECANCELED (some with
  -EINTR), both of kind "cancelled". Cancel requests use user_data values with bit 63
  set; their own CQEs are consumed here and never reach the caller, which is why tokens
  must be < 2**63.

* **Quiet sends** (``send_quiet``) carry IOSQE_CQE_SKIP_SUCCESS (5.17, probed through
  IORING_FEAT_CQE_SKIP): the kernel posts no CQE for a success, only for a failure, so a
  request/response exchange costs one CQE (the response's) instead of two. MSG_WAITALL
  makes io_uring itself retry a short send on a stream socket (5.19+), so a success
  always means every byte went out. Nothing tells the engine when a quiet send is done,
  so it is not the socket's write side: the buffer stays referenced until the socket's
  next quiet send or its close, and its token is kept only to route a failure.

* **Accepted sockets** come back blocking unless asked otherwise, so ACCEPT passes
  SOCK_NONBLOCK|SOCK_CLOEXEC in accept_flags. Sends pass MSG_NOSIGNAL: a send to a reset
  peer must give -EPIPE, not kill the process with SIGPIPE.

* **Buffers** are addressed through ``c_char.from_buffer(buf)``. That export also pins
  the buffer, and the address is cached per buffer object: the runner reuses the same
  per-connection buffers, so the ~1 µs of ctypes work happens once per buffer, not per
  operation. The cache holds the buffer, so its ``id`` cannot be reused by another object
  while cached; each pending operation also holds its buffer until its completion is
  reaped. Consequence: a bytearray given to the engine cannot be resized (BufferError)
  while the cache holds it. Sends also accept ``bytes`` (immutable, addressed in place).

* **Operations are issued at the next ``wait()``**, when their SQEs are submitted. Until
  then a CONNECT has not even started: ``recv_now`` on such a socket says EAGAIN, as a
  connecting socket does on the other backends.

* **Completion work runs in batches (DEFER_TASKRUN, 6.1+).** Completions are posted only
  when we ask for them in ``io_uring_enter``, as one batch in our own task, instead of
  whenever the task next crosses into the kernel. Measured on the echo benchmark: less
  kernel and less Python time per round trip, because batches are fuller. It requires
  IORING_SETUP_SINGLE_ISSUER: **the ring belongs to the first thread that submits** (the
  ring starts R_DISABLED and is enabled on that thread); any other thread gets a clear
  RuntimeError. Kernels 5.19-6.0 run without it (COOP_TASKRUN only).

* **Receives poll first** (IORING_RECVSEND_POLL_FIRST) unless the previous receive on the
  socket reported more data queued (IORING_CQE_F_SOCK_NONEMPTY): a receive posted right
  after a request finds nothing yet, so its first attempt would be wasted kernel work.

* **Receive buffers the kernel fills**: the provided-buffer ring (``setup_buffer_ring``,
  ``recv_ring``, multishot receives) and registered buffers (``register_buffers``,
  ``recv_fixed``, READ_FIXED) are set up and accounted in ``uring_buffers.py``, whose header
  explains them; this module packs their SQEs and reaps their CQEs. A registered buffer
  past the first iovec needs a non-zero buf_index, a field outside the 40-byte head we
  pack: such slots are remembered and zeroed once submitted, because CONNECT, ACCEPT and
  POLL_ADD refuse a stale one with EINVAL.

No locks anywhere: one thread drives a backend.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import itertools
import os
import socket
import struct
import sys
import time
import weakref
from collections.abc import Iterable, Iterator
from typing import Any, ClassVar, Final

from loadgen.engine import uring_abi as abi
from loadgen.engine import uring_buffers
from loadgen.engine.base import (
    DEFAULT_MAX_COMPLETIONS,
    FLAG_HANGUP,
    FLAG_READABLE,
    BackendUnavailable,
    Buffer,
    Completion,
    ErrorKind,
    FeatureUnavailable,
    check_close_many,
    posix_end_error,
    posix_error_kind,
)
from loadgen.engine.uring_buffers import BufferRing

__all__ = ["UringBackend"]

_MASK32: Final = 0xFFFFFFFF  # ring head/tail are free-running u32 counters

# Opcodes as plain module constants: one global load each on the hot path.
_OP_POLL_ADD: Final = abi.IORING_OP_POLL_ADD
_OP_ACCEPT: Final = abi.IORING_OP_ACCEPT
_OP_CONNECT: Final = abi.IORING_OP_CONNECT
_OP_SEND: Final = abi.IORING_OP_SEND
_OP_RECV: Final = abi.IORING_OP_RECV
_OP_READ_FIXED: Final = abi.IORING_OP_READ_FIXED

# Operation kinds kept per pending token (small ints: compared in the reap loop).
_K_RECV: Final = 0
_K_SEND: Final = 1
_K_POLL: Final = 2
_K_CONNECT: Final = 3
_K_ACCEPT: Final = 4
_K_RING: Final = 5  # recv_ring: stays pending while its CQEs carry IORING_CQE_F_MORE

# user_data of our own cancel requests: bit 63 set, so they can never equal a token.
_UD_INTERNAL: Final = 1 << 63
_UD_CANCEL_TOKEN: Final = _UD_INTERNAL | 1
_UD_CANCEL_ANY: Final = _UD_INTERNAL | 3

_POLL_EVENTS: Final = abi.POLLIN | abi.POLLRDHUP
# RECV's ioprio: arm the poll first, unless the previous receive on the socket reported
# more data waiting (IORING_CQE_F_SOCK_NONEMPTY). A receive posted right after a request
# went out finds nothing yet, and the skipped attempt measured ~1.5 us of kernel time per
# echo round trip; a socket known to be non-empty is read at once.
_POLL_FIRST: Final = abi.IORING_RECVSEND_POLL_FIRST
_SOCK_NONEMPTY: Final = abi.IORING_CQE_F_SOCK_NONEMPTY
_NOSIG: Final = abi.MSG_NOSIGNAL  # a send to a reset peer gives -EPIPE, not SIGPIPE
# A quiet send: no CQE on success, and io_uring itself retries a short send (MSG_WAITALL on
# a stream socket, 5.19+) so success always means every byte went out.
_QUIET_SQE: Final = abi.IOSQE_CQE_SKIP_SUCCESS
_QUIET_FLAGS: Final = abi.MSG_NOSIGNAL | abi.MSG_WAITALL
_HANGUP_EVENTS: Final = abi.POLLRDHUP | abi.POLLHUP | abi.POLLERR
_FLAGS_HANGUP: Final = FLAG_READABLE | FLAG_HANGUP
_ACCEPT_FLAGS: Final = abi.SOCK_NONBLOCK | abi.SOCK_CLOEXEC
_SOCK_TYPE: Final = socket.SOCK_STREAM | abi.SOCK_NONBLOCK | abi.SOCK_CLOEXEC
_LINGER_RST: Final = struct.pack("ii", 1, 0)  # struct linger {l_onoff=1, l_linger=0}: RST
# Provided-buffer ring: the one buffer group (bgid 0, so buf_group in the SQE stays zero and
# no slot is left dirty), a multishot receive's ioprio, and the CQE flags it reports.
_BUFFER_SELECT: Final = abi.IOSQE_BUFFER_SELECT
_RECV_MULTISHOT: Final = abi.IORING_RECV_MULTISHOT
_CQE_F_BUFFER: Final = abi.IORING_CQE_F_BUFFER
_CQE_F_MORE: Final = abi.IORING_CQE_F_MORE
_BID_SHIFT: Final = abi.IORING_CQE_BUFFER_SHIFT
_BUF_INDEX: Final = abi.SQE_BUF_INDEX_OFFSET
_U16: Final = struct.Struct("=H")

# Ring sizes. 4,096 SQEs = 256 KiB: more than one loop iteration ever queues at 1,000s of
# connections, and a full ring just costs an early submit. 65,536 CQEs (the kernel's
# maximum, 1 MiB) cover two operations per socket at RLIMIT_NOFILE 20,000 plus cancels.
_SQ_ENTRIES: Final = 4096
_CQ_ENTRIES: Final = 65536
# Buffer address cache bounds: entries, and bytes kept alive by it (a cached buffer is
# referenced, so the cache must not hold gigabytes of buffers the caller has dropped).
# 65,536 entries cover a buffer or two per connection at RLIMIT_NOFILE 20,000.
_BUF_CACHE_MAX: Final = 65536
_BUF_CACHE_BYTES: Final = 512 << 20
# Memoryviews are cached apart, a few only, and dropped wholesale when full: most are slices
# made for one operation (``memoryview(buf)[:n]``). Sharing the big cache with them filled
# it with tens of thousands of dead views and ctypes exports, and trimming that (plus the
# garbage collector walking it) stalled the loop for 20-80 ms every few seconds.
_VIEW_CACHE_MAX: Final = 256
# Cached sockaddrs (one per distinct destination/source address).
_ADDR_CACHE_MAX: Final = 4096
# close_many: the most its enter waits for the cancelled operations' completion work,
# which the kernel does at once (a cancelled receive is only taken off its poll queue).
_CLOSE_WORK_NS: Final = 100_000_000
# Upper bound on waiting for cancelled operations to drain during shutdown().
_SHUTDOWN_DRAIN_S: Final = 2.0

# Setup flags. SUBMIT_ALL (5.18): one SQE failing at submission does not stop the rest;
# its error arrives as a CQE like any other. COOP_TASKRUN (5.19): completion work runs
# when we next enter the kernel instead of interrupting us with an IPI; we enter once per
# loop anyway. Setup failing with EINVAL on these therefore also means "kernel older than
# 5.19", which IORING_ASYNC_CANCEL_ANY (shutdown) needs too.
_SETUP_BASE: Final = (
    abi.IORING_SETUP_CQSIZE
    | abi.IORING_SETUP_CLAMP
    | abi.IORING_SETUP_SUBMIT_ALL
    | abi.IORING_SETUP_COOP_TASKRUN
)
# DEFER_TASKRUN (6.1, needs SINGLE_ISSUER): completion work waits until we ask for
# completions and then runs as one batch in our own task. Measured on the 64-byte echo:
# ~15% less kernel time and ~15% less Python time per round trip (fuller batches). It
# ties the ring to one thread; R_DISABLED lets that be the first thread that submits
# (see _first_enter) rather than the one that built the backend.
_SETUP_DEFER: Final = (
    _SETUP_BASE
    | abi.IORING_SETUP_SINGLE_ISSUER
    | abi.IORING_SETUP_DEFER_TASKRUN
    | abi.IORING_SETUP_R_DISABLED
)
_OPS: Final = {  # opcodes this backend uses: the kernel must have every one
    abi.IORING_OP_POLL_ADD: "POLL_ADD",
    abi.IORING_OP_ACCEPT: "ACCEPT",
    abi.IORING_OP_ASYNC_CANCEL: "ASYNC_CANCEL",
    abi.IORING_OP_CONNECT: "CONNECT",
    abi.IORING_OP_SEND: "SEND",
    abi.IORING_OP_RECV: "RECV",
}

# Entry of the pending table: (socket state, kind, object kept alive until completion).
_Op = tuple["_Sock", int, object]


class _Sock:
    """Per-socket state: the socket object and the token of each pending side (-1: none)."""

    __slots__ = ("family", "fd", "quiet", "quiet_buf", "rd", "rprio", "sock", "wr")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.family = sock.family
        self.rd = -1  # token of the pending recv / recv_zero / accept
        self.wr = -1  # token of the pending send / connect
        self.rprio = _POLL_FIRST  # ioprio of the next RECV (see _POLL_FIRST)
        self.quiet = -1  # token of the last quiet send (send_quiet), whose failure may come
        self.quiet_buf: object = None  # ... and its buffer, kept until the next or close


def _unknown(handle: int) -> ValueError:
    return ValueError(f"unknown socket handle {handle!r} (closed, or not made by this engine)")


def _busy(handle: int, side: str, token: int) -> RuntimeError:
    return RuntimeError(
        f"a {side}-side operation (token {token}) is already pending on socket {handle}"
    )


def _bad_token(token: int, ops: dict[int, _Op]) -> ValueError:
    if token in ops:
        return ValueError(f"token {token} is already pending; tokens must be unique")
    return ValueError(f"token {token!r} out of range: tokens are ints in [0, 2**63)")


def _abandon(
    ring_fd: int,
    maps: abi.RingMaps,
    ops: dict[int, _Op],
    regions: list[object],
    leaked: list[object],
) -> None:
    """Finalizer for a backend dropped without ``shutdown()``.

    The kernel may still write into buffers of pending operations until the ring is torn
    down, so those buffers (and the provided-buffer ring's memory, which receives write
    into by address) are leaked on purpose (kept referenced) rather than freed.
    """
    if ops:
        leaked.append(ops)
        leaked.append(list(regions))
    try:
        maps.close()
    finally:
        os.close(ring_fd)


_LEAKED: list[object] = []


class UringBackend:
    """Completion engine over io_uring. See the module docstring and ``engine.base``."""

    name: ClassVar[str] = "io_uring"

    # Slots: the hot path reads a dozen attributes per operation; slot access is the
    # cheapest attribute access CPython has.
    __slots__ = (
        "__weakref__",
        "_addrs",
        "_buf_bytes",
        "_bufs",
        "_conns",
        "_cq_entries",
        "_cq_head",
        "_cq_khead",
        "_cq_ktail",
        "_cq_mask",
        "_cqes",
        "_dirty",
        "_enter",
        "_ext_arg",
        "_ext_arg_addr",
        "_ext_arg_size",
        "_finalizer",
        "_fixed",
        "_iter_cqes",
        "_maps",
        "_ops",
        "_pack",
        "_posted_recv_bytes",
        "_quiet",
        "_regions",
        "_ring",
        "_ring_fd",
        "_setup_flags",
        "_sq_entries",
        "_sq_khead",
        "_sq_ktail",
        "_sq_limit",
        "_sq_mask",
        "_sq_tail",
        "_sqes",
        "_syscall",
        "_ts",
        "_views",
        "supports_buffer_ring",
        "supports_fixed_buffers",
        "supports_quiet_send",
    )

    def __init__(self, sq_entries: int = _SQ_ENTRIES, cq_entries: int = _CQ_ENTRIES) -> None:
        if sys.platform != "linux":
            raise BackendUnavailable(f"io_uring is Linux-only (this is {sys.platform})")
        machine = os.uname().machine
        if machine not in ("x86_64", "amd64"):
            raise BackendUnavailable(
                f"the io_uring backend relies on x86-64 memory ordering (TSO); this is {machine}"
            )
        fd, params = abi.open_ring(sq_entries, cq_entries, (_SETUP_DEFER, _SETUP_BASE), _OPS)
        try:
            maps = abi.map_rings(fd, params)
        except BaseException:
            os.close(fd)
            raise
        self._ring_fd = fd
        self._setup_flags = int(params.flags)
        self._maps: abi.RingMaps | None = maps
        self._sqes = maps.sqes
        self._cqes = maps.cqes
        self._sq_khead = maps.sq_head
        self._sq_ktail = maps.sq_tail
        self._cq_khead = maps.cq_head
        self._cq_ktail = maps.cq_tail
        self._sq_mask = maps.sq_mask
        self._sq_entries = maps.sq_entries
        self._cq_mask = maps.cq_mask
        self._cq_entries = maps.cq_entries
        self._pack = abi.SQE_HEAD.pack_into
        self._iter_cqes = abi.CQE.iter_unpack
        self._syscall = abi.enter_function()
        # Until the first submission, _enter enables the ring (R_DISABLED) on that thread.
        self._enter = (
            self._first_enter if params.flags & abi.IORING_SETUP_R_DISABLED else self._syscall
        )
        self._sq_tail = maps.sq_tail[0]  # next SQE slot (free-running, masked on store)
        self._sq_limit = self._sq_tail + maps.sq_entries  # first tail value that is "full"
        self._cq_head = maps.cq_head[0]
        # The wait timeout: io_uring_getevents_arg -> __kernel_timespec, made once.
        self._ts = abi.kernel_timespec()
        self._ext_arg = abi.io_uring_getevents_arg()
        self._ext_arg.ts = ctypes.addressof(self._ts)
        self._ext_arg_addr = ctypes.addressof(self._ext_arg)
        self._ext_arg_size = ctypes.sizeof(self._ext_arg)
        self._conns: dict[int, _Sock] = {}
        self._ops: dict[int, _Op] = {}
        # Quiet sends by token: their CQE comes only on failure (send_quiet).
        self._quiet: dict[int, _Sock] = {}
        self.supports_quiet_send = bool(params.features & abi.IORING_FEAT_CQE_SKIP)
        # id(buffer) -> (buffer, ctypes export, address, nbytes)
        self._bufs: dict[int, tuple[object, object, int, int]] = {}
        self._views: dict[int, tuple[object, object, int, int]] = {}
        self._buf_bytes = 0
        self._posted_recv_bytes = 0  # buffers of pending RECVs (submitted or not yet)
        # (family, address) -> (sockaddr bytearray, ctypes export, address, length)
        self._addrs: dict[tuple[int, tuple[Any, ...]], tuple[bytearray, object, int, int]] = {}
        # Multishot RECV came in 6.0; DEFER_TASKRUN (6.1) being accepted proves the kernel
        # is at least that new, so the ring is offered only then. Registered buffers and
        # READ_FIXED are as old as io_uring itself.
        self.supports_buffer_ring = bool(self._setup_flags & abi.IORING_SETUP_DEFER_TASKRUN)
        self.supports_fixed_buffers = True
        # Provided-buffer ring (setup_buffer_ring; uring_buffers.py).
        self._ring: BufferRing | None = None
        # Registered buffers (register_buffers): (address, size, buf_index) per buffer.
        self._fixed: list[tuple[int, int, int]] | None = None
        # (SQ index, byte offset) of slots whose buf_index was set: zeroed once submitted.
        self._dirty: list[tuple[int, int]] = []
        # Memory the kernel addresses (rings, buffers) and the ctypes exports pinning it.
        self._regions: list[object] = []
        self._finalizer = weakref.finalize(
            self, _abandon, fd, maps, self._ops, self._regions, _LEAKED
        )

    # --- sockets -------------------------------------------------------------------------

    def _adopt(self, sock: socket.socket) -> int:
        st = _Sock(sock)
        self._conns[st.fd] = st
        return st.fd

    def tcp_socket(self, family: int = socket.AF_INET) -> int:
        self._live()
        sock = socket.socket(family, _SOCK_TYPE)
        # Request/response load: a small write must leave now, not wait for an ACK (Nagle).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self._adopt(sock)

    def bind(self, handle: int, address: tuple[str, int]) -> None:
        sock = self._sock(handle).sock
        if address[1] == 0:
            # Port chosen at connect time: many sockets per source address share ports.
            sock.setsockopt(socket.IPPROTO_IP, abi.IP_BIND_ADDRESS_NO_PORT, 1)
        sock.bind(address)

    def listen_socket(
        self, host: str, port: int, backlog: int, *, reuse_port: bool = False
    ) -> tuple[int, tuple[str, int]]:
        self._live()
        family = abi.family_of(host, port)
        sock = socket.socket(family, _SOCK_TYPE)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:  # several processes accept on one port; the kernel spreads them
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((host, port))
            sock.listen(backlog)
        except BaseException:
            sock.close()
            raise
        bound = sock.getsockname()
        return self._adopt(sock), (str(bound[0]), int(bound[1]))

    def close(self, handle: int, *, abort: bool = False) -> None:
        try:
            st = self._conns.pop(handle)
        except KeyError:
            raise _unknown(handle) from None
        # The fd is resolved when the cancel is issued, so submit before closing it.
        if self._queue_close(st, abort):
            self._submit_now()
        st.sock.close()

    def close_many(self, handles: Iterable[int], *, abort: bool = False) -> None:
        """Close several sockets with one batch of cancels: their ASYNC_CANCEL SQEs are
        queued together and submitted by one ``io_uring_enter`` (one per SQ ring's worth,
        4,096), then every fd is closed. One ``close`` each would be an enter per socket."""
        self._live()
        closing = [self._conns.pop(h) for h in check_close_many(handles, self._conns)]
        # CQEs certain to come: one per cancel request and one per cancelled operation,
        # less those possibly in the ring already (an operation's CQE not yet reaped).
        unreaped = (self._cq_ktail[0] - self._cq_head) & _MASK32
        cancels = operations = 0
        try:
            for st in closing:
                operations += (st.rd >= 0) + (st.wr >= 0)
                cancels += self._queue_close(st, abort)
        finally:
            # Submitted before any fd is closed: a full SQ ring submits early in _push,
            # while every fd is still open too.
            if cancels:
                self._submit_now(unreaped + cancels + max(0, operations - unreaped))
            for st in closing:
                st.sock.close()

    def _queue_close(self, st: _Sock, abort: bool) -> int:
        """The part of closing ``st`` before its fd goes: RST if asked, and a cancel of
        whatever is pending on it queued; returns how many cancels (any: submit them
        before closing the fd, so the cancelled requests let go of the file first)."""
        if abort:
            # OSError: already reset by the peer, nothing left to abort.
            with contextlib.suppress(OSError):
                st.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
        if st.quiet >= 0:
            # Its failure is no longer of interest; a cancelled one is dropped in _reap.
            self._quiet.pop(st.quiet, None)
        # By token, not by fd: the kernel finds a request by its user_data in a hash,
        # while IORING_ASYNC_CANCEL_FD walks every pending request for each cancel, which
        # made closing 3,000 sockets cost 145 ms of CPU instead of 30.
        cancels = 0
        for token in (st.rd, st.wr, st.quiet):
            if token >= 0:  # a quiet send already done just answers -ENOENT
                self._push(abi.IORING_OP_ASYNC_CANCEL, -1, token, 0, _UD_CANCEL_TOKEN)
                cancels += 1
        return cancels

    # --- operations ----------------------------------------------------------------------

    def connect(self, handle: int, address: tuple[str, int], token: int) -> None:
        st = self._claim(handle, token, write=True)
        sa = self._sockaddr(st.family, address)
        # CONNECT: addr = sockaddr pointer, off = its length.
        self._push(_OP_CONNECT, handle, sa[2], 0, token, off=sa[3])
        st.wr = token
        self._ops[token] = (st, _K_CONNECT, sa)

    def accept(self, listen_handle: int, token: int) -> None:
        st = self._claim(listen_handle, token, write=False)
        # ACCEPT: addr/addr2 (peer address out-pointers) NULL, accept_flags in op_flags.
        self._push(_OP_ACCEPT, listen_handle, 0, _ACCEPT_FLAGS, token)
        st.rd = token
        self._ops[token] = (st, _K_ACCEPT, None)

    # send / recv / recv_zero are the hot path: everything inline, one pack_into each. Their
    # handle/busy/token checks repeat _claim's on purpose: a method call per operation is
    # measurable there (benchmarks/echo.py); the colder operations call _claim.

    def send(self, handle: int, data: Buffer | bytes, token: int) -> None:
        try:
            st = self._conns[handle]
        except KeyError:
            raise _unknown(handle) from None
        if st.wr >= 0:
            raise _busy(handle, "write", st.wr)
        if token >> 63 or token in self._ops:
            raise _bad_token(token, self._ops)
        buf = self._bufs.get(id(data)) or self._views.get(id(data))
        if buf is None:
            buf = self._pin_for_send(data)
        tail = self._sq_tail
        if tail >= self._sq_limit:
            tail = self._make_room()
        # SEND: addr/len = the data, msg_flags (op_flags) = MSG_NOSIGNAL.
        off = (tail & self._sq_mask) << 6
        self._pack(self._sqes, off, _OP_SEND, 0, 0, handle, 0, buf[2], buf[3], _NOSIG, token)
        self._sq_tail = tail + 1
        st.wr = token
        self._ops[token] = (st, _K_SEND, buf)

    def send_quiet(self, handle: int, data: Buffer | bytes, token: int) -> None:
        """A send whose success is not reported (IOSQE_CQE_SKIP_SUCCESS): see engine.base.
        Not tracked as the write side (nothing would ever clear it); the caller sends again
        only once a response proves this one went out. Its buffer stays referenced until
        the socket's next quiet send or its close (whose cancel, submitted before the fd is
        closed, ends one still waiting for room before close returns)."""
        try:
            st = self._conns[handle]
        except KeyError:
            raise _unknown(handle) from None
        if st.wr >= 0:
            raise _busy(handle, "write", st.wr)
        if token >> 63 or token in self._ops:
            raise _bad_token(token, self._ops)
        buf = self._bufs.get(id(data)) or self._views.get(id(data))
        if buf is None:
            buf = self._pin_for_send(data)
        tail = self._sq_tail
        if tail >= self._sq_limit:
            tail = self._make_room()
        off = (tail & self._sq_mask) << 6
        self._pack(
            self._sqes, off, _OP_SEND, _QUIET_SQE, 0, handle, 0, buf[2], buf[3], _QUIET_FLAGS, token
        )
        self._sq_tail = tail + 1
        st.quiet = token
        st.quiet_buf = buf
        self._quiet[token] = st

    def recv(self, handle: int, buf: Buffer, token: int) -> None:
        try:
            st = self._conns[handle]
        except KeyError:
            raise _unknown(handle) from None
        if st.rd >= 0:
            raise _busy(handle, "read", st.rd)
        if token >> 63 or token in self._ops:
            raise _bad_token(token, self._ops)
        pin = self._bufs.get(id(buf)) or self._views.get(id(buf))
        if pin is None:
            pin = self._pin(buf)
        tail = self._sq_tail
        if tail >= self._sq_limit:
            tail = self._make_room()
        # RECV: ioprio = POLL_FIRST or 0 (see _POLL_FIRST), addr/len = the buffer.
        off = (tail & self._sq_mask) << 6
        self._pack(self._sqes, off, _OP_RECV, 0, st.rprio, handle, 0, pin[2], pin[3], 0, token)
        self._sq_tail = tail + 1
        st.rd = token
        self._ops[token] = (st, _K_RECV, pin)
        self._posted_recv_bytes += pin[3]

    def recv_zero(self, handle: int, token: int) -> None:
        try:
            st = self._conns[handle]
        except KeyError:
            raise _unknown(handle) from None
        if st.rd >= 0:
            raise _busy(handle, "read", st.rd)
        if token >> 63 or token in self._ops:
            raise _bad_token(token, self._ops)
        tail = self._sq_tail
        if tail >= self._sq_limit:
            tail = self._make_room()
        # POLL_ADD (one-shot: len 0), poll32_events in op_flags. See the module docstring.
        off = (tail & self._sq_mask) << 6
        self._pack(self._sqes, off, _OP_POLL_ADD, 0, 0, handle, 0, 0, 0, _POLL_EVENTS, token)
        self._sq_tail = tail + 1
        st.rd = token
        self._ops[token] = (st, _K_POLL, None)

    # --- provided-buffer ring and registered buffers (uring_buffers.py) ----------------

    def setup_buffer_ring(self, count: int, size: int) -> None:
        self._live()
        if not self.supports_buffer_ring:
            raise FeatureUnavailable(
                "this kernel's io_uring has no multishot receive (needs Linux 6.1 or later)"
            )
        if self._ring is not None:
            raise RuntimeError("this engine already has a buffer ring")
        ring = BufferRing(self._ring_fd, count, size)
        self._regions += ring.regions
        self._ring = ring

    def recv_ring(
        self, handle: int, token: int, *, multishot: bool = True, max_bytes: int = 0
    ) -> None:
        st = self._claim(handle, token, write=False)
        if self._ring is None:
            raise RuntimeError("recv_ring needs setup_buffer_ring first")
        if multishot:
            if max_bytes:
                raise ValueError("max_bytes limits one-shot ring receives only")
            prio = _RECV_MULTISHOT
        elif not 0 <= max_bytes < 1 << 32:
            raise ValueError(f"max_bytes must be 0 (a whole buffer) to 4 GiB, got {max_bytes}")
        else:
            prio = 0
        tail = self._sq_tail
        if tail >= self._sq_limit:
            tail = self._make_room()
        # RECV with BUFFER_SELECT: no address; buf_group (bgid 0) is the zero already in
        # the slot; len 0 (multishot, which takes no length before 6.16) or a cap.
        off = (tail & self._sq_mask) << 6
        self._pack(
            self._sqes, off, _OP_RECV, _BUFFER_SELECT, prio, handle, 0, 0, max_bytes, 0, token
        )
        self._sq_tail = tail + 1
        st.rd = token
        self._ops[token] = (st, _K_RING, None)

    def ring_bytes(self, bid: int, nbytes: int) -> bytes:
        ring = self._ring
        if ring is None:
            raise RuntimeError("ring_bytes needs setup_buffer_ring first")
        return ring.bytes(bid, nbytes)

    def release_ring_buffer(self, bid: int) -> None:
        ring = self._ring
        if ring is None:
            raise ValueError(f"ring buffer {bid} is not lent out (no buffer ring)")
        ring.release(bid)

    def register_buffers(self, count: int, size: int) -> list[memoryview]:
        self._live()
        if self._fixed is not None:
            raise RuntimeError("this engine already has registered buffers")
        fixed, views, regions = uring_buffers.register_buffers(self._ring_fd, count, size)
        self._regions += regions
        self._fixed = fixed
        return views

    def recv_fixed(self, handle: int, index: int, token: int, nbytes: int = 0) -> None:
        st = self._claim(handle, token, write=False)
        fixed = self._fixed
        if fixed is None:
            raise RuntimeError("recv_fixed needs register_buffers first")
        addr, size, buf_index = fixed[index]
        if nbytes:
            if not 0 < nbytes <= size:
                raise ValueError(f"registered buffer {index} holds {size} bytes, not {nbytes}")
            size = nbytes
        tail = self._sq_tail
        if tail >= self._sq_limit:
            tail = self._make_room()
        # READ_FIXED: addr/len inside registered buffer buf_index; off 0 (a socket has no
        # position: sock_read_iter refuses any other); ioprio 0 (for reads it is the I/O
        # priority, not POLL_FIRST).
        off = (tail & self._sq_mask) << 6
        sqes = self._sqes
        self._pack(sqes, off, _OP_READ_FIXED, 0, 0, handle, 0, addr, size, 0, token)
        if buf_index:
            _U16.pack_into(sqes, off + _BUF_INDEX, buf_index)
            self._dirty.append((tail, off))
        self._sq_tail = tail + 1
        st.rd = token
        keep = (None, None, addr, size)  # reaped as a RECV: keep[3] is the posted size
        self._ops[token] = (st, _K_RECV, keep)
        self._posted_recv_bytes += size

    def cancel(self, handle: int, token: int) -> None:
        st = self._sock(handle)
        op = self._ops.get(token)
        if (op is None or op[0] is not st) and not (st.quiet == token and token in self._quiet):
            return  # already completed (maybe not yet reaped): nothing to cancel
        # Matches by user_data; if the request finished first the cancel gets -ENOENT and
        # the caller still sees exactly one completion for the token.
        self._push(abi.IORING_OP_ASYNC_CANCEL, -1, token, 0, _UD_CANCEL_TOKEN)

    # --- immediate -----------------------------------------------------------------------

    def end_error(self, handle: int) -> int:
        state = self._conns.get(handle)
        return 0 if state is None else posix_end_error(state.sock)

    def recv_now(self, handle: int, buf: Buffer) -> int:
        try:
            st = self._conns[handle]
        except KeyError:
            raise _unknown(handle) from None
        try:
            return st.sock.recv_into(buf)
        except BlockingIOError:
            return -errno.EAGAIN
        except OSError as exc:
            code = exc.errno or errno.EIO
            if code == errno.ENOTCONN and st.wr >= 0 and self._ops[st.wr][1] == _K_CONNECT:
                # The CONNECT SQE may not even be submitted yet (that happens in wait()):
                # like a socket still in SYN_SENT elsewhere, there is nothing to read *yet*.
                return -errno.EAGAIN
            return -code

    def wait(
        self, timeout_s: float | None, max_completions: int = DEFAULT_MAX_COMPLETIONS
    ) -> list[Completion]:
        if max_completions < 1:
            raise ValueError(f"max_completions must be >= 1, not {max_completions}")
        self._live()
        tail = self._sq_tail
        to_submit = (tail - self._sq_khead[0]) & _MASK32
        if to_submit or self._cq_ktail[0] == self._cq_head:
            if to_submit:
                self._sq_ktail[0] = tail & _MASK32
            self._enter_and_wait(to_submit, timeout_s)
        return self._reap(max_completions)

    def error_kind(self, code: int) -> ErrorKind:
        return posix_error_kind(code)

    def would_block(self, code: int) -> bool:
        return code in (errno.EAGAIN, errno.EWOULDBLOCK)

    def pending(self) -> int:
        return len(self._ops)

    def posted_recv_bytes(self) -> int:
        ring = self._ring
        return self._posted_recv_bytes + (ring.posted_bytes() if ring is not None else 0)

    def shutdown(self) -> None:
        maps = self._maps
        if maps is None:
            return
        try:
            if self._ops:
                # Cancel everything and reap it, so the kernel is done with every buffer
                # before the references to them are dropped.
                self._push(
                    abi.IORING_OP_ASYNC_CANCEL, -1, 0, abi.IORING_ASYNC_CANCEL_ANY, _UD_CANCEL_ANY
                )
                deadline = time.monotonic() + _SHUTDOWN_DRAIN_S
                while self._ops and time.monotonic() < deadline:
                    self.wait(0.05, self._cq_entries)
        except (OSError, RuntimeError):
            pass  # e.g. called from a thread that does not own the ring: the finalizer
            #       below leaks what is still pending instead of freeing it under the kernel
        finally:
            for st in self._conns.values():
                st.sock.close()
            self._conns.clear()
            self._finalizer()  # unmaps, closes the ring fd, leaks still-pending buffers
            # The ring fd is closed: the kernel is done with the buffer ring and releases
            # the registered buffers' pins. Drop our references (views handed out by
            # register_buffers keep their region mapped until they go too).
            self._regions.clear()
            self._ring = None
            self._fixed = None
            self._dirty.clear()
            self._maps = None
            self._ops = {}  # not clear(): the finalizer may have kept the old one leaked
            self._quiet.clear()
            self._bufs.clear()
            self._views.clear()
            self._buf_bytes = 0
            self._posted_recv_bytes = 0
            self._addrs.clear()

    # --- internals -----------------------------------------------------------------------

    def _live(self) -> None:
        if self._maps is None:
            raise RuntimeError("the io_uring backend has been shut down")

    def _sock(self, handle: int) -> _Sock:
        try:
            return self._conns[handle]
        except KeyError:
            raise _unknown(handle) from None

    def _claim(self, handle: int, token: int, *, write: bool) -> _Sock:
        """The socket of a new operation, checked: a known handle, nothing pending on that
        side (``write``: send/connect; else the receive side), and a new token < 2**63."""
        try:
            st = self._conns[handle]
        except KeyError:
            raise _unknown(handle) from None
        pending = st.wr if write else st.rd
        if pending >= 0:
            raise _busy(handle, "write" if write else "read", pending)
        if token >> 63 or token in self._ops:
            raise _bad_token(token, self._ops)
        return st

    def _pin(self, buf: Buffer) -> tuple[object, object, int, int]:
        """Find (once per buffer object) the address of a writable buffer."""
        self._live()
        nbytes = buf.nbytes if isinstance(buf, memoryview) else len(buf)
        try:
            # A single c_char at the start exports the whole buffer and costs half of a
            # (c_char * n) array, whose type ctypes would have to look up per size.
            export = (
                ctypes.c_char.from_buffer(buf) if nbytes else (ctypes.c_char * 0).from_buffer(buf)
            )
        except (TypeError, BufferError) as exc:
            raise TypeError(f"engine buffers must be writable and contiguous: {exc}") from None
        entry = (buf, export, ctypes.addressof(export), nbytes)
        if isinstance(buf, memoryview):
            if len(self._views) >= _VIEW_CACHE_MAX:
                self._views.clear()
            self._views[id(buf)] = entry
            return entry
        if len(self._bufs) >= _BUF_CACHE_MAX or self._buf_bytes >= _BUF_CACHE_BYTES:
            self._trim_buffer_cache()
        self._bufs[id(buf)] = entry
        self._buf_bytes += nbytes
        return entry

    def _pin_for_send(self, data: object) -> tuple[object, object, int, int]:
        """Like ``_pin``, but a send may also read from ``bytes`` or a read-only view."""
        if type(data) is bytes:
            # Immutable, so its storage is stable while referenced; c_char_p points into
            # it without a copy.
            ptr = ctypes.c_char_p(data)
            entry = (data, ptr, ctypes.cast(ptr, ctypes.c_void_p).value or 0, len(data))
            self._bufs[id(data)] = entry
            self._buf_bytes += len(data)
            return entry
        if isinstance(data, memoryview) and data.readonly:
            # Not cached: what the view shows may change, so send a fresh copy each time
            # (the pending operation keeps the copy alive).
            copy = bytearray(data)
            export = ctypes.c_char.from_buffer(copy) if copy else None
            return (copy, export, ctypes.addressof(export) if export else 0, len(copy))
        if not isinstance(data, bytearray | memoryview):
            raise TypeError(f"cannot send a {type(data).__name__}: use bytes-like data")
        return self._pin(data)

    def _trim_buffer_cache(self) -> None:
        # Pending operations hold their own buffers, so dropping cache entries is always
        # safe; it only costs a new lookup later. Only long-lived objects (per-connection
        # bytearrays, bytes) live here, so a full cache means the caller keeps dropping
        # buffers: start over.
        self._bufs = {}
        self._buf_bytes = 0

    def _sockaddr(
        self, family: int, address: tuple[Any, ...]
    ) -> tuple[bytearray, object, int, int]:
        """Packed sockaddr for ``address``, cached per destination and kept alive."""
        key = (family, address)
        entry = self._addrs.get(key)
        if entry is None:
            raw = bytearray(abi.pack_sockaddr(family, address))
            export = (ctypes.c_char * len(raw)).from_buffer(raw)
            entry = (raw, export, ctypes.addressof(export), len(raw))
            if len(self._addrs) >= _ADDR_CACHE_MAX:
                self._addrs.clear()  # pending connects keep their own sockaddr alive
            self._addrs[key] = entry
        return entry

    def _push(
        self, opcode: int, fd: int, addr: int, op_flags: int, user_data: int, off: int = 0
    ) -> None:
        """Queue an SQE outside the hot path (connect, accept, cancels)."""
        self._live()
        tail = self._sq_tail
        if tail >= self._sq_limit:
            tail = self._make_room()
        pos = (tail & self._sq_mask) << abi.SQE_SHIFT
        self._pack(self._sqes, pos, opcode, 0, 0, fd, off, addr, 0, op_flags, user_data)
        self._sq_tail = tail + 1

    def _first_enter(self, *args: int) -> int:
        """``_enter`` until the ring is enabled: enable it here, on the submitting thread."""
        try:
            abi.io_uring_register(self._ring_fd, abi.IORING_REGISTER_ENABLE_RINGS, 0, 0)
        except OSError as exc:
            raise OSError(exc.errno, f"io_uring: enabling the ring failed: {exc}") from None
        self._enter = self._syscall
        return self._syscall(*args)

    def _submit_now(self, min_complete: int = 0) -> int:
        """Submit everything queued without waiting; return SQEs still unsubmitted.

        ``min_complete``: CQEs certain to be in the CQ ring once the completion work of
        what is submitted has run (``close_many``): the enter runs that much of it, waiting
        at most ``_CLOSE_WORK_S`` should the kernel be slow to cancel."""
        tail = self._sq_tail
        to_submit = (tail - self._sq_khead[0]) & _MASK32
        if to_submit:
            self._sq_ktail[0] = tail & _MASK32
            # GETEVENTS with min_complete 0 waits for nothing but runs completion work now:
            # close() relies on it so cancelled requests drop their file references (and
            # the socket really closes) before it returns. The kernel runs at most
            # max(20, min_complete) deferred completions per enter (6.13+), so a batch of
            # cancels asks for all of theirs.
            if min_complete:
                self._ts.tv_sec, self._ts.tv_nsec = 0, _CLOSE_WORK_NS
                ret = self._enter(
                    abi.NR_IO_URING_ENTER,
                    self._ring_fd,
                    to_submit,
                    min(min_complete, self._cq_entries),
                    abi.IORING_ENTER_GETEVENTS | abi.IORING_ENTER_EXT_ARG,
                    self._ext_arg_addr,
                    self._ext_arg_size,
                )
            else:
                ret = self._enter(
                    abi.NR_IO_URING_ENTER,
                    self._ring_fd,
                    to_submit,
                    0,
                    abi.IORING_ENTER_GETEVENTS,
                    0,
                    0,
                )
            if ret < 0:
                self._check_enter_error(-ctypes.get_errno())
            to_submit = (tail - self._sq_khead[0]) & _MASK32
        self._sq_limit = tail - to_submit + self._sq_entries
        if self._dirty:
            self._clean_dirty()
        return to_submit

    def _clean_dirty(self) -> None:
        """Zero buf_index in slots the kernel has consumed: the next SQE packed there sets
        only the 40-byte head, and CONNECT, ACCEPT or POLL_ADD refuse a non-zero
        buf_index (EINVAL)."""
        consumed = self._sq_limit - self._sq_entries  # SQ index below which all are read
        keep: list[tuple[int, int]] = []
        sqes = self._sqes
        for index, off in self._dirty:
            if index < consumed:
                _U16.pack_into(sqes, off + _BUF_INDEX, 0)
            else:
                keep.append((index, off))
        self._dirty = keep

    def _make_room(self) -> int:
        """The SQ ring is full: submit early (no wait) and return the tail to write at."""
        for _ in range(100):
            self._submit_now()
            if self._sq_tail < self._sq_limit:
                return self._sq_tail
            time.sleep(0.001)  # kernel short of memory (EAGAIN/EBUSY): give it a moment
        raise RuntimeError("io_uring submission queue stays full: the kernel takes no SQEs")

    def _enter_and_wait(self, to_submit: int, timeout_s: float | None) -> None:
        """The one ``io_uring_enter`` of a ``wait``: submit, then wait for one completion."""
        fd = self._ring_fd
        nr_enter, getevents = abi.NR_IO_URING_ENTER, abi.IORING_ENTER_GETEVENTS
        deadline = None
        while True:
            if timeout_s is None:
                ret = self._enter(nr_enter, fd, to_submit, 1, getevents, 0, 0)
            elif timeout_s <= 0 or self._cq_ktail[0] != self._cq_head:
                # Poll: GETEVENTS with min_complete 0 still runs pending completion work.
                ret = self._enter(nr_enter, fd, to_submit, 0, getevents, 0, 0)
            else:
                if deadline is None:
                    deadline = time.monotonic() + timeout_s
                sec, frac = divmod(timeout_s, 1.0)
                self._ts.tv_sec = int(sec)
                self._ts.tv_nsec = int(frac * 1e9)
                ret = self._enter(
                    nr_enter,
                    fd,
                    to_submit,
                    1,
                    getevents | abi.IORING_ENTER_EXT_ARG,
                    self._ext_arg_addr,
                    self._ext_arg_size,
                )
            if ret >= 0:
                break
            code = ctypes.get_errno()
            if code == errno.EINTR and self._cq_ktail[0] == self._cq_head:
                # A signal: Python runs its handler between our bytecodes (KeyboardInterrupt
                # propagates from here); otherwise keep waiting for what is left.
                to_submit = (self._sq_tail - self._sq_khead[0]) & _MASK32
                if timeout_s is not None and deadline is not None:
                    timeout_s = deadline - time.monotonic()
                    if timeout_s <= 0:
                        break
                continue
            self._check_enter_error(code)
            break
        unsubmitted = (self._sq_tail - self._sq_khead[0]) & _MASK32
        self._sq_limit = self._sq_tail - unsubmitted + self._sq_entries
        if self._dirty:
            self._clean_dirty()

    @staticmethod
    def _check_enter_error(code: int) -> None:
        # ETIME: the timeout passed. EINTR: a signal. EAGAIN/EBUSY: the kernel is short of
        # request memory or flushing CQ overflow; what is queued goes in on the next call.
        if code in (errno.ETIME, errno.EINTR, errno.EAGAIN, errno.EBUSY):
            return
        if code == errno.EEXIST:
            raise RuntimeError(
                "io_uring backend used from a second thread: its ring belongs "
                "to the thread that first submitted (IORING_SETUP_SINGLE_ISSUER)"
            )
        raise OSError(code, f"io_uring_enter: {os.strerror(code)}")

    def _reap(self, max_completions: int) -> list[Completion]:
        head = self._cq_head
        n = (self._cq_ktail[0] - head) & _MASK32  # tail loaded before any CQE is read
        if not n:
            return []
        if n > max_completions:
            n = max_completions
        start = head & self._cq_mask
        end = start + n
        cqes = self._cqes
        it: Iterator[tuple[int, int, int]]
        if end <= self._cq_entries:
            it = self._iter_cqes(cqes[start << 4 : end << 4])  # 16-byte CQEs
        else:
            it = itertools.chain(
                self._iter_cqes(cqes[start << 4 :]),
                self._iter_cqes(cqes[: (end - self._cq_entries) << 4]),
            )
        out: list[Completion] = []
        append = out.append
        pop = self._ops.pop
        freed = 0  # receive buffer bytes given back: one store after the batch, not one each
        for cqe in it:
            user_data = cqe[0]
            op = pop(user_data, None)
            if op is None:
                # A quiet send's failure (its success posts no CQE), else one of our own
                # cancel requests (user_data bit 63) or a quiet send of a closed socket.
                quiet = self._quiet.pop(user_data, None)
                if quiet is not None:
                    quiet.quiet = -1
                    quiet.quiet_buf = None
                    append((user_data, cqe[1], 0))
                continue
            st, kind, _keep = op
            # RECV and SEND CQEs with no flags set are already (token, result, 0): handed
            # back as they are, without building a new tuple.
            if kind == _K_RECV:
                st.rd = -1
                freed += _keep[3]  # type: ignore[index]
                if cqe[2]:
                    st.rprio = 0 if cqe[2] & _SOCK_NONEMPTY else _POLL_FIRST
                    append((user_data, cqe[1], 0))
                else:
                    st.rprio = _POLL_FIRST
                    append(cqe)
                continue
            res = cqe[1]
            if kind == _K_SEND:
                st.wr = -1
                append(cqe if not cqe[2] else (user_data, res, 0))
            elif kind == _K_RING:
                # The CQE goes out as it is: its flags are the contract's RING_* layout.
                flags = cqe[2]
                if flags & _CQE_F_BUFFER:
                    ring = self._ring  # set: recv_ring needs it
                    ring.out[flags >> _BID_SHIFT] = 1  # type: ignore[union-attr]
                    ring.held += 1  # type: ignore[union-attr]
                if flags & _CQE_F_MORE:
                    self._ops[user_data] = op  # still armed: more CQEs for this token
                else:
                    st.rd = -1
                append(cqe)
            elif kind == _K_POLL:
                st.rd = -1
                if res >= 0:  # res is the revents mask
                    append((user_data, 0, _FLAGS_HANGUP if res & _HANGUP_EVENTS else FLAG_READABLE))
                else:
                    append((user_data, res, 0))
            elif kind == _K_CONNECT:
                st.wr = -1
                append((user_data, res, 0))
            else:  # _K_ACCEPT: res is the new fd
                st.rd = -1
                if res >= 0:
                    res = self._adopt_accepted(res)
                append((user_data, res, 0))
        if freed:
            self._posted_recv_bytes -= freed
        # Store the head only after every CQE in the batch has been read (TSO keeps the
        # loads above before this store), handing those slots back to the kernel.
        head = (head + n) & _MASK32
        self._cq_head = head
        self._cq_khead[0] = head
        return out

    def _adopt_accepted(self, fd: int) -> int:
        try:
            sock = socket.socket(fileno=fd)
            sock.setblocking(False)  # the fd is O_NONBLOCK already; tell the object too
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError as exc:
            os.close(fd)
            return -(exc.errno or errno.EIO)
        return self._adopt(sock)
