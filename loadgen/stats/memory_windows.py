"""Kernel memory on Windows: what pending overlapped sockets cost in nonpaged pool.

Facts the sampler rests on:

* Every pending overlapped operation owns an IRP that is charged to the process's
  *nonpaged-pool quota*, whatever the size of its buffer. ``K32GetProcessMemoryInfo``
  reports that charge (``QuotaNonPagedPoolUsage`` and its peak) and the paged-pool one.
* A buffered receive also locks its buffer's pages (an MDL); a zero-byte receive locks
  nothing, but data that arrives then waits in AFD's own nonpaged buffers.
* ``K32GetPerformanceInfo`` gives the system-wide nonpaged pool, ``KernelNonpaged``, in
  pages of ``PageSize`` bytes.
* ``NtQuerySystemInformation(SystemPoolTagInformation = 22)`` lists pool usage per tag:
  ``AfdB`` (AFD data buffers), ``AfdP`` (AFD poll/endpoint), ``Irp `` and ``Mdl `` (the
  per-operation packets and page locks). It needs no privilege on most Windows versions;
  where it is refused, the tags are reported as unavailable with the status.
* Wine has no kernel pool: every one of these counters reads 0 there (and class 22 is
  STATUS_INVALID_INFO_CLASS). A zero would look like a real, excellent measurement, so
  the sample says "not measurable here" instead and carries no numbers.

``sample()`` returns a small frozen dataclass; ``as_dict()`` gives plain JSON-ready data.
"""

from __future__ import annotations

import ctypes
import struct
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Final

from loadgen.engine import win32

NOT_MEASURABLE: Final = "not measurable here"
#: The pool tags the receive-mode comparison looks at (4 bytes each, space-padded).
POOL_TAGS: Final = ("AfdB", "AfdP", "Irp ", "Mdl ")

_POOLTAG: Final = struct.Struct("<4sII4xQII4xQ")  # SYSTEM_POOLTAG, 40 bytes on x64
_POOLTAG_ARRAY_AT: Final = win32.SYSTEM_POOLTAG_INFORMATION.TagInfo.offset  # 8
#: First buffer for the tag list; Windows 10 has ~3,000 tags (120 KB). Grown on
#: STATUS_INFO_LENGTH_MISMATCH up to _MAX_TAG_BUFFER, a bound against a runaway answer.
_FIRST_TAG_BUFFER: Final = 256 * 1024
_MAX_TAG_BUFFER: Final = 16 * 1024 * 1024


@dataclass(frozen=True)
class PoolTagUsage:
    """Usage of one pool tag, system-wide, in bytes and live allocations."""

    nonpaged_bytes: int
    nonpaged_allocations: int  # allocs - frees: live objects with this tag
    paged_bytes: int
    paged_allocations: int


@dataclass(frozen=True)
class WindowsMemorySample:
    """One reading. Numbers are None when not measurable here; never a stand-in zero."""

    measurable: bool
    reason: str | None  # why not measurable (None when measurable)
    process_nonpaged_bytes: int | None = None
    process_peak_nonpaged_bytes: int | None = None
    process_paged_bytes: int | None = None
    process_peak_paged_bytes: int | None = None
    system_nonpaged_bytes: int | None = None
    pool_tags: Mapping[str, PoolTagUsage] | None = None
    pool_tags_reason: str | None = None  # why pool_tags is None
    engine_posted_bytes: int | None = None  # receive buffers the engine had posted
    page_size: int | None = None

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if self.pool_tags is not None:
            data["pool_tags"] = {tag.strip(): asdict(u) for tag, u in self.pool_tags.items()}
        return data


def sample(engine_posted_bytes: int | None = None) -> WindowsMemorySample:
    """Read the process and system pool counters now.

    ``engine_posted_bytes`` (e.g. ``IocpBackend.posted_recv_bytes()``) is carried along so
    a result can set kernel memory against the buffers the engine itself handed over.
    """
    if sys.platform == "win32":
        return _sample_windows(engine_posted_bytes)
    return WindowsMemorySample(
        measurable=False,
        reason=f"{NOT_MEASURABLE}: nonpaged pool is a Windows counter (this is {sys.platform})",
        engine_posted_bytes=engine_posted_bytes,
    )


