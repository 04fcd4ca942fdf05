"""The ``load`` section of a scenario: the model (open or closed), the connections, the
phases with their rates, connection ramps, idle stretches and think times; and the
timeouts. Validated here; compiled into a ``LoadPlan`` by ``loadgen.config.plan``."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, Field, model_validator

from loadgen.config.fields import SCHEMA_CONFIG, Count, DurationS
from loadgen.config.schedule import offerable_rates
from loadgen.config.units import parse_count, parse_range, parse_rate_per_s


class _Model(BaseModel):
    model_config = SCHEMA_CONFIG


class Timeouts(_Model):
    connect: DurationS = Field(default=5.0, gt=0)
    request: DurationS = Field(default=5.0, gt=0)


RateRange = Annotated[
    tuple[float, float],
    BeforeValidator(lambda v: parse_range(v, parse_rate_per_s)),
    AfterValidator(offerable_rates),
]
CountRange = Annotated[tuple[int, int], BeforeValidator(lambda v: parse_range(v, parse_count))]


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
