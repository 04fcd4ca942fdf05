"""Scenario files: YAML in, a validated and frozen ``Scenario`` out. No network here.

Every error names the file, the line and the dotted field, says what was expected, and for
an unknown key suggests the closest known one::

    quickstart.yaml:5: conections: unknown key; did you mean 'connections'?

``--set path.to.key=value`` overrides are applied to the raw document before validation, so
they are checked exactly like the file (their errors name ``--set`` instead of a line).
"""

from __future__ import annotations

import difflib
import ipaddress
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from loadgen.config.receive import ReceiveMode
from loadgen.config.schedule import offerable_rates
from loadgen.config.thresholds import Threshold
from loadgen.config.tls import TlsSpec, check_tls
from loadgen.config.units import (
    parse_byte_rate_per_s,
    parse_count,
    parse_duration_s,
    parse_range,
    parse_rate_per_s,
    parse_size_bytes,
)
from loadgen.protocols.stream import MAX_SEGMENT_BYTES, MAX_STREAM_BYTES

DurationS = Annotated[float, BeforeValidator(parse_duration_s)]
SizeBytes = Annotated[int, BeforeValidator(parse_size_bytes)]
Count = Annotated[int, BeforeValidator(parse_count)]

#: Each echo message starts with a header (sequence number, connection id, size).
ECHO_HEADER_BYTES = 16
#: receive: buffer-ring: buffers in the ring when ``ring_buffers`` is not given.
DEFAULT_RING_BUFFERS = 256
#: io_uring's provided-buffer rings hold a power of two of entries below 65,536.
MAX_RING_BUFFERS = 32768
BUILTIN_TARGETS = ("echo", "http", "stream")


