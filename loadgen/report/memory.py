"""Memory samples of a run (``RunResult.memory``), as reports show them.

Each run samples memory once a second (``loadgen.stats.memory``). A report draws three
quantities and tabulates their components:

* **kernel non-pageable memory**: on Linux SUnreclaim + TCP socket buffer pages + VmPin
  (kernel memory is never paged; docs/recv-modes.md), on Windows the process's nonpaged-pool
  quota. The Linux counters are system-wide: on loopback with a built-in target both ends of
  every connection are in them, and so is everything else the machine did. Charts show it as
  the change since the run's first sample (taken before any connection opened).
* **receive bytes the engine had posted** (it knows them exactly);
* **the generator's resident memory** (VmRSS; the Windows sampler does not read it).

A quantity that was not measured is None with the sampler's reason, never a zero.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from loadgen.report.loading import LoadedRun

Sample = dict[str, Any]
NOT_MEASURABLE = "not measurable here"
#: Samples with the connections held that it takes to say how much a counter moves by itself.
NOISE_SAMPLES = 3


def _int(sample: Sample, key: str) -> int | None:
    value = sample.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _linux_kernel(sample: Sample) -> int | None:
    parts = [_int(sample, k) for k in ("sunreclaim_bytes", "tcp_buffer_bytes", "vm_pin_bytes")]
    return None if any(p is None for p in parts) else sum(p for p in parts if p is not None)


def _is_windows(samples: Sequence[Sample]) -> bool:
    return any("process_nonpaged_bytes" in s or "system_nonpaged_bytes" in s for s in samples)


@dataclass(frozen=True)
class Counter:
    """One quantity over a run's samples (bytes; None where not measured)."""

    key: str
    label: str
    values: list[int | None]
    reason: str | None  # why every value is None (``not measurable here: ...``)
    #: Counts the whole machine (both ends on loopback, every other process): noisy.
    system_wide: bool = False

    @property
    def measured(self) -> list[int]:
        return [v for v in self.values if v is not None]

    @property
    def start(self) -> int | None:
        return self.measured[0] if self.measured else None

    @property
    def peak(self) -> int | None:
        return max(self.measured) if self.measured else None

    @property
    def end(self) -> int | None:
        return self.measured[-1] if self.measured else None


@dataclass(frozen=True)
class RunMemory:
    time_s: list[float]
    kernel: Counter  # kernel non-pageable
    posted: Counter  # engine-posted receive bytes
    rss: Counter
    components: list[Counter]  # the kernel figure's parts and neighbours, for the table
    connections: list[int | None]  # open connections around each sample (from intervals)
    os_kind: str  # "linux" or "windows"

    def peak_connection_index(self, counter: Counter | None = None) -> int | None:
        """The latest sample (after the first) with the most connections open, if known;
        with ``counter``, only among the samples that have a value of it (a merged run's
        last sample may lack the processes that had already ended)."""
        best: int | None = None
        for index, count in enumerate(self.connections):
            if index == 0 or count is None or count <= 0:
                continue
            if counter is not None and counter.values[index] is None:
                continue
            if best is None or count >= (self.connections[best] or 0):
                best = index
        return best

    def noise(self, counter: Counter) -> float | None:
        """How far the counter moved by itself: its range over the samples taken while the
        most connections were held (nothing the run did changed then). None with fewer
        than ``NOISE_SAMPLES`` such samples: too few to tell."""
        peak = self.peak_connection_index(counter)
        if peak is None:
            return None
        held = self.connections[peak]
        values = [
            value
            for index, (count, value) in enumerate(
                zip(self.connections, counter.values, strict=True)
            )
            if index > 0 and count == held and value is not None
        ]
        return float(max(values) - min(values)) if len(values) >= NOISE_SAMPLES else None

    def per_connection(self, counter: Counter) -> tuple[float | None, int | None]:
        """(bytes per connection, connections): growth from the first sample to the sample
        with the most connections, divided by them; (None, None) when not known."""
        index = self.peak_connection_index(counter)
        if index is None:
            return None, None
        first, value = counter.values[0], counter.values[index]
        connections = self.connections[index]
        if first is None or value is None or not connections:
            return None, connections
        return (value - first) / connections, connections


def _reason(samples: Sequence[Sample], field: str) -> str:
    for sample in samples:
        reason = sample.get("reason")
        reasons = sample.get("reasons")
        if isinstance(reasons, dict) and isinstance(reasons.get(field), str):
            return str(reasons[field])
        if isinstance(reason, str) and reason:
            return reason
    return f"{NOT_MEASURABLE}: the sampler gave no {field}"


_SYSTEM_WIDE = ("sunreclaim_bytes", "tcp_buffer_bytes", "slab_bytes", "system_nonpaged_bytes")


def _counter(
    samples: Sequence[Sample], key: str, label: str, pick: Callable[[Sample], int | None]
) -> Counter:
    values = [pick(s) for s in samples]
    reason = None if any(v is not None for v in values) else _reason(samples, key)
    return Counter(key, label, values, reason, system_wide=key in _SYSTEM_WIDE)


def _connections_at(run: LoadedRun, times: Sequence[float]) -> list[int | None]:
    """Open connections at each time: those of the interval whose end is nearest."""
    ends = []
    for item in run.raw.get("intervals") or []:
        count = item.get("connections")
        if isinstance(count, int):
            ends.append((float(item["start_s"]) + float(item["duration_s"]), count))
    if not ends:
        return [None] * len(times)
    return [min(ends, key=lambda end: abs(end[0] - t))[1] for t in times]


def run_memory(run: LoadedRun) -> RunMemory | None:
    """A run's memory series, or None when it took no sample."""
    raw = run.raw.get("memory")
    samples = [s for s in raw if isinstance(s, dict)] if isinstance(raw, list) else []
    if not samples:
        return None
    times = [float(s.get("t_s", 0.0)) for s in samples]
    windows = _is_windows(samples)
    posted = _counter(
        samples,
        "engine_posted_recv_bytes",
        "receive bytes posted by the engine",
        lambda s: _int(s, "engine_posted_recv_bytes"),
    )
    if windows:
        kernel = _counter(
            samples,
            "process_nonpaged_bytes",
            "kernel non-pageable (process nonpaged-pool quota)",
            lambda s: _int(s, "process_nonpaged_bytes"),
        )
        components = [_by_key(samples, "system_nonpaged_bytes", "system nonpaged pool")]
        rss = Counter(
            "vm_rss_bytes",
            "generator resident memory",
            [None] * len(samples),
            f"{NOT_MEASURABLE}: the Windows sampler does not read the working set",
        )
    else:
        kernel = _counter(
            samples,
            "sunreclaim_bytes",
            "kernel non-pageable (SUnreclaim + TCP buffers + VmPin)",
            _linux_kernel,
        )
        components = [
            _by_key(samples, key, label)
            for key, label in (
                ("sunreclaim_bytes", "SUnreclaim (unreclaimable slab)"),
                ("tcp_buffer_bytes", "TCP socket buffers"),
                ("vm_pin_bytes", "VmPin (pinned pages)"),
                ("slab_bytes", "Slab (all)"),
            )
        ]
        rss = _by_key(samples, "vm_rss_bytes", "generator resident memory (VmRSS)")
    return RunMemory(
        time_s=times,
        kernel=kernel,
        posted=posted,
        rss=rss,
        components=components,
        connections=_connections_at(run, times),
        os_kind="windows" if windows else "linux",
    )


def _by_key(samples: Sequence[Sample], key: str, label: str) -> Counter:
    return _counter(samples, key, label, lambda s: _int(s, key))
