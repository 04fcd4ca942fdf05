"""Field types shared by the scenario schema's models.

Every model is frozen and refuses unknown keys (``SCHEMA_CONFIG``). Durations, sizes and
counts are written with units (``30s``, ``64KiB``, ``10k``); a duration written in a file or
``--set`` must carry its unit, while one given by the program (a default, ``--duration``)
may be a bare number of seconds.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator, ConfigDict, ValidationInfo

from loadgen.config.problems import WRITTEN
from loadgen.config.units import parse_count, parse_duration_s, parse_size_bytes

#: Every schema model's configuration: frozen, unknown keys refused. (Each module declares
#: its own ``_Model(BaseModel)`` with it, so linters see the pydantic base.)
SCHEMA_CONFIG = ConfigDict(extra="forbid", frozen=True)


def _duration_s(value: object, info: ValidationInfo) -> float:
    written = bool(info.context and info.context.get(WRITTEN))
    return parse_duration_s(value, unit_required=written)


DurationS = Annotated[float, BeforeValidator(_duration_s)]
SizeBytes = Annotated[int, BeforeValidator(parse_size_bytes)]
Count = Annotated[int, BeforeValidator(parse_count)]
