"""Request sets, variables and status expectations in whole runs: against the built-in HTTP
target (one for the module) for counts, weights and merges, and against a recording server
(``tests.recording_http``) where what loadgen sent has to be read back."""

from __future__ import annotations

import collections
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from loadgen.config.scenario import parse_scenario
from loadgen.result.model import RunResult
from loadgen.run.api import run
from loadgen.stats.histogram import HdrHistogram
from tests.recording_http import Recording, recording_http
from tests.shared_targets import SharedTargets


@pytest.fixture(scope="module")
def http_port(shared_targets: SharedTargets) -> int:
    """The session's shared built-in HTTP target (``tests/conftest.py``)."""
    return shared_targets.address("http")[1]


@pytest.fixture
def recording() -> Iterator[tuple[int, Recording]]:
    with recording_http() as server:
        yield server


def _run(text: str, processes: int = 1, seed: int | None = 11) -> RunResult:
    return run(parse_scenario("name: sets\n" + text), processes=processes, seed=seed)


def _counts(result: RunResult) -> dict[str, int]:
    return {named.name: named.requests for named in result.requests_by_name}


def test_weights_hold_within_2_percent_over_20k_requests(http_port: int) -> None:
    text = f"""\
target: http://127.0.0.1:{http_port}/
connections: 4
duration: 1s
protocol:
  http:
    pipeline: 16
    requests:
      - {{name: six, path: /status/200, weight: 6}}
      - {{name: three, path: /bytes/10, weight: 3}}
      - {{name: one, path: /status/204, weight: 1}}
"""
    totals: collections.Counter[str] = collections.Counter()
    for attempt in range(20):  # 1-second runs until 20k requests (a busy machine is slower)
        result = _run(text, seed=attempt)
        assert result.summary.errors == {} and result.summary.failed == 0
        assert sum(_counts(result).values()) == result.summary.requests
        totals.update(_counts(result))
        if sum(totals.values()) >= 20_000:
            break
    total = sum(totals.values())
    assert total >= 20_000, totals
    for name, weight in (("six", 0.6), ("three", 0.3), ("one", 0.1)):
        assert abs(totals[name] / total - weight) < 0.02, (name, totals)


def test_sequence_order_is_exact_per_connection(recording: tuple[int, Recording]) -> None:
    port, record = recording
    result = _run(
        f"""\
target: http://127.0.0.1:{port}/
connections: 3
duration: 700ms
protocol:
  http:
    order: sequence
    requests: [{{path: /a}}, {{path: /b}}, {{path: /c, weight: 0}}]
"""
    )
    assert result.summary.errors == {}
    by_connection = record.by_connection()
    assert len(by_connection) == 3
    for requests in by_connection.values():
        paths = [request.path for request in requests]
        assert len(paths) > 10
        assert paths == [("/a", "/b", "/c")[i % 3] for i in range(len(paths))]
    counts = _counts(result)
    assert list(counts) == ["GET /a", "GET /b", "GET /c"]  # the names, in the set's order
    assert max(counts.values()) - min(counts.values()) <= 3  # one round each at most apart


def test_each_variable_kind(recording: tuple[int, Recording], tmp_path: Path) -> None:
    port, record = recording
    (tmp_path / "rows.csv").write_text("name,token\nann,t-a\nbob,t-b\ncid,t-c\n")
    scenario = parse_scenario(
        f"""\
name: variables
target: http://127.0.0.1:{port}/
connections: 3
duration: 700ms
protocol:
  http:
    method: POST
    path: "/v/${{gseq}}/${{cseq}}?r=${{rint}}&c=${{pick}}"
    headers: {{X-Id: "${{id}}", X-Row: "${{row.name}}"}}
    body: '{{"token": "${{other.token}}", "again": ${{gseq}}}}'
    variables:
      gseq: {{sequence: global, start: 100, step: 2}}
      cseq: {{sequence: connection}}
      rint: {{random_int: [5, 7]}}
      pick: {{choice: [x, y z]}}
      id: uuid
      row: {{csv: rows.csv}}
      other: {{csv: rows.csv, order: random}}
""",
        "variables.yaml",
        base_dir=tmp_path,
    )
    result = run(scenario, seed=3)
    assert result.summary.errors == {}
    requests = record.snapshot()
    assert record.bad_requests == 0  # every rendered request parsed (Content-Length right)
    assert len(requests) > 30
    global_values = []
    for request in requests:
        assert request.method == "POST"
        route, query = request.path.split("?")
        _, _, gseq, _ = route.split("/")
        rint, pick = (part.split("=")[1] for part in query.split("&"))
        assert rint in {"5", "6", "7"}
        assert pick in {"x", "y%20z"}  # percent-encoded in the path
        assert uuid.UUID(request.headers["x-id"]).version == 4
        # One draw per request: the global sequence and the cycled CSV row advance together.
        position = (int(gseq) - 100) // 2
        assert int(gseq) % 2 == 0 and position >= 0
        assert request.headers["x-row"] == ("ann", "bob", "cid")[position % 3]
        body = json.loads(request.body)  # a variable drawn twice in a request: one value
        assert body["again"] == int(gseq) and body["token"] in {"t-a", "t-b", "t-c"}
        global_values.append(int(gseq))
    # The global sequence: never twice; gaps only where a last request was cut by the end.
    assert len(set(global_values)) == len(global_values)
    expected = set(range(100, max(global_values) + 1, 2))
    assert len(expected - set(global_values)) <= 3
    # The per-connection sequence counts 1, 2, 3, ... on each connection, in order.
    for connection in record.by_connection().values():
        counted = [int(request.path.split("?")[0].split("/")[3]) for request in connection]
        assert counted == list(range(1, len(counted) + 1))
    # Every value of the drawn kinds showed up.
    assert {r.path.split("r=")[1][0] for r in requests} == {"5", "6", "7"}
    assert {r.path.split("c=")[1] for r in requests} == {"x", "y%20z"}
    assert {json.loads(r.body)["token"] for r in requests} == {"t-a", "t-b", "t-c"}
    assert len({r.headers["x-id"] for r in requests}) == len(requests)


