"""The numbers the study reports, read out of one memory sample (``stats.memory``).

Linux (kernel memory is never paged, so all of it is "non-pageable"; docs/recv-modes.md):

* ``kernel`` = SUnreclaim + TCP socket buffer pages + VmPin: unreclaimable slab (sockets,
  io_uring requests, receive bookkeeping), the pages holding data in socket buffers, and
  the pages this process has pinned (io_uring registered buffers: Windows' locked pages).
  SUnreclaim and the TCP pages are system-wide: on loopback they hold both ends.
* its parts ``sunreclaim``, ``tcp_buffers``, ``vm_pin``, to see where a mode's cost goes.

Windows (``stats.memory_windows``):

* ``kernel`` = the process's nonpaged-pool quota (every pending IRP is charged to it);
* ``system_nonpaged`` = KernelNonpaged, the whole system's nonpaged pool (both ends on
  loopback, and AFD's buffers of data waiting for a zero-byte receive).

Both: ``posted`` = the receive buffers the engine has posted (it knows them exactly) and
``rss`` = the process's resident memory (Linux VmRSS; the Windows sampler does not read
the working set, so it is not measurable there).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from loadgen.stats.memory import NOT_MEASURABLE
from loadgen.study.result import MetricInfo

LINUX = (
    MetricInfo(
        name="kernel",
        label="kernel non-pageable",
        kind="kernel",
        description="SUnreclaim + TCP socket buffer pages + VmPin (slab and socket buffers "
        "system-wide, so both ends on loopback; pinned pages of this process)",
    ),
    MetricInfo(
        name="sunreclaim",
        label="SUnreclaim",
        kind="kernel",
        description="unreclaimable slab (/proc/meminfo): sockets, io_uring requests, "
        "kmalloc'd receive bookkeeping; system-wide",
    ),
    MetricInfo(
        name="tcp_buffers",
        label="TCP buffer pages",
        kind="kernel",
        description="pages in TCP socket buffers (/proc/net/sockstat mem): data received "
        "and not yet read, sent and not yet acked; system-wide",
    ),
    MetricInfo(
        name="vm_pin",
        label="VmPin",
        kind="kernel",
        description="pages this process pinned (io_uring registered buffers): the "
        "counterpart of Windows' locked pages",
    ),
)
WINDOWS = (
    MetricInfo(
        name="kernel",
        label="nonpaged quota",
        kind="kernel",
        description="this process's nonpaged-pool quota (QuotaNonPagedPoolUsage): every "
        "pending overlapped operation's IRP is charged to it",
    ),
    MetricInfo(
        name="system_nonpaged",
        label="KernelNonpaged",
        kind="kernel",
        description="the system's nonpaged pool (K32GetPerformanceInfo): both ends on "
        "loopback, and AFD's buffers of data waiting for a zero-byte receive",
    ),
)
USER = (
    MetricInfo(
        name="posted",
        label="posted receive buffers",
        kind="user",
        description="bytes of receive buffers the engine had posted (exact)",
    ),
    MetricInfo(
        name="rss",
        label="RSS",
        kind="user",
        description="this process's resident memory (VmRSS): posted buffers and the "
        "client's per-connection state",
    ),
)


def is_linux_sample(sample: Mapping[str, Any]) -> bool:
    return "sunreclaim_bytes" in sample


def metrics_for(sample: Mapping[str, Any]) -> tuple[MetricInfo, ...]:
    """The metrics a sample of this OS has (Linux's or Windows'), reasons not yet set."""
    return (*(LINUX if is_linux_sample(sample) else WINDOWS), *USER)


def _sum(*values: Any) -> int | None:
    return None if any(v is None for v in values) else int(sum(values))


def read(sample: Mapping[str, Any]) -> tuple[dict[str, float | None], dict[str, str]]:
    """(value per metric, reason per metric not measurable) from one sample's dict
    (``as_dict()`` plus ``engine_posted_recv_bytes``, as ``RunResult.memory`` holds it)."""
    posted = sample.get("engine_posted_recv_bytes")
    values: dict[str, float | None] = {"posted": posted}
    reasons: dict[str, str] = {}
    if posted is None:
        reasons["posted"] = f"{NOT_MEASURABLE}: the engine does not count its posted bytes"
    if is_linux_sample(sample):
        why: Mapping[str, str] = sample.get("reasons") or {}
        parts = {
            "sunreclaim": "sunreclaim_bytes",
            "tcp_buffers": "tcp_buffer_bytes",
            "vm_pin": "vm_pin_bytes",
            "rss": "vm_rss_bytes",
        }
        for name, key in parts.items():
            values[name] = sample.get(key)
            if values[name] is None:
                reasons[name] = why.get(key) or f"{NOT_MEASURABLE}: no {key}"
        values["kernel"] = _sum(values["sunreclaim"], values["tcp_buffers"], values["vm_pin"])
        if values["kernel"] is None:
            reasons["kernel"] = "; ".join(
                reasons[n] for n in ("sunreclaim", "tcp_buffers", "vm_pin") if n in reasons
            )
        return values, reasons
    measurable = bool(sample.get("measurable"))
    reason = sample.get("reason") or f"{NOT_MEASURABLE}: the Windows sampler read nothing"
    values["kernel"] = sample.get("process_nonpaged_bytes") if measurable else None
    values["system_nonpaged"] = sample.get("system_nonpaged_bytes") if measurable else None
    for name in ("kernel", "system_nonpaged"):
        if values[name] is None:
            reasons[name] = reason
    values["rss"] = None
    reasons["rss"] = f"{NOT_MEASURABLE}: the Windows sampler does not read the working set"
    return values, reasons