class ScenarioError(ValueError):
    """A scenario that cannot be used; ``str()`` is one line per problem, ready to print."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Timeouts(_Model):
    connect: DurationS = Field(default=5.0, gt=0)
    request: DurationS = Field(default=5.0, gt=0)


RateRange = Annotated[
    tuple[float, float],
    BeforeValidator(lambda v: parse_range(v, parse_rate_per_s)),
    AfterValidator(offerable_rates),
]
CountRange = Annotated[tuple[int, int], BeforeValidator(lambda v: parse_range(v, parse_count))]
ThresholdSpec = Annotated[Threshold, BeforeValidator(Threshold.parse)]


class Phase(_Model):
    """A stretch of the run. Open model: ``rate`` (``1k/s`` or ``1k/s to 20k/s``, a linear
    ramp). Closed model: ``connections`` (``100`` or ``10 to 1000``, a linear ramp), and
    ``idle: true`` to open the connections and hold them without sending a request (the
    receive-mode study measures idle connections this way; the open model uses rate 0)."""

    duration: DurationS = Field(gt=0)
    rate: RateRange | None = None
    arrivals: Literal["constant", "poisson"] = "constant"
    connections: CountRange | None = None
    think_time: DurationS | None = None
    idle: bool = False


class Load(_Model):
    model: Literal["open", "closed"] = "closed"
    connections: Count = Field(ge=1, le=1_000_000)
    phases: list[Phase] = Field(min_length=1)
    think_time: DurationS = 0.0
    requests_per_connection: Count | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _phases_fit_the_model(self) -> Load:
        for index, phase in enumerate(self.phases):
            if self.model == "open" and phase.rate is None:
                raise ValueError(f"phases[{index}]: the open model needs a rate, e.g. 1k/s")
            if self.model == "closed" and phase.rate is not None:
                raise ValueError(
                    f"phases[{index}]: rate belongs to the open model (set load.model: open)"
                )
            if self.model == "open" and phase.idle:
                raise ValueError(
                    f"phases[{index}]: idle belongs to the closed model "
                    "(in the open model give the phase rate: 0/s)"
                )
            if self.model == "open" and phase.connections is not None:
                raise ValueError(
                    f"phases[{index}]: the open model has one pool of connections "
                    "(load.connections); phases set the rate"
                )
        return self

    @property
    def duration(self) -> float:
        return sum(phase.duration for phase in self.phases)


_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
MessageBytes = Annotated[
    int, BeforeValidator(parse_size_bytes), Field(ge=ECHO_HEADER_BYTES, le=_MAX_MESSAGE_BYTES)
]


class SizeDistribution(_Model):
    """Echo message sizes: ``64B`` (fixed), ``{uniform: [64B, 4KiB]}`` or
    ``{choice: [64B, 1KiB, 64KiB], weights: [8, 1, 1]}``, drawn per request."""

    fixed: MessageBytes | None = None
    uniform: tuple[MessageBytes, MessageBytes] | None = None
    choice: list[MessageBytes] | None = Field(default=None, min_length=1)
    weights: list[float] | None = None

    @model_validator(mode="after")
    def _one_shape(self) -> SizeDistribution:
        shapes = [n for n in ("fixed", "uniform", "choice") if getattr(self, n) is not None]
        if len(shapes) != 1:
            raise ValueError(f"give exactly one of fixed, uniform, choice; got {shapes}")
        if self.uniform is not None and self.uniform[0] > self.uniform[1]:
            raise ValueError("uniform: the first size must not exceed the second")
        if self.weights is not None:
            if self.choice is None or len(self.weights) != len(self.choice):
                raise ValueError("weights need a choice list of the same length")
            if min(self.weights) < 0 or sum(self.weights) <= 0:
                raise ValueError("weights must be non-negative with a positive sum")
        return self

    @property
    def largest(self) -> int:
        if self.fixed is not None:
            return self.fixed
        if self.uniform is not None:
            return self.uniform[1]
        assert self.choice is not None
        return max(self.choice)

    def sampler(self, rng: random.Random) -> Callable[[], int] | None:
        """A function drawing one size per call; None for a fixed size."""
        if self.uniform is not None:
            low, high = self.uniform
            return lambda: rng.randint(low, high)
        if self.choice is not None:
            sizes, weights = self.choice, self.weights
            return lambda: rng.choices(sizes, weights)[0]
        return None


def _power_of_two(value: int) -> int:
    if value & (value - 1):
        below = 1 << (value.bit_length() - 1)
        raise ValueError(
            f"must be a power of two (io_uring's buffer rings are), e.g. {below} or {below * 2}"
        )
    return value


RingBuffers = Annotated[
    int,
    BeforeValidator(parse_count),
    Field(ge=1, le=MAX_RING_BUFFERS),
    AfterValidator(_power_of_two),
]


def _size_shorthand(value: object) -> object:
    """``message_size: 64B`` means ``{fixed: 64B}``."""
    return value if isinstance(value, dict) else {"fixed": value}


class EchoSpec(_Model):
    """Echo with verification (the message size is the top-level ``message_size``)."""


class HttpSpec(_Model):
    method: str = "GET"
    path: str = "/"
    headers: dict[str, str] = {}
    body: str = ""
    pipeline: int = Field(default=1, ge=1, le=1024)


class RedisSpec(_Model):
    command: list[str] = ["PING"]
    pipeline: int = Field(default=1, ge=1, le=1024)


class StreamSpec(_Model):
    """Raw TCP throughput in ctsTraffic's patterns (``loadgen.load.streams``): each connection
    moves ``bytes`` each way its pattern uses, then closes and a fresh one replaces it.
    ``rate`` (bytes/s per connection and direction, e.g. ``10MiB/s``) paces it."""

    pattern: Literal["push", "pull", "pushpull", "duplex"] = "push"
    bytes: SizeBytes = Field(default=100 * 1024 * 1024, ge=1, le=MAX_STREAM_BYTES)
    segment: SizeBytes = Field(default=64 * 1024, ge=1, le=MAX_SEGMENT_BYTES)
    rate: Annotated[float, BeforeValidator(parse_byte_rate_per_s)] | None = Field(
        default=None, gt=0
    )


_PROTOCOLS = ("echo", "http", "redis", "stream")


class ProtocolSpec(_Model):
    """``protocol: {http: {...}}``: exactly one of the keys."""

    echo: EchoSpec | None = None
    http: HttpSpec | None = None
    redis: RedisSpec | None = None
    stream: StreamSpec | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> ProtocolSpec:
        chosen = [name for name in _PROTOCOLS if getattr(self, name) is not None]
        if len(chosen) != 1:
            raise ValueError(
                f"choose exactly one protocol of {', '.join(_PROTOCOLS)}; got {chosen}"
            )
        return self

    @property
    def name(self) -> str:
        return next(n for n in _PROTOCOLS if getattr(self, n) is not None)


def _protocol_shorthand(value: object) -> object:
    """``protocol: http`` means ``protocol: {http: {}}`` (every option at its default)."""
    return {value: {}} if isinstance(value, str) else value


class Scenario(_Model):
    """A validated scenario. Durations are seconds, sizes bytes, rates per second.

    The quickstart shorthand (top-level ``connections`` and ``duration``) is a closed-model
    run with one phase; ``load`` is always filled in after validation.
    """

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100)
    description: str = ""
    target: str | list[str]
    protocol: Annotated[ProtocolSpec, BeforeValidator(_protocol_shorthand)] = ProtocolSpec(
        echo=EchoSpec()
    )
    connections: Count | None = Field(default=None, ge=1, le=1_000_000)
    duration: DurationS | None = Field(default=None, gt=0)
    load: Load | None = None
    message_size: Annotated[SizeDistribution, BeforeValidator(_size_shorthand)] = SizeDistribution(
        fixed=64
    )
    receive: ReceiveMode = ReceiveMode.BUFFERED
    #: buffered: each connection's buffer; buffer-ring: each buffer of the shared ring.
    receive_buffer: SizeBytes = Field(default=64 * 1024, ge=1, le=64 * 1024 * 1024)
    #: buffer-ring: buffers in the ring, shared by every connection (default 256).
    ring_buffers: RingBuffers | None = None
    #: buffered on io_uring: register the buffers with the kernel (pinned: VmPin).
    register_buffers: bool = False
    timeouts: Timeouts = Timeouts()
    source: str | list[str] | None = None
    #: How the client ends a connection it retires (churn, a ramp down, the run's end):
    #: fin (an orderly close; the closing side keeps the port in TIME_WAIT for 60 s) or
    #: rst (SO_LINGER 0: an abort, no TIME_WAIT; for high-rate churn).
    close: Literal["fin", "rst"] = "fin"
    thresholds: list[ThresholdSpec] = []
    #: TLS on every connection (``loadgen.config.tls``).
    tls: TlsSpec = TlsSpec()

    @model_validator(mode="after")
    def _resolve_load(self) -> Scenario:
        if self.load is None:
            missing = [f for f in ("connections", "duration") if getattr(self, f) is None]
            if missing:
                raise ValueError(
                    "give either load (model, connections, phases) or the shorthand "
                    f"connections and duration; missing: {', '.join(missing)}"
                )
            assert self.connections is not None and self.duration is not None
            # Frozen model: the resolved plan is set once, here, during validation.
            object.__setattr__(
                self,
                "load",
                Load(connections=self.connections, phases=[Phase(duration=self.duration)]),
            )
        elif self.connections is not None or self.duration is not None:
            raise ValueError(
                "give either load or the shorthand connections/duration, not both "
                "(use load.connections and load.phases)"
            )
        return self

    @model_validator(mode="after")
    def _streams_run_closed(self) -> Scenario:
        if self.protocol.stream is None or self.load is None:
            return self
        load = self.load
        if load.model == "open":
            raise ValueError(
                "protocol stream runs the closed model only: each connection moves its bytes "
                "and is replaced; pace a connection with stream.rate (bytes/s) instead"
            )
        if load.requests_per_connection is not None:
            raise ValueError(
                "load.requests_per_connection does not apply to streams: every stream "
                "connection is one transfer (stream.bytes) and then a fresh connection"
            )
        if load.think_time or any(phase.think_time for phase in load.phases):
            raise ValueError("think_time does not apply to streams (use stream.rate to pace)")
        if any(phase.idle for phase in load.phases):
            raise ValueError("idle phases do not apply to streams (each stream is one transfer)")
        return self

    @property
    def protocol_name(self) -> str:
        return self.protocol.name

    @property
    def ring_buffer_count(self) -> int:
        """buffer-ring: buffers in the ring (``ring_buffers`` or the default)."""
        return self.ring_buffers or DEFAULT_RING_BUFFERS

    def receive_options(self) -> dict[str, int | bool]:
        """The receive mode's settings, as a result records them."""
        if self.receive == ReceiveMode.BUFFERED:
            return {
                "receive_buffer": self.receive_buffer,
                "register_buffers": self.register_buffers,
            }
        if self.receive == ReceiveMode.BUFFER_RING:
            count = self.ring_buffer_count
            return {
                "ring_buffers": count,
                "ring_buffer_bytes": self.receive_buffer,
                "ring_bytes": count * self.receive_buffer,
            }
        return {}

    @property
    def protocol_options(self) -> EchoSpec | HttpSpec | RedisSpec | StreamSpec:
        options = getattr(self.protocol, self.protocol.name)
        assert isinstance(options, EchoSpec | HttpSpec | RedisSpec | StreamSpec)
        return options

    @property
    def plan(self) -> Load:
        """The load plan (resolved from the shorthand when that was used)."""
        assert self.load is not None
        return self.load

    @property
    def targets(self) -> list[str]:
        return [self.target] if isinstance(self.target, str) else list(self.target)

    @property
    def builtin_target(self) -> str | None:
        """``"echo"`` for ``target: builtin:echo``; ``None`` for network addresses."""
        kind, _, rest = self.targets[0].partition(":")
        return rest if kind == "builtin" else None

    def target_addresses(self) -> list[tuple[str, int]]:
        """(host, port) of each network target (not for builtin ones)."""
        return [parse_address(target) for target in self.targets]

    def source_addresses(self) -> list[str]:
        """Local addresses to spread connections over (empty: let the kernel choose)."""
        if self.source is None:
            return []
        items = [self.source] if isinstance(self.source, str) else self.source
        return [address for item in items for address in expand_address_range(item)]

    def with_duration(self, seconds: float) -> Scenario:
        """The same scenario lasting ``seconds``, every phase scaled in proportion."""
        if seconds <= 0:
            raise ValueError(f"a run must last more than 0 s, got {seconds}")
        plan = self.plan
        factor = seconds / plan.duration
        phases = [p.model_copy(update={"duration": p.duration * factor}) for p in plan.phases]
        load = plan.model_copy(update={"phases": phases})
        update: dict[str, Any] = {"load": load}
        if self.duration is not None:
            update["duration"] = seconds
        return self.model_copy(update=update)

    def to_dict(self) -> dict[str, Any]:
        data = self.model_dump(mode="json")
        data["protocol"] = {self.protocol_name: data["protocol"][self.protocol_name]}
        sizes = self.message_size
        data["message_size"] = (
            sizes.fixed
            if sizes.fixed is not None
            else sizes.model_dump(mode="json", exclude_none=True)
        )
        data["thresholds"] = [threshold.expression for threshold in self.thresholds]
        return data


