"""The HTTP protocol's settings: one request or a request set, variables and the statuses
expected (TLS, for any protocol, is ``loadgen.config.tls``). Validated here (no network;
files are checked by ``loadgen.config.files``).

One request::

    http: {method: GET, path: /, headers: {Accept: "*/*"}, body: "", pipeline: 1}

A request set, drawn by weight (``order: random``, the default) or stepped through in turn
by each connection (``order: sequence``); ``headers`` at the ``http`` level go with every
request (a request's own header of the same name wins)::

    http:
      requests:
        - {name: home, path: /, weight: 8}
        - {name: item, path: "/items/${item}", weight: 2}
        - {name: create, method: POST, path: /items, body: '{"id": "${id}"}'}
      variables:
        item: {random_int: [1, 1000]}
        id: uuid
      expect: {status: [200-299, 304]}

Variables (``${name}`` in a path, a header value or a body; ``loadgen.protocols
.http_template``): ``{sequence: global}`` or ``{sequence: connection}`` (``start``, default
1; ``step``, default 1), ``{random_int: [LOW, HIGH]}`` (both included), ``{choice: [a, b]}``,
``uuid`` (random, version 4), ``{csv: FILE, order: cycle | random}`` (one row per request:
``${name.column}``, by the header line's names). Each is drawn once per request, so a
variable used twice in one request has one value there.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, model_validator

from loadgen.config.units import parse_size_bytes
from loadgen.protocols.http1 import DEFAULT_EXPECTED, DEFAULT_MAX_BODY_BYTES
from loadgen.protocols.http_template import (
    Reference,
    RequestTemplate,
    header_value_problem,
    references,
)

_VARIABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def parse_status_range(value: object) -> tuple[int, int]:
    """``200``, ``"200-299"``, ``"2xx"`` or ``[200, 299]`` → (low, high), both included."""
    if isinstance(value, list | tuple) and len(value) == 2:
        low, high = (int(v) for v in value)
    elif isinstance(value, int) and not isinstance(value, bool):
        low = high = value
    elif isinstance(value, str):
        text = value.strip().lower()
        if re.fullmatch(r"[1-9]xx", text):
            low, high = int(text[0]) * 100, int(text[0]) * 100 + 99
        elif re.fullmatch(r"\d{3}\s*-\s*\d{3}", text):
            first, _, last = text.partition("-")
            low, high = int(first), int(last)
        elif re.fullmatch(r"\d{3}", text):
            low = high = int(text)
        else:
            raise ValueError(
                f"expected a status (304), a range (200-299) or a class (2xx), got {value!r}"
            )
    else:
        raise ValueError(
            f"expected a status (304), a range (200-299) or a class (2xx), got {value!r}"
        )
    if not 100 <= low <= high <= 999:
        raise ValueError(f"status range {value!r} must lie within 100-999, low to high")
    return low, high


def _format_status_range(value: tuple[int, int]) -> str | int:
    low, high = value
    return low if low == high else f"{low}-{high}"


StatusRange = Annotated[
    tuple[int, int], BeforeValidator(parse_status_range), PlainSerializer(_format_status_range)
]


class Expect(_Model):
    """What a response must be to count as a success (else it is a failed request, counted
    as an error of its class: ``http_4xx``, ``http_5xx``, ``http_unexpected``)."""

    status: list[StatusRange] = Field(default=list(DEFAULT_EXPECTED), min_length=1)

    @property
    def ranges(self) -> tuple[tuple[int, int], ...]:
        return tuple(self.status)


def _text(value: object) -> object:
    """YAML scalars as text (``choice: [1, 2]`` means the strings "1" and "2")."""
    if isinstance(value, bool):
        return str(value).lower()
    return str(value) if isinstance(value, int | float) else value


Text = Annotated[str, BeforeValidator(_text)]


class Variable(_Model):
    """One variable: exactly one of ``sequence``, ``random_int``, ``choice``, ``uuid``,
    ``csv`` (``uuid`` alone may be written as the string ``uuid``)."""

    sequence: Literal["global", "connection"] | None = None
    start: int | None = None  # sequence: the first value (default 1)
    step: int | None = None  # sequence: the increment (default 1)
    random_int: tuple[int, int] | None = None
    choice: list[Text] | None = Field(default=None, min_length=1)
    uuid: bool = False
    csv: str | None = None  # a CSV file with a header line (relative to the scenario file)
    order: Literal["cycle", "random"] | None = None  # csv: rows in turn, or drawn

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: object) -> object:
        return {"uuid": True} if value == "uuid" else value

    @model_validator(mode="after")
    def _one_kind(self) -> Variable:
        kinds = [
            kind
            for kind, given in (
                ("sequence", self.sequence is not None),
                ("random_int", self.random_int is not None),
                ("choice", self.choice is not None),
                ("uuid", self.uuid),
                ("csv", self.csv is not None),
            )
            if given
        ]
        if len(kinds) != 1:
            raise ValueError(
                "give exactly one of sequence, random_int, choice, uuid, csv; "
                f"got {kinds or 'none'}"
            )
        if self.sequence is None and (self.start is not None or self.step is not None):
            raise ValueError("start and step belong to a sequence")
        if self.csv is None and self.order is not None:
            raise ValueError("order (cycle or random) belongs to a csv variable")
        if self.random_int is not None and self.random_int[0] > self.random_int[1]:
            raise ValueError("random_int: the low end must not exceed the high end")
        return self

    @property
    def kind(self) -> str:
        for kind in ("sequence", "random_int", "choice", "csv"):
            if getattr(self, kind) is not None:
                return kind
        return "uuid"


class HttpRequest(_Model):
    """One request of a request set."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    method: str = "GET"
    path: str | None = None  # default: the http path (a URL target's, or /)
    headers: dict[str, str] = {}
    body: str | None = None
    body_file: str | None = None  # sent as it is (no variables), relative to the scenario
    weight: float = Field(default=1.0, ge=0)

    @model_validator(mode="after")
    def _one_body(self) -> HttpRequest:
        if self.body is not None and self.body_file is not None:
            raise ValueError("give body or body_file, not both")
        return self

    @property
    def label(self) -> str:
        """The request's name in results: ``name``, else ``METHOD path``."""
        return self.name or f"{self.method.upper()} {self.path or '/'}"


