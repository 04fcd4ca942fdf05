"""Kernel memory on Linux: what open sockets and posted receives cost, and one entry point.

Linux kernel memory is never paged out, so the "non-pageable" memory that Windows counts as
nonpaged pool is, here, the sum of a few counters read from /proc:

* ``sunreclaim_bytes`` (``SUnreclaim`` in /proc/meminfo): slab memory the kernel cannot
  give back under pressure: socket structures, io_uring requests, kmalloc'd control data.
  ``slab_bytes`` (``Slab``) is the whole slab, reclaimable caches included. System-wide.
* ``tcp_buffer_bytes`` (/proc/net/sockstat ``TCP: ... mem N``, N in pages): the pages held
  by TCP socket buffers: data received and not yet read, data sent and not yet acked.
  Unread data of a zero-byte-receive connection waits here. System-wide.
* ``vm_pin_bytes`` / ``vm_lck_bytes`` / ``vm_rss_bytes`` (/proc/self/status): this
  process's pinned pages (io_uring registered buffers land in VmPin: the counterpart of
  the pages Windows locks under a posted receive), its mlock'ed pages, and its resident
  memory (where posted user-space receive buffers live).
* ``slab_caches`` (/proc/slabinfo, ``num_objs * objsize``): the caches that attribute the
  kernel side per socket or per operation: ``TCP``/``TCPv6`` (a socket each, ~2.4 KB),
  ``sock_inode_cache`` (its inode), ``io_kiocb`` (an io_uring request each), and
  ``kmalloc_bytes``, all ``kmalloc-*`` caches summed (receive bookkeeping and the rest).
  slabinfo is readable by root only.

A counter this machine does not give is None, and ``reasons`` says why ("not measurable
here: ..."), never a stand-in 0. The counters are system-wide and noisy: compare against a
quiet baseline. ``sample_memory`` picks this sampler or the Windows one
(``memory_windows``) so callers have one entry point. One sample costs 0.2-0.4 ms, plus
0.5-1 ms for slabinfo (measured here; 1.3 ms median in all under load).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Final

from loadgen.stats import memory_windows

NOT_MEASURABLE: Final = "not measurable here"
#: Caches reported one by one (bytes each); every ``kmalloc-*`` cache is summed apart.
SLAB_CACHES: Final = ("TCP", "TCPv6", "sock_inode_cache", "io_kiocb")

MEMINFO: Final = "/proc/meminfo"
SOCKSTAT: Final = "/proc/net/sockstat"
STATUS: Final = "/proc/self/status"
SLABINFO: Final = "/proc/slabinfo"


@dataclass(frozen=True)
class LinuxMemorySample:
    """One reading, in bytes. A None field is explained in ``reasons`` (by field name)."""

    sunreclaim_bytes: int | None
    slab_bytes: int | None
    tcp_buffer_bytes: int | None
    vm_pin_bytes: int | None
    vm_lck_bytes: int | None
    vm_rss_bytes: int | None
    slab_caches: Mapping[str, int | None] | None
    kmalloc_bytes: int | None
    engine_posted_bytes: int | None  # receive buffers the engine had posted
    page_size: int
    reasons: Mapping[str, str] = field(default_factory=dict)

    @property
    def measurable(self) -> bool:
        """True when at least the system-wide kernel counters were read."""
        return self.sunreclaim_bytes is not None

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["measurable"] = self.measurable  # the same two keys as the Windows sample
        data["reason"] = None if self.measurable else self.reasons.get("sunreclaim_bytes")
        return data


def _read(path: str) -> tuple[str | None, str | None]:
    """(text, None), or (None, why) when the file cannot be read here."""
    try:
        with open(path, encoding="ascii", errors="replace") as file:
            return file.read(), None
    except OSError as exc:
        hint = ", root only" if isinstance(exc, PermissionError) else ""
        return None, f"{NOT_MEASURABLE}: {path} is unreadable ({exc.strerror or exc}{hint})"


def _kb_fields(text: str, names: tuple[str, ...]) -> dict[str, int]:
    """``Name:   123 kB`` lines (meminfo, status) as bytes, for the ``names`` present."""
    found: dict[str, int] = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        if name in names:
            parts = rest.split()
            if parts and parts[0].isdigit():
                found[name] = int(parts[0]) * 1024
    return found


def parse_sockstat_tcp_pages(text: str) -> int | None:
    """The ``mem`` value (pages) of the ``TCP:`` line of /proc/net/sockstat."""
    for line in text.splitlines():
        if line.startswith("TCP:"):
            words = line.split()
            for key, value in zip(words[1::2], words[2::2], strict=False):
                if key == "mem" and value.isdigit():
                    return int(value)
    return None


def parse_slabinfo(text: str) -> dict[str, int]:
    """Bytes (``num_objs * objsize``) of every cache in a /proc/slabinfo text."""
    caches: dict[str, int] = {}
    for line in text.splitlines():
        if line.startswith(("slabinfo", "#")):
            continue
        words = line.split()
        if len(words) >= 4 and words[2].isdigit() and words[3].isdigit():
            caches[words[0]] = int(words[2]) * int(words[3])
    return caches


def sample(
    engine_posted_bytes: int | None = None, *, slabinfo_path: str = SLABINFO
) -> LinuxMemorySample:
    """Read the Linux counters now (``slabinfo_path``: where slabinfo is, for tests)."""
    reasons: dict[str, str] = {}
    page_size = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

    meminfo, why = _read(MEMINFO)
    mem = _kb_fields(meminfo or "", ("SUnreclaim", "Slab"))
    for key, name in (("sunreclaim_bytes", "SUnreclaim"), ("slab_bytes", "Slab")):
        if name not in mem:
            reasons[key] = why or f"{NOT_MEASURABLE}: no {name} in {MEMINFO}"

    sockstat, why = _read(SOCKSTAT)
    pages = parse_sockstat_tcp_pages(sockstat) if sockstat is not None else None
    if pages is None:
        reasons["tcp_buffer_bytes"] = why or f"{NOT_MEASURABLE}: no TCP mem in {SOCKSTAT}"

    status, why = _read(STATUS)
    vm = _kb_fields(status or "", ("VmPin", "VmLck", "VmRSS"))
    for key, name in (
        ("vm_pin_bytes", "VmPin"),
        ("vm_lck_bytes", "VmLck"),
        ("vm_rss_bytes", "VmRSS"),
    ):
        if name not in vm:
            reasons[key] = why or f"{NOT_MEASURABLE}: no {name} in {STATUS}"

    slab_text, why = _read(slabinfo_path)
    caches: dict[str, int | None] | None = None
    kmalloc: int | None = None
    if slab_text is None:
        reasons["slab_caches"] = reasons["kmalloc_bytes"] = why or ""
    else:
        every = parse_slabinfo(slab_text)
        caches = {}
        for name in SLAB_CACHES:
            caches[name] = every.get(name)
            if name not in every:  # merged into another cache, or never created
                reasons[f"slab_caches.{name}"] = (
                    f"{NOT_MEASURABLE}: no {name} cache in {slabinfo_path} "
                    "(merged into another cache, or not created on this kernel)"
                )
        kmalloc = sum(size for name, size in every.items() if name.startswith("kmalloc-"))

    return LinuxMemorySample(
        sunreclaim_bytes=mem.get("SUnreclaim"),
        slab_bytes=mem.get("Slab"),
        tcp_buffer_bytes=None if pages is None else pages * page_size,
        vm_pin_bytes=vm.get("VmPin"),
        vm_lck_bytes=vm.get("VmLck"),
        vm_rss_bytes=vm.get("VmRSS"),
        slab_caches=caches,
        kmalloc_bytes=kmalloc,
        engine_posted_bytes=engine_posted_bytes,
        page_size=page_size,
        reasons=reasons,
    )


def sample_memory(
    engine_posted_bytes: int | None,
) -> LinuxMemorySample | memory_windows.WindowsMemorySample:
    """This OS's sampler: Windows' pool counters there, /proc everywhere else."""
    if sys.platform == "win32":
        return memory_windows.sample(engine_posted_bytes)
    return sample(engine_posted_bytes)