def expand_address_range(text: str) -> list[str]:
    """``127.0.0.1-127.0.0.8`` → eight addresses; a single address → itself."""
    first, sep, last = text.partition("-")
    try:
        start = ipaddress.ip_address(first.strip())
        end = ipaddress.ip_address(last.strip()) if sep else start
    except ValueError:
        raise ValueError(f"expected an IP address or a range A-B, got {text!r}") from None
    if start.version != end.version or int(end) < int(start):
        raise ValueError(f"address range {text!r} is empty or mixes IPv4 and IPv6")
    if int(end) - int(start) >= 65536:
        raise ValueError(f"address range {text!r} is larger than 65,536 addresses")
    return [str(ipaddress.ip_address(n)) for n in range(int(start), int(end) + 1)]


def parse_address(text: str) -> tuple[str, int]:
    """``host:port`` or ``[v6addr]:port`` → (host, port)."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"expected HOST:PORT or builtin:NAME, got {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port_text)


def _check_target(scenario: Scenario) -> tuple[str, str] | None:
    """(field, problem) for a target or source that cannot be used, else None."""
    builtin = scenario.builtin_target
    if builtin is not None:
        if len(scenario.targets) > 1:
            return "target", "a built-in target cannot be combined with others in a list"
        if builtin not in BUILTIN_TARGETS:
            return "target", f"unknown built-in target {builtin!r}; built-in targets: " + (
                ", ".join(f"builtin:{name}" for name in BUILTIN_TARGETS)
            )
    else:
        try:
            scenario.target_addresses()
        except ValueError as exc:
            return "target", str(exc)
    try:
        scenario.source_addresses()
    except ValueError as exc:
        return "source", str(exc)
    return None


def check_receive(scenario: Scenario) -> tuple[str, str] | None:
    """(field, problem) for receive settings that do not go together, else None."""
    if scenario.register_buffers and scenario.receive != ReceiveMode.BUFFERED:
        why = (
            "it posts no buffer"
            if scenario.receive == ReceiveMode.ZERO_BYTE
            else "its buffers are the engine's shared ring"
        )
        return "register_buffers", (
            f"registers the per-connection buffers of receive: buffered; receive: "
            f"{scenario.receive} has none to register ({why})"
        )
    return None


# --- YAML with line numbers -------------------------------------------------------------


@dataclass(frozen=True)
class _Located:
    """Where each node of the document starts, by path of keys and indexes."""

    lines: dict[tuple[str | int, ...], int]

    def line_of(self, path: tuple[str | int, ...]) -> int | None:
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get(())


def _index_lines(node: yaml.Node, path: tuple[str | int, ...], out: dict[Any, int]) -> None:
    out[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            _index_lines(value_node, (*path, key), out)
            out[(*path, key)] = key_node.start_mark.line + 1  # a field's line is its key's
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _index_lines(item, (*path, index), out)


def _format_path(path: Sequence[str | int]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _model_in(annotation: Any) -> Any:
    """The pydantic model inside an annotation such as ``Load | None`` or ``list[Phase]``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in get_args(annotation):
        model = _model_in(argument)
        if model is not None:
            return model
    return None


