"""Every misbehaving target against every backend and receive mode: the run ends, counts
the misbehaviour under its own error kind and no other, and writes a result that reads
back. A well-behaved echo server is the control: no errors at all in the same matrix.

Each server (``tests.adversarial.servers``) is started once for the module; each run is
short (0.3 s, two connections) so the whole matrix stays fast. Counts are bounded as
"some" (> 0) of the provoked kind and "nothing else": the numbers depend on the machine's
load, the kinds do not.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest

from loadgen.config.scenario import parse_scenario
from tests.adversarial.conftest import check_result, matrix, run_bounded
from tests.adversarial.servers import bad_target

#: A request timeout short enough for a silent target to time out in a 0.3 s run (the
#: client looks for timeouts every 100 ms).
SILENT_TIMEOUT = "50ms"
#: Every other target's: far past the run, so a slow machine never turns an answer that is
#: late into a ``timeout`` (the kind each target provokes comes without waiting).
REQUEST_TIMEOUT = "5s"
#: The largest reply the endless targets' runs accept: the client must hang up once a
#: reply passes it (the targets stream up to 64 MiB otherwise).
MAX_REPLY = "256KiB"


@dataclass(frozen=True)
class Case:
    """A server's behaviour, the protocol spoken to it, and the one error kind it provokes
    (None: the good server, no error at all)."""

    behaviour: str
    protocol: object  # the scenario's ``protocol`` value
    kind: str | None
    request_timeout: str = REQUEST_TIMEOUT
    #: Under Wine only, the kind Wine's sockets report instead (see ``_kinds``).
    under_wine: str | None = None


CASES = {
    "good-echo": Case("echo", "echo", None),
    "silent": Case("silent", "echo", "timeout", SILENT_TIMEOUT),
    "closing": Case("close", "echo", "eof"),
    "resetting": Case("reset", "echo", "reset"),
    "resetting-on-accept": Case("reset_on_accept", "echo", "reset", under_wine="eof"),
    "corrupting-echo": Case("corrupt", "echo", "verify"),
    "malformed-http": Case("http_malformed", "http", "protocol"),
    "cut-http-body": Case("http_cut", "http", "eof"),
    "endless-http-body": Case("http_endless", {"http": {"max_body": MAX_REPLY}}, "reply_too_large"),
    "malformed-resp": Case("resp_malformed", "redis", "protocol"),
    "endlessly-nested-resp": Case("resp_nested", "redis", "protocol"),
    "endless-resp-bulk": Case(
        "resp_absurd",
        {"redis": {"command": ["GET", "k"], "max_reply": MAX_REPLY}},
        "reply_too_large",
    ),
}


def _under_wine() -> bool:
    if sys.platform != "win32":
        return False
    from loadgen.engine.win32 import wine_version

    return wine_version() is not None


def _kinds(case: Case) -> set[str]:
    """The kinds ``case`` may be counted as here. Under Wine a reset right after accept
    mostly reads as the end of the stream (measured: 5 eof, 1 reset): Wine's sockets are
    Linux sockets, whose reset error one call takes (a send, first), leaving the receive 0
    bytes and SO_ERROR 0 (what ``IocpBackend.end_error`` asks). Windows reports the reset on
    the receive itself (WSAECONNRESET), so there it must be a reset: the Windows CI job runs
    this file too."""
    assert case.kind is not None
    if case.under_wine is not None and _under_wine():
        return {case.kind, case.under_wine}
    return {case.kind}


@pytest.fixture(scope="module")
def addresses() -> Iterator[dict[str, tuple[str, int]]]:
    """Each behaviour's server, started once for the module."""
    with ExitStack() as stack:
        behaviours = {case.behaviour for case in CASES.values()}
        yield {name: stack.enter_context(bad_target(name)) for name in sorted(behaviours)}


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize(("backend", "mode"), matrix())
def test_a_misbehaving_target_is_counted_by_kind(
    name: str,
    backend: str,
    mode: str,
    addresses: dict[str, tuple[str, int]],
    tmp_path: Path,
) -> None:
    case = CASES[name]
    host, port = addresses[case.behaviour]
    settings = {
        "name": f"adversarial-{name}",
        "target": f"{host}:{port}",
        "protocol": case.protocol,
        "connections": 2,
        "duration": "0.3s",
        "receive": mode,
        "timeouts": {"connect": "500ms", "request": case.request_timeout},
    }
    result = run_bounded(parse_scenario(json.dumps(settings)), backend)
    loaded = check_result(result, tmp_path)
    summary = loaded.summary
    assert loaded.environment.backend == backend
    assert loaded.environment.recv_mode == mode
    if case.kind is None:
        assert summary.errors == {}, summary.errors
        assert summary.requests > 0
        return
    kinds = _kinds(case)
    assert summary.errors and set(summary.errors) <= kinds, summary.errors
    assert sum(summary.errors.values()) > 0
    assert summary.requests == 0, "a misbehaving target answered a request as it should"
    assert loaded.no_success  # what makes ``loadgen run`` exit 1 (see test_cli_results)