def _sample_windows(engine_posted_bytes: int | None) -> WindowsMemorySample:
    kernel32 = win32.kernel32()
    counters = win32.PROCESS_MEMORY_COUNTERS_EX()
    counters.cb = ctypes.sizeof(counters)
    process = kernel32.GetCurrentProcess()
    if process is None or not kernel32.K32GetProcessMemoryInfo(
        process, ctypes.byref(counters), counters.cb
    ):
        win32.raise_winerror(what="K32GetProcessMemoryInfo")
    performance = win32.PERFORMANCE_INFORMATION()
    performance.cb = ctypes.sizeof(performance)
    if not kernel32.K32GetPerformanceInfo(ctypes.byref(performance), performance.cb):
        win32.raise_winerror(what="K32GetPerformanceInfo")

    wine = win32.wine_version()
    pool_zero = (
        counters.QuotaNonPagedPoolUsage == 0
        and counters.QuotaPeakNonPagedPoolUsage == 0
        and performance.KernelNonpaged == 0
    )
    if wine is not None or pool_zero:
        why = f"Wine {wine} has no kernel pool" if wine else "the OS reports 0 for every pool"
        return WindowsMemorySample(
            measurable=False,
            reason=f"{NOT_MEASURABLE}: {why} (nonpaged-pool counters read 0)",
            engine_posted_bytes=engine_posted_bytes,
        )
    tags, tags_reason = pool_tag_usage()
    return WindowsMemorySample(
        measurable=True,
        reason=None,
        process_nonpaged_bytes=counters.QuotaNonPagedPoolUsage,
        process_peak_nonpaged_bytes=counters.QuotaPeakNonPagedPoolUsage,
        process_paged_bytes=counters.QuotaPagedPoolUsage,
        process_peak_paged_bytes=counters.QuotaPeakPagedPoolUsage,
        system_nonpaged_bytes=performance.KernelNonpaged * performance.PageSize,
        pool_tags=tags,
        pool_tags_reason=tags_reason,
        engine_posted_bytes=engine_posted_bytes,
        page_size=performance.PageSize,
    )


def pool_tag_usage(
    wanted: tuple[str, ...] = POOL_TAGS,
) -> tuple[dict[str, PoolTagUsage] | None, str | None]:
    """System-wide usage of ``wanted`` tags, or (None, why) where the OS refuses."""
    ntdll = win32.ntdll()
    size = _FIRST_TAG_BUFFER
    while True:
        buffer = (ctypes.c_char * size)()
        needed = win32.ULONG()
        status = ntdll.NtQuerySystemInformation(
            win32.SystemPoolTagInformation, buffer, size, ctypes.byref(needed)
        )
        if status == win32.STATUS_INFO_LENGTH_MISMATCH and size < _MAX_TAG_BUFFER:
            size = min(_MAX_TAG_BUFFER, max(size * 2, needed.value + 4096))
            continue
        break
    if status != win32.STATUS_SUCCESS:
        return None, (
            f"NtQuerySystemInformation(SystemPoolTagInformation) failed with NTSTATUS "
            f"0x{status & 0xFFFFFFFF:08X}"
        )
    return parse_pool_tags(bytes(buffer), wanted), None


def parse_pool_tags(raw: bytes, wanted: tuple[str, ...] = POOL_TAGS) -> dict[str, PoolTagUsage]:
    """Pick ``wanted`` tags out of a SYSTEM_POOLTAG_INFORMATION answer (missing tags: 0)."""
    (count,) = struct.unpack_from("<I", raw)
    if _POOLTAG_ARRAY_AT + count * _POOLTAG.size > len(raw):
        raise ValueError(f"pool tag list claims {count} entries, more than {len(raw)} bytes")
    want = {tag.encode("ascii"): tag for tag in wanted}
    found = {tag: PoolTagUsage(0, 0, 0, 0) for tag in wanted}
    for offset in range(
        _POOLTAG_ARRAY_AT, _POOLTAG_ARRAY_AT + count * _POOLTAG.size, _POOLTAG.size
    ):
        tag, p_allocs, p_frees, p_used, np_allocs, np_frees, np_used = _POOLTAG.unpack_from(
            raw, offset
        )
        name = want.get(tag)
        if name is not None:
            found[name] = PoolTagUsage(
                nonpaged_bytes=np_used,
                # The counters are ULONGs that wrap: the difference modulo 2**32 is live.
                nonpaged_allocations=(np_allocs - np_frees) & 0xFFFFFFFF,
                paged_bytes=p_used,
                paged_allocations=(p_allocs - p_frees) & 0xFFFFFFFF,
            )
    return found
