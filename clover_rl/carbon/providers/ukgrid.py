"""``ukgrid[:REGIONID]`` — the GB Carbon Intensity API (National Grid ESO), no key needed.

National: ``GET /intensity`` answers the current half hour,
``{"data": [{"from", "to", "intensity": {"forecast", "actual", "index"}}]}``; we use
``actual`` when published, else ``forecast``. ``GET /intensity/{from}/fw24h`` gives the next
24 h of half hours (``from`` like ``2026-11-29T10:00Z``).

Regional (``ukgrid:13`` = London; ids 1-17): ``GET /regional/regionid/{id}`` answers
``{"data": [{"regionid", "shortname", "data": [{"from", "to", "intensity": {...}}]}]}`` and
``GET /regional/intensity/{from}/fw24h/regionid/{id}`` the forecast, whose ``data`` is one
region object (a list of one is accepted too). Regional figures are forecasts only.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from clover_rl.carbon.providers.common import (
    MalformedResponse,
    Point,
    as_utc,
    check_intensity,
    dig,
    iso_z,
    parse_time,
)
from clover_rl.carbon.providers.http import HttpCarbonSource
from clover_rl.errors import ConfigError

DEFAULT_BASE_URL = "https://api.carbonintensity.org.uk"
REGION_IDS = range(1, 18)


def _period(row: object, where: str) -> Point:
    intensity = dig(row, "intensity")
    actual = intensity.get("actual") if isinstance(intensity, dict) else None
    field, raw = ("actual", actual) if actual is not None else \
        ("forecast", dig(intensity, "forecast"))
    return Point(parse_time(dig(row, "from"), f"{where}.from"),
                 check_intensity(raw, f"{where}.intensity.{field}"))


def _periods(rows: object, where: str) -> list[Point]:
    if not isinstance(rows, list) or not rows:
        raise MalformedResponse(f"field '{where}' is empty or not a list")
    return [_period(r, f"{where}.{i}") for i, r in enumerate(rows)]


class UkGridSource(HttpCarbonSource):
    """Great Britain's grid intensity, national or for one DNO region."""

    default_base_url = DEFAULT_BASE_URL

    def __init__(self, region: int | str | None = None, *, name: str | None = None,
                 **http: Any) -> None:
        self.region_id: int | None = None
        if region not in (None, ""):
            try:
                rid = int(str(region).strip())
            except ValueError:
                rid = -1
            if rid not in REGION_IDS:
                raise ConfigError(f"ukgrid: region must be a region id 1-17 (e.g. ukgrid:13 for "
                                  f"London), got {region!r}")
            self.region_id = rid
        name = name or ("ukgrid" if self.region_id is None else f"ukgrid:{self.region_id}")
        super().__init__(name, **http)

    def _fetch_current(self, now: datetime) -> tuple[Point, list[Point] | None]:
        if self.region_id is None:
            body = self._get_json("/intensity")
            return _periods(dig(body, "data"), "data")[0], None
        body = self._get_json(f"/regional/regionid/{self.region_id}")
        return _periods(dig(body, "data", 0, "data"), "data.0.data")[0], None

    def _fetch_forecast(self, now: datetime) -> list[Point]:
        start = as_utc(now).replace(second=0, microsecond=0)
        start -= timedelta(minutes=start.minute % 30)  # the half hour containing now
        if self.region_id is None:
            body = self._get_json(f"/intensity/{iso_z(start)}/fw24h")
            return _periods(dig(body, "data"), "data")
        body = self._get_json(f"/regional/intensity/{iso_z(start)}/fw24h/regionid/"
                              f"{self.region_id}")
        region = dig(body, "data")
        if isinstance(region, list):
            region = dig(region, 0)
        return _periods(dig(region, "data"), "data.data")
