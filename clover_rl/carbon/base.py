"""Core carbon types: a trace (data) and a source (anything that answers "intensity now").

All intensities are grams CO2 per kWh. Timestamps are UTC ``numpy.datetime64[s]``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Protocol, runtime_checkable

from clover_rl.series import RegularSeries


@dataclass(frozen=True)
class CarbonTrace(RegularSeries):
    """A regularly sampled carbon-intensity series (g/kWh, finite, >= 0) with its provenance."""

    name: str = "trace"
    synthetic: bool = False

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