def test_global_sequence_is_unique_across_processes(recording: tuple[int, Recording]) -> None:
    port, record = recording
    result = _run(
        f"""\
target: http://127.0.0.1:{port}/
connections: 4
duration: 1s
protocol:
  http:
    path: "/n/${{n}}"
    variables: {{n: {{sequence: global}}}}
""",
        processes=2,
    )
    assert result.environment.processes == 2
    values = [int(request.path.rsplit("/", 1)[1]) for request in record.snapshot()]
    assert len(values) > 20
    assert len(set(values)) == len(values)
    # Each process counted its own residue: both are there.
    assert {value % 2 for value in values} == {0, 1}


def test_per_name_breakdown_merges_exactly_across_processes(http_port: int) -> None:
    result = _run(
        f"""\
target: http://127.0.0.1:{http_port}/
connections: 4
duration: 1s
protocol:
  http:
    requests:
      - {{name: ok, path: /status/200, weight: 2}}
      - {{name: fails, path: /status/500}}
      - {{name: slow, path: /delay/2}}
""",
        processes=2,
    )
    summary = result.summary
    named = {item.name: item for item in result.requests_by_name}
    assert list(named) == ["ok", "fails", "slow"]
    assert result.environment.processes == 2
    assert sum(item.requests for item in named.values()) == summary.requests
    assert named["fails"].failed == named["fails"].requests == summary.failed > 0
    assert named["fails"].errors == {"http_5xx": summary.failed} == summary.errors
    assert named["ok"].failed == named["slow"].failed == 0
    # Exact: the names' histograms, added, are the run's histogram bucket for bucket, and
    # each name's percentiles come from its merged histogram.
    added = HdrHistogram()
    for item in named.values():
        histogram = HdrHistogram.from_dict(item.histograms["latency"])
        assert histogram.total_count == item.requests
        assert histogram.percentiles([99])[0] / 1000 == item.latency_us.p99
        added.merge(histogram)
    assert added == result.histogram("latency")
    assert named["slow"].latency_us.p50 is not None and named["slow"].latency_us.p50 >= 2000


def test_open_model_breakdown_has_corrected_latency(http_port: int) -> None:
    result = _run(
        f"""\
target: http://127.0.0.1:{http_port}/
load:
  model: open
  connections: 4
  phases: [{{duration: 600ms, rate: 300/s}}]
protocol:
  http:
    requests: [{{name: a, path: /status/200}}, {{name: b, path: /status/201}}]
"""
    )
    for item in result.requests_by_name:
        assert item.latency_corrected_us is not None and item.latency_corrected_us.count > 0
        assert set(item.histograms) == {"latency", "latency_corrected"}


def test_a_status_outside_the_expectation_is_a_failed_request(http_port: int) -> None:
    base = f"target: http://127.0.0.1:{http_port}/status/404\nconnections: 2\nduration: 500ms\n"
    missing = _run(base)
    summary = missing.summary
    assert summary.requests > 0 and summary.latency_us.count == summary.requests
    assert summary.failed == summary.requests and summary.errors == {"http_4xx": summary.requests}
    assert summary.error_rate == 1.0 and summary.failed_rate == 1.0
    assert missing.no_success
    assert [i.failed for i in missing.intervals] and sum(
        i.failed for i in missing.intervals
    ) == summary.failed
    expected = _run(base + "protocol: {http: {expect: {status: [404]}}}\n")
    assert expected.summary.failed == 0 and expected.summary.errors == {}
    assert not expected.no_success
    # An unexpected success is an error too.
    surprise = _run(base.replace("/404", "/200") + "protocol: {http: {expect: {status: [4xx]}}}\n")
    assert surprise.summary.errors == {"http_unexpected": surprise.summary.requests}


def test_expect_failures_marks_a_refused_target_as_studied() -> None:
    from tests.adversarial.servers import free_port

    text = f"target: http://127.0.0.1:{free_port()}/\nconnections: 2\nduration: 300ms\n"
    refused = _run(text)
    assert refused.summary.requests == 0 and refused.summary.errors["refused"] > 0
    assert refused.no_success
    assert not _run(text + "expect_failures: true\n").no_success
