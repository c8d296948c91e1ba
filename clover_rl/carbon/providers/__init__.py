"""Live and replayed carbon-intensity sources implementing
:class:`~clover_rl.carbon.base.CarbonSource`.

Build one from a spec string with :func:`parse_source` (``electricitymaps:DE``,
``watttime:CAISO_NORTH``, ``ukgrid[:13]``, ``file:PATH[,speed=N]``, ``trace``). API sources
share :class:`HttpCarbonSource`: retries with back-off, a TTL cache, and a stale fallback so
a running controller never crashes on an API outage.
"""
from __future__ import annotations

from clover_rl.carbon.providers.common import CarbonSourceError, Point
from clover_rl.carbon.providers.electricitymaps import ElectricityMapsSource
from clover_rl.carbon.providers.file import FileSource, TraceSource
from clover_rl.carbon.providers.http import HttpCarbonSource
from clover_rl.carbon.providers.registry import kinds, parse_source, register_kind
from clover_rl.carbon.providers.ukgrid import UkGridSource
from clover_rl.carbon.providers.watttime import LBS_PER_MWH_TO_G_PER_KWH, WattTimeSource

__all__ = [
    "LBS_PER_MWH_TO_G_PER_KWH",
    "CarbonSourceError",
    "ElectricityMapsSource",
    "FileSource",
    "HttpCarbonSource",
    "Point",
    "TraceSource",
    "UkGridSource",
    "WattTimeSource",
    "kinds",
    "parse_source",
    "register_kind",
]