def _known_keys(model: type[BaseModel], path: Sequence[str | int]) -> list[str]:
    """Field names of the model that validates the mapping holding ``path[-1]``."""
    current: Any = model
    for part in path[:-1]:
        if isinstance(part, int):
            continue
        field = current.model_fields.get(part)
        current = _model_in(field.annotation) if field is not None else None
        if current is None:
            return []
    return list(current.model_fields)


def _describe(
    error: Mapping[str, Any], source: str, located: _Located, overridden: set[str]
) -> str:
    path = tuple(error["loc"])
    field = _format_path(path)
    if field in overridden:
        where = f"--set {field}"
    else:
        line = located.line_of(path)
        where = f"{source}:{line}" if line else source
    kind = error["type"]
    if kind == "extra_forbidden":
        message = "unknown key"
        close = difflib.get_close_matches(str(path[-1]), _known_keys(Scenario, path), n=1)
        if close:
            message += f"; did you mean {close[0]!r}?"
        else:
            known = _known_keys(Scenario, path)
            if known:
                message += f"; known keys: {', '.join(known)}"
    elif kind == "missing":
        message = "required field is missing"
    else:
        message = str(error["msg"]).removeprefix("Value error, ")
        if "input" in error and kind != "value_error":
            message += f" (got {error['input']!r})"
    return f"{where}: {field}: {message}" if field else f"{where}: {message}"


