"""The ``protocol`` section of a scenario (exactly one of echo, http, redis, stream, each
with its options) and the echo ``message_size`` distribution. HTTP's options live in
``loadgen.config.http``."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, Field, model_validator

from loadgen.config.fields import SCHEMA_CONFIG, SizeBytes
from loadgen.config.http import HttpSpec
from loadgen.config.units import parse_byte_rate_per_s, parse_size_bytes
from loadgen.protocols.resp import DEFAULT_MAX_REPLY_BYTES
from loadgen.protocols.stream import MAX_SEGMENT_BYTES, MAX_STREAM_BYTES

#: Each echo message starts with a header (sequence number, connection id, size).
ECHO_HEADER_BYTES = 16

_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
MessageBytes = Annotated[
    int, BeforeValidator(parse_size_bytes), Field(ge=ECHO_HEADER_BYTES, le=_MAX_MESSAGE_BYTES)
]


class _Model(BaseModel):
    model_config = SCHEMA_CONFIG


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


def size_shorthand(value: object) -> object:
    """``message_size: 64B`` means ``{fixed: 64B}``."""
    return value if isinstance(value, dict) else {"fixed": value}


class EchoSpec(_Model):
    """Echo with verification (the message size is the top-level ``message_size``)."""


class RedisSpec(_Model):
    command: list[str] = ["PING"]
    pipeline: int = Field(default=1, ge=1, le=1024)
    #: Largest reply (its data bytes, e.g. ``1GiB``); past it the connection fails with
    #: ``reply_too_large``. Replies are counted, never stored, so this bounds time, not memory.
    max_reply: SizeBytes = Field(default=DEFAULT_MAX_REPLY_BYTES, ge=1)


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


PROTOCOLS = ("echo", "http", "redis", "stream")


class ProtocolSpec(_Model):
    """``protocol: {http: {...}}``: exactly one of the keys."""

    echo: EchoSpec | None = None
    http: HttpSpec | None = None
    redis: RedisSpec | None = None
    stream: StreamSpec | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> ProtocolSpec:
        chosen = [name for name in PROTOCOLS if getattr(self, name) is not None]
        if len(chosen) != 1:
            raise ValueError(f"choose exactly one protocol of {', '.join(PROTOCOLS)}; got {chosen}")
        return self

    @property
    def name(self) -> str:
        return next(n for n in PROTOCOLS if getattr(self, n) is not None)


def protocol_shorthand(value: object) -> object:
    """``protocol: http`` means ``protocol: {http: {}}`` (every option at its default)."""
    return {value: {}} if isinstance(value, str) else value
