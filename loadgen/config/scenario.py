"""Scenario files: YAML in, a validated and frozen ``Scenario`` out. No network here.

Every error names the file, the line and the dotted field, says what was expected, and for
an unknown key suggests the closest known one::

    quickstart.yaml:5: conections: unknown key; did you mean 'connections'?

``--set path.to.key=value`` overrides are applied to the raw document before validation, so
they are checked exactly like the file (their errors name ``--set`` instead of a line).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, Field, ValidationError, model_validator

from loadgen.config.document import load_document
from loadgen.config.fields import SCHEMA_CONFIG, Count, DurationS, SizeBytes
from loadgen.config.files import anchor_paths, check_files
from loadgen.config.http import HttpSpec as HttpSpec  # re-exported: its home moved
from loadgen.config.messages import choice_problem
from loadgen.config.phases import Load, Phase, Timeouts
from loadgen.config.problems import (
    WRITTEN,
    Located,
    apply_overrides,
    describe_errors,
    format_path,
)
from loadgen.config.problems import (
    ScenarioError as ScenarioError,  # raised here too: importers take it from here
)
from loadgen.config.protocol_specs import (
    PROTOCOLS,
    EchoSpec,
    ProtocolSpec,
    RedisSpec,
    SizeDistribution,
    StreamSpec,
    protocol_shorthand,
    size_shorthand,
)
from loadgen.config.receive import DEFAULT_RING_BUFFERS, ReceiveMode, RingBuffers
from loadgen.config.targets import (
    TargetUrl,
    check_url_targets,
    expand_address_range,
    is_url,
    parse_target,
    parse_url,
)
from loadgen.config.targets import parse_address as parse_address  # re-exported
from loadgen.config.thresholds import Threshold
from loadgen.config.tls import TlsSpec, check_tls

ThresholdSpec = Annotated[Threshold, BeforeValidator(Threshold.parse)]
BUILTIN_TARGETS = ("echo", "http", "stream")


class _Model(BaseModel):
    model_config = SCHEMA_CONFIG


class Scenario(_Model):
    """A validated scenario. Durations are seconds, sizes bytes, rates per second.

    The quickstart shorthand (top-level ``connections`` and ``duration``) is a closed-model
    run with one phase; ``load`` is always filled in after validation.
    """

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100)
    description: str = ""
    target: str | list[str]
    protocol: Annotated[ProtocolSpec, BeforeValidator(protocol_shorthand)] = ProtocolSpec(
        echo=EchoSpec()
    )
    connections: Count | None = Field(default=None, ge=1, le=1_000_000)
    duration: DurationS | None = Field(default=None, gt=0)
    load: Load | None = None
    message_size: Annotated[SizeDistribution, BeforeValidator(size_shorthand)] = SizeDistribution(
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
    #: TLS on every connection (``loadgen.config.tls``; ``https://`` targets turn it on).
    tls: TlsSpec = TlsSpec()
    #: A run in which no request succeeds is a failure (exit 1) unless this is set: for
    #: studies of refusals, or of a target that answers only errors.
    expect_failures: bool = False

    @model_validator(mode="before")
    @classmethod
    def _url_defaults(cls, document: Any) -> Any:
        """A URL target means HTTP (unless a protocol is given: checked later, with its
        line), its path is the default request path, and ``https`` turns TLS on."""
        if not isinstance(document, dict):
            return document
        targets = document.get("target")
        first = targets[0] if isinstance(targets, list) and targets else targets
        if not isinstance(first, str) or not is_url(first):
            return document
        try:
            url = parse_url(first)
        except ValueError:
            return document  # reported by the target check
        document = dict(document)
        protocol = document.get("protocol", "http")
        if protocol == "http":
            protocol = {"http": {}}
        if isinstance(protocol, dict) and isinstance(protocol.get("http", {}), dict):
            http = dict(protocol.get("http") or {})
            http.setdefault("path", url.path)
            protocol = {**protocol, "http": http}
        document["protocol"] = protocol
        tls = document.get("tls", {})
        if url.tls and isinstance(tls, dict) and "enabled" not in tls:
            document["tls"] = {**tls, "enabled": True}
        return document

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
    def load_section(self) -> Load:
        """The ``load`` section (resolved from the shorthand when that was used); what a run
        derives from it is ``loadgen.config.plan.LoadPlan``."""
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
        """(host, port) of each network target (not for builtin ones); a host may be a name
        (``loadgen.run.resolve`` resolves it at the start of a run)."""
        return [parse_target(target) for target in self.targets]

    @property
    def target_url(self) -> TargetUrl | None:
        """The (first) target as a URL, or None for HOST:PORT and built-in targets."""
        first = self.targets[0]
        return parse_url(first) if is_url(first) else None

    def target_authorities(self) -> list[str]:
        """What each target's HTTP ``Host`` header says: a URL's host (and port unless it
        is the scheme's default), else ``host:port``."""
        authorities = []
        for target in self.targets:
            if is_url(target):
                authorities.append(parse_url(target).authority)
            else:
                host, port = parse_address(target)
                authorities.append(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
        return authorities

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
        plan = self.load_section
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
        if self.protocol.http is not None:
            data["protocol"]["http"] = _http_dict(self.protocol.http)
        return data


def _http_dict(http: HttpSpec) -> dict[str, Any]:
    """The http settings as a result records them: the keys that say something (no
    request-set keys for one request, no unset optional fields)."""
    data = http.model_dump(mode="json", exclude_none=True)
    if not http.is_set:
        data.pop("order", None)
    if not http.variables:
        data.pop("variables", None)
    for variable in data.get("variables", {}).values():
        if not variable.get("uuid"):
            variable.pop("uuid", None)
    return data


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
        tls = scenario.tls.enabled
        problem = check_url_targets(scenario.targets, scenario.protocol_name, tls)
        if problem:
            return problem
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


def _reword_shorthands(
    path: tuple[str | int, ...], message: str, error: Mapping[str, Any], document: Mapping[str, Any]
) -> tuple[tuple[str | int, ...], str]:
    """``message_size: 64B`` and ``protocol: http`` have no ``fixed`` or ``http`` key in the
    file: an error there is about the field as written."""
    if path[:2] == ("message_size", "fixed") and not isinstance(document.get("message_size"), dict):
        return ("message_size", *path[2:]), message
    if (
        len(path) == 2
        and path[0] == "protocol"
        and isinstance(document.get("protocol"), str)
        and error["type"] == "extra_forbidden"
    ):
        return ("protocol",), choice_problem(path[1], PROTOCOLS)
    if error["type"] == "string_pattern_mismatch" and path == ("name",):
        return path, (
            f"{error.get('input')!r}: use letters, digits, '_', '.' and '-', starting with a "
            "letter or digit"
        )
    return path, message


def parse_scenario(
    text: str,
    source: str = "<scenario>",
    overrides: Sequence[str] = (),
    base_dir: Path | None = None,
) -> Scenario:
    """Validate scenario YAML; raise ``ScenarioError`` naming file, line and field (or the
    ``--set`` that wrote it), every problem in the file's line order. Relative file paths in
    it are relative to ``base_dir`` (default: the current directory)."""
    document, located = load_document(text, source)
    return validate_document(document, source, overrides, base_dir, located)


def validate_document(
    document: dict[str, Any],
    source: str,
    overrides: Sequence[str] = (),
    base_dir: Path | None = None,
    located: Located | None = None,
) -> Scenario:
    """Validate a scenario document (``parse_scenario`` without the YAML): errors name
    ``source`` and, where ``located`` knows it, the line of the field."""
    located = located or Located({})
    overridden = apply_overrides(Scenario, document, overrides)
    anchor_paths(document, base_dir or Path.cwd())
    try:
        scenario = Scenario.model_validate(document, context={WRITTEN: True})
    except ValidationError as exc:
        raise ScenarioError(
            describe_errors(
                Scenario,
                exc.errors(),
                source=source,
                located=located,
                overridden=overridden,
                document=document,
                reword=_reword_shorthands,
            )
        ) from None
    problem = _check_target(scenario) or check_receive(scenario)
    if problem:
        field, message = problem
        if field in overridden:
            raise ScenarioError([f"--set {field}: {field}: {message}"])
        line = f":{located.lines[(field,)]}" if (field,) in located.lines else ""
        raise ScenarioError([f"{source}{line}: {field}: {message}"])
    files = check_files(scenario.protocol.http, scenario.tls)
    if files:
        path, message = files
        field = format_path(path)
        number = located.line_of(path)
        setting = next(
            (o for o in overridden if field == o or field.startswith((o + ".", o + "["))), None
        )
        where = f"{source}:{number}" if number else source
        where = f"--set {setting}" if setting is not None else where
        raise ScenarioError([f"{where}: {field}: {message}"])
    tls = check_tls(scenario.tls, scenario.builtin_target)  # the files load, once read
    if tls:
        field, message = tls
        number = located.line_of(tuple(field.split(".")))
        setting = next((o for o in overridden if field == o or field.startswith(o + ".")), None)
        where = f"{source}:{number}" if number else source
        where = f"--set {setting}" if setting is not None else where
        raise ScenarioError([f"{where}: {field}: {message}"])
    return scenario


def load_scenario(path: str | Path, overrides: Sequence[str] = ()) -> Scenario:
    """Read and validate a scenario file."""
    file = Path(path)
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise ScenarioError([f"{file}: cannot read: {exc.strerror or exc}"]) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ScenarioError(
            [f"{file}:{line}: not UTF-8 text (byte 0x{data[exc.start]:02x}); save it as UTF-8"]
        ) from None
    return parse_scenario(text, str(file), overrides, base_dir=file.resolve().parent)