def apply_overrides(document: dict[str, Any], overrides: Sequence[str]) -> set[str]:
    """Apply ``key.sub=value`` strings (values parsed as YAML scalars); return the paths set."""
    touched: set[str] = set()
    for item in overrides:
        path, sep, raw = item.partition("=")
        if not sep or not path.strip():
            raise ScenarioError([f"--set {item}: expected KEY=VALUE, e.g. connections=1000"])
        keys = path.strip().split(".")
        target: dict[str, Any] = document
        for key in keys[:-1]:
            child = target.setdefault(key, {})
            if not isinstance(child, dict):
                raise ScenarioError([f"--set {path}: {key} is not a mapping"])
            target = child
        target[keys[-1]] = yaml.safe_load(raw) if raw.strip() else ""
        touched.add(path.strip())
    return touched


def parse_scenario(
    text: str, source: str = "<scenario>", overrides: Sequence[str] = ()
) -> Scenario:
    """Validate scenario YAML; raise ``ScenarioError`` naming file, line and field."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ScenarioError([f"{source}{line}: not valid YAML: {problem}"]) from None
    if node is None or not isinstance(document, dict):
        raise ScenarioError(
            [f"{source}:1: expected a mapping of scenario fields (name, target, ...)"]
        )
    lines: dict[Any, int] = {}
    _index_lines(node, (), lines)
    overridden = apply_overrides(document, overrides)
    try:
        scenario = Scenario.model_validate(document)
    except ValidationError as exc:
        located = _Located(lines)
        raise ScenarioError(
            [_describe(e, source, located, overridden) for e in exc.errors()]
        ) from None
    problem = (
        _check_target(scenario)
        or check_receive(scenario)
        or check_tls(scenario.tls, scenario.builtin_target)
    )
    if problem:
        field, message = problem
        if field in overridden:
            raise ScenarioError([f"--set {field}: {field}: {message}"])
        keys = tuple(field.split("."))
        number = lines.get(keys) or lines.get(keys[:1])  # tls.ca_file: its line, or tls's
        line = f":{number}" if number else ""
        raise ScenarioError([f"{source}{line}: {field}: {message}"])
    return scenario


def load_scenario(path: str | Path, overrides: Sequence[str] = ()) -> Scenario:
    """Read and validate a scenario file."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError([f"{file}: cannot read: {exc.strerror or exc}"]) from None
    return parse_scenario(text, str(file), overrides)