class HttpSpec(_Model):
    method: str = "GET"
    path: str = "/"  # a URL target's path (and query) when not given
    headers: dict[str, str] = {}
    body: str = ""
    body_file: str | None = None
    pipeline: int = Field(default=1, ge=1, le=1024)
    requests: list[HttpRequest] | None = Field(default=None, min_length=1)
    order: Literal["random", "sequence"] = "random"
    variables: dict[str, Variable] = {}
    expect: Expect = Expect()
    #: Largest response body (e.g. ``1GiB``); past it the connection fails with
    #: ``reply_too_large``. Bodies are counted, never stored, so this bounds time, not memory.
    max_body: Annotated[int, BeforeValidator(parse_size_bytes)] = Field(
        default=DEFAULT_MAX_BODY_BYTES, ge=1
    )

    @model_validator(mode="after")
    def _requests_fit(self) -> HttpSpec:
        if self.body and self.body_file is not None:
            raise ValueError("give body or body_file, not both")
        for name in self.variables:
            if not _VARIABLE_NAME.match(name):
                raise ValueError(f"variables: {name!r} is not a name (letters, digits, _)")
        if self.requests is None:
            if "order" in self.model_fields_set:
                raise ValueError("order applies to a request set (requests: [...])")
            self._check_request("", self.method, self.path, {}, self.body)
            return self
        single = {"method", "body", "body_file"} & self.model_fields_set
        if single:
            raise ValueError(
                f"{', '.join(sorted(single))}: with requests, give each request's method and "
                "body in its entry (path and headers here are the defaults of every request)"
            )
        if sum(request.weight for request in self.requests) <= 0:
            raise ValueError("requests: the weights must have a positive sum")
        filled = [
            r if r.path is not None else r.model_copy(update={"path": self.path})
            for r in self.requests
        ]
        object.__setattr__(self, "requests", filled)  # frozen: resolved once, here
        seen: dict[str, int] = {}
        for index, request in enumerate(filled):
            label = request.label
            if label in seen:
                raise ValueError(
                    f"requests[{index}]: the name {label!r} is also requests[{seen[label]}]'s; "
                    "give each request its own name"
                )
            seen[label] = index
            assert request.path is not None
            self._check_request(
                f"requests[{index}].",
                request.method,
                request.path,
                request.headers,
                request.body or "",
            )
        methods = {request.method.upper() for request in filled}
        if "HEAD" in methods and len(methods) > 1:
            raise ValueError(
                "requests: HEAD cannot be mixed with other methods in one set (a HEAD "
                "response's length is not on the wire, so each connection must know it "
                "answers HEAD)"
            )
        return self

    def _check_request(
        self, where: str, method: str, path: str, headers: dict[str, str], body: str
    ) -> None:
        """The request's variables are defined, and it compiles (method, path, headers)."""
        self._check_references(where, path, headers, body)
        if method.upper() == "CONNECT":
            raise ValueError(f"{where}method: CONNECT opens a tunnel, not a request")
        try:
            RequestTemplate(method, path, list({**self.headers, **headers}.items()), body, "h")
        except ValueError as exc:
            message = f"{where.rstrip('.')}: {exc}" if where else str(exc)
            raise ValueError(message) from None

    def _check_references(self, where: str, path: str, headers: dict[str, str], body: str) -> None:
        fields: list[tuple[str, str]] = [(f"{where}path", path), (f"{where}body", body)]
        fields += [
            (f"{where}headers.{name}", value) for name, value in {**self.headers, **headers}.items()
        ]
        for field, text in fields:
            try:
                found = references(text)
            except ValueError as exc:
                raise ValueError(f"{field}: {exc}") from None
            for reference in found:
                self._check_reference(field, reference)
                choice = self.variables[reference.variable].choice
                if ".headers." in f".{field}" and choice is not None:
                    for value in choice:
                        problem = header_value_problem(value)
                        if problem:
                            raise ValueError(f"{field}: variables.{reference.variable}: {problem}")

    def _check_reference(self, field: str, reference: Reference) -> None:
        variable = self.variables.get(reference.variable)
        if variable is None:
            defined = ", ".join(self.variables) or "none"
            raise ValueError(
                f"{field}: unknown variable {reference.variable!r} (defined in http.variables: "
                f"{defined})"
            )
        if reference.column is not None and variable.csv is None:
            raise ValueError(
                f"{field}: ${{{reference.key}}}: only a csv variable has columns "
                f"({reference.variable} is a {variable.kind})"
            )

    @property
    def fixed_request(self) -> bool:
        """One request with no variable and no body file: the same bytes every send."""
        if self.is_set or self.body_file is not None:
            return False
        return not any(references(text) for text in (self.path, self.body, *self.headers.values()))

    @property
    def is_set(self) -> bool:
        """True for a request set (``requests:``): results break down by request name."""
        return self.requests is not None

    def request_list(self) -> list[HttpRequest]:
        """The requests to send: the set, or the one request as a set of one."""
        if self.requests is not None:
            return list(self.requests)
        return [
            HttpRequest(
                method=self.method,
                path=self.path,
                body=self.body or None,
                body_file=self.body_file,
            )
        ]


def default_http_document(protocol: Any) -> Any:
    """The ``protocol`` of a URL target: HTTP unless something else was given."""
    return {"http": {}} if protocol is None else protocol
