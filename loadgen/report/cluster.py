"""A distributed run's cluster as text, one wording for every rendering of a result.

The terminal summary, the HTML report, markdown and JUnit all describe the hosts the same
way: each host's share of the load, its clock offset from the scheduler (± half the
shortest round trip it was measured with), how late it began after the shared start
instant, and why it gave no result when it was lost. A value the run did not measure
(a host lost before its clock was read) is a dash in a table cell and "not measured" in a
sentence, never 0. Table cells carry the numbers only; their unit (ms) is in the header.
"""

from __future__ import annotations

from dataclasses import dataclass

from loadgen.report.formatting import MISSING, format_percent_value
from loadgen.result.model import Cluster, ClusterHost

NOT_MEASURED = "not measured"


@dataclass(frozen=True)
class HostRow:
    """One host's cells, formatted; ``lost`` is None for a host that reported."""

    index: str
    hostname: str
    worker: str
    processes: str
    share: str
    clock_offset: str
    start_late: str
    lost: str | None

    @property
    def status(self) -> str:
        return "ok" if self.lost is None else f"lost: {self.lost}"


def format_ms(value: float) -> str:
    """Milliseconds with the digits that matter: 0.05, 1.25, 14.2, 1,423."""
    size = abs(value)
    if size >= 100:
        return f"{value:,.0f}"
    if size >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def clock_offset(host: ClusterHost) -> str:
    """``+0.12 ± 0.05`` (ms): the host's clock minus the scheduler's."""
    if host.clock_offset_ms is None:
        return MISSING
    offset = ("+" if host.clock_offset_ms >= 0 else "-") + format_ms(abs(host.clock_offset_ms))
    if host.offset_uncertainty_ms is None:
        return offset
    return f"{offset} ± {format_ms(host.offset_uncertainty_ms)}"


def start_late(host: ClusterHost) -> str:
    """How late (ms) the host began after the shared start instant."""
    return MISSING if host.start_late_ms is None else format_ms(host.start_late_ms)


def host_row(host: ClusterHost) -> HostRow:
    return HostRow(
        index=str(host.index),
        hostname=host.hostname,
        worker=host.worker,
        processes=str(host.processes),
        share=format_percent_value(100 * host.weight),
        clock_offset=clock_offset(host),
        start_late=start_late(host),
        lost=host.lost,
    )


def host_rows(cluster: Cluster) -> list[HostRow]:
    return [host_row(host) for host in sorted(cluster.hosts, key=lambda h: h.index)]


def host_sentence(host: ClusterHost) -> str:
    """``host 0: node-a (tcp://10.0.0.1:4711), 2 processes, 40% of the load, clock offset
    +0.12 ± 0.05 ms, start late 0.90 ms, ok`` (plain text: logs, JUnit output)."""
    row = host_row(host)
    offset = NOT_MEASURED if host.clock_offset_ms is None else f"{row.clock_offset} ms"
    late = NOT_MEASURED if host.start_late_ms is None else f"{row.start_late} ms"
    return (
        f"host {row.index}: {row.hostname} ({row.worker}), {row.processes} processes, "
        f"{row.share} of the load, clock offset {offset}, start late {late}, {row.status}"
    )


def start_skew(cluster: Cluster) -> str:
    """``start skew 1.80 ms (clock offsets known to ± 0.40 ms)``."""
    if cluster.start_skew_ms is None:
        return f"start skew {NOT_MEASURED}"
    text = f"start skew {format_ms(cluster.start_skew_ms)} ms"
    uncertainties = [
        host.offset_uncertainty_ms
        for host in cluster.hosts
        if host.offset_uncertainty_ms is not None and host.lost is None
    ]
    if uncertainties:
        text += f" (clock offsets known to ± {format_ms(max(uncertainties))} ms)"
    return text


def overview(cluster: Cluster) -> str:
    """``3 hosts via tcp://sched:8786, 1 lost``."""
    count = len(cluster.hosts)
    text = f"{count} host{'s' * (count != 1)} via {cluster.scheduler}"
    lost = len(cluster.lost_hosts)
    return text + (f", {lost} lost" if lost else "")


def lost_host(host: ClusterHost) -> str:
    """``host 2 (node-c, tcp://10.0.0.3:4711) lost: worker died; its 33.3% share of the
    load counts only what it reported before (4,120 requests)``: a lost host's intervals,
    sent in its ticks while it ran, are merged with the other hosts' results."""
    share = format_percent_value(100 * host.weight)
    reported = "nothing" if not host.requests else f"{host.requests:,} requests"
    return (
        f"host {host.index} ({host.hostname}, {host.worker}) lost: {host.lost}; "
        f"its {share} share of the load counts only what it reported before ({reported})"
    )


def lost_hosts(cluster: Cluster) -> list[str]:
    return [lost_host(host) for host in sorted(cluster.lost_hosts, key=lambda h: h.index)]
