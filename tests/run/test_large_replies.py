"""Whole runs against a Redis-speaking target that sends huge bulk strings: the payload is
counted, never buffered (RSS stays flat), and one past the maximum is counted as
``reply_too_large``."""

from __future__ import annotations

from pathlib import Path

from loadgen.config.scenario import parse_scenario
from loadgen.result.model import RunResult
from loadgen.run.api import run
from tests.adversarial.servers import bad_target

#: RSS growth allowed over a run: the codecs hold at most a receive chunk each; the rest is
#: the run's own bookkeeping (histograms, result). Buffering one bulk string would add
#: HUGE_BULK_BYTES (200 MB) at once.
RSS_GROWTH_BOUND_BYTES = 64 * 1024 * 1024


def _rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024  # the kernel reports kB
    raise AssertionError("no VmRSS in /proc/self/status")


def _run(behaviour: str, extra: str = "") -> tuple[RunResult, int]:
    before = _rss_bytes()
    with bad_target(behaviour) as (host, port):
        text = (
            f"name: huge\ntarget: {host}:{port}\nconnections: 1\nduration: 1s\n"
            f"protocol:\n  redis:\n    command: [GET, k]\n{extra}"
        )
        result = run(parse_scenario(text), processes=1)
    return result, _rss_bytes() - before


def test_a_huge_bulk_string_is_counted_not_buffered() -> None:
    result, growth = _run("resp_huge", "    max_reply: 256MiB\n")
    summary = result.summary
    assert summary.requests >= 1, summary.errors  # at least one 200 MB reply came in whole
    assert set(summary.errors) <= {"eof"}  # the run's end may cut a reply short
    assert growth < RSS_GROWTH_BOUND_BYTES, f"RSS grew {growth} bytes"


def test_a_reply_past_the_maximum_is_counted() -> None:
    result, growth = _run("resp_absurd")  # announces 1e9 bytes; the default max is 64 MiB
    summary = result.summary
    assert summary.requests == 0
    assert set(summary.errors) == {"reply_too_large"}
    assert summary.errors["reply_too_large"] >= 1
    assert growth < RSS_GROWTH_BOUND_BYTES, f"RSS grew {growth} bytes"
