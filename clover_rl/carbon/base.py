"""Core carbon types: a trace (data) and a source (anything that answers "intensity now").

All intensities are grams CO2 per kWh. Timestamps are UTC ``numpy.datetime64[s]``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class CarbonTrace:
    """A regularly sampled carbon-intensity series with its provenance."""

    times: np.ndarray  # datetime64[s], strictly increasing, regular
    values: np.ndarray  # float64 g/kWh, finite, >= 0
    name: str = "trace"
    provenance: str = ""  # where the numbers come from (file, licence, attribution)
    synthetic: bool = False

    def __post_init__(self) -> None:
        if len(self.times) != len(self.values):
            raise ValueError("times and values differ in length")

    def __len__(self) -> int:
        return len(self.values)

    @property
    def resolution_s(self) -> float:
        if len(self.times) < 2:
            return 3600.0
        return float((self.times[1] - self.times[0]) / np.timedelta64(1, "s"))

    def window(self, start: int, length: int) -> CarbonTrace:
        return CarbonTrace(self.times[start:start + length], self.values[start:start + length],
                           self.name, self.provenance, self.synthetic)


@dataclass(frozen=True)
class CarbonReading:
    value: float  # g/kWh
    time: datetime  # when the value applies (UTC)
    source: str
    stale: bool = False  # True when the source failed and this is the last good value/forecast
    forecast: tuple[float, ...] = field(default_factory=tuple)  # next hours, g/kWh
    message: str = ""


@runtime_checkable
class CarbonSource(Protocol):
    """Answers "what is the intensity now (and next)"; replayed traces and live APIs alike."""

    name: str

    def read(self, now: datetime | None = None, horizon_h: int = 0) -> CarbonReading:
        """Current intensity and up to ``horizon_h`` hourly forecast values; never raises for
        a transient outage once one good value was seen (returns it marked ``stale``)."""


def utcnow() -> datetime:
    return datetime.now(timezone.utc)
