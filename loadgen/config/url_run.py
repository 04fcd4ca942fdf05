"""A scenario from a URL and the options users know from wrk, hey and vegeta, for
``loadgen run URL -c 100 -d 30s``. No network here.

The options become a scenario document that is validated exactly like a file (so ``--set``
works on it too, and the result records the resolved scenario as for a file):

* ``-c N``: connections (default 10, as wrk's); with ``--rate`` the open model's pool;
* ``-d 30s``: one phase that long (default 10 s);
* ``--rate 2k/s``: the open model at that arrival rate (without it: a closed loop);
* ``-m``, ``-H 'Name: value'`` (repeatable), ``--body TEXT`` or ``--body @FILE``;
* ``--requests-per-connection N``: a fresh connection after every N responses.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loadgen.config.scenario import Scenario, ScenarioError, validate_document
from loadgen.config.targets import parse_url
from loadgen.config.units import parse_duration_s, parse_rate_per_s

DEFAULT_CONNECTIONS = 10  # wrk's default
#: The open model's pool when ``-c`` is not given: a request waits for a free connection
#: only when 100 are busy (at 2k/s, a target slower than 50 ms).
DEFAULT_OPEN_CONNECTIONS = 100
DEFAULT_DURATION = "10s"


@dataclass(frozen=True)
class UrlRun:
    """What the command line says about a URL run (None: not given)."""

    url: str
    connections: int | None = None
    duration: str | None = None
    rate: str | None = None
    method: str | None = None
    headers: Sequence[str] = field(default_factory=tuple)
    body: str | None = None
    requests_per_connection: int | None = None


def _name(url: str) -> str:
    """A scenario name from the URL's host and port (``127.0.0.1-8080``)."""
    parsed = parse_url(url)
    text = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{parsed.host}-{parsed.port}")
    return text.strip("-._")[:100] or "url"


def _header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    if not sep or not name.strip() or name != name.strip():
        raise ScenarioError([f"-H {text!r}: expected 'Name: value', e.g. -H 'Accept: */*'"])
    return name, value.strip()


def url_document(options: UrlRun) -> dict[str, Any]:
    """The scenario document the options describe; ``ScenarioError`` naming the option."""
    try:
        parse_url(options.url)
    except ValueError as exc:
        raise ScenarioError([f"URL: {exc}"]) from None
    duration = options.duration or DEFAULT_DURATION
    try:
        parse_duration_s(duration, unit_required=True)
    except ValueError as exc:
        raise ScenarioError([f"-d/--duration {duration}: {exc}"]) from None
    http: dict[str, Any] = {}
    if options.method is not None:
        http["method"] = options.method.upper()
    headers = dict(_header(text) for text in options.headers)
    if headers:
        http["headers"] = headers
    if options.body is not None:
        if options.body.startswith("@"):
            http["body_file"] = options.body[1:]
        else:
            http["body"] = options.body
    load: dict[str, Any] = {"phases": [{"duration": duration}]}
    if options.rate is not None:
        try:
            parse_rate_per_s(options.rate)
        except ValueError as exc:
            raise ScenarioError([f"--rate {options.rate}: {exc}"]) from None
        load["model"] = "open"
        load["phases"][0]["rate"] = options.rate
        load["connections"] = options.connections or DEFAULT_OPEN_CONNECTIONS
    else:
        load["model"] = "closed"
        load["connections"] = options.connections or DEFAULT_CONNECTIONS
    if options.requests_per_connection is not None:
        load["requests_per_connection"] = options.requests_per_connection
    document: dict[str, Any] = {
        "name": _name(options.url),
        "target": options.url,
        "protocol": {"http": http},
        "load": load,
    }
    return document


def url_scenario(options: UrlRun, overrides: Sequence[str] = ()) -> Scenario:
    """The validated scenario of a URL run (relative paths: from the current directory)."""
    return validate_document(url_document(options), "command line", overrides, Path.cwd())
