"""``electricitymaps:ZONE`` — Electricity Maps API v3 (grid-average, lifecycle g/kWh).

Endpoints: ``GET /v3/carbon-intensity/latest?zone=Z`` for the current value
(``carbonIntensity`` at ``datetime``) and ``GET /v3/carbon-intensity/forecast?zone=Z``
(``forecast: [{carbonIntensity, datetime}, ...]``, hourly), both authenticated by an
``auth-token`` header. The token is read from an environment variable (default
``ELECTRICITYMAPS_API_TOKEN``) so it never lands in a scenario file. The forecast endpoint
needs a paid plan; without it reads still work and say the forecast is unavailable. An
answer for a different zone than asked (the API can fall back to the caller's IP location)
is rejected.
"""
from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from clover_rl.carbon.providers.common import (
    MalformedResponse,
    Point,
    check_intensity,
    dig,
    parse_time,
)
from clover_rl.carbon.providers.http import HttpCarbonSource
from clover_rl.errors import ConfigError

DEFAULT_BASE_URL = "https://api.electricitymaps.com"  # older docs: api.electricitymap.org
TOKEN_ENV = "ELECTRICITYMAPS_API_TOKEN"


class ElectricityMapsSource(HttpCarbonSource):
    """Carbon intensity of one Electricity Maps zone (e.g. ``DE``, ``US-CAL-CISO``)."""

    default_base_url = DEFAULT_BASE_URL

    def __init__(self, zone: str, *, token: str | None = None, token_env: str = TOKEN_ENV,
                 name: str | None = None, **http: Any) -> None:
        zone = (zone or "").strip()
        if not zone:
            raise ConfigError("electricitymaps: missing zone (write electricitymaps:ZONE, "
                              "e.g. electricitymaps:DE)")
        self.zone = zone
        name = name or f"electricitymaps:{zone}"
        token = token or os.environ.get(token_env, "").strip()
        if not token:
            raise ConfigError(f"{name}: no API token: set the environment variable {token_env}")
        self._token = token
        self.auth_hint = f" (check the token in {token_env})"
        super().__init__(name, **http)

    def _headers(self) -> dict[str, str]:
        return {"auth-token": self._token}

    def _check_zone(self, body: object) -> None:
        """The API may fall back to the caller's IP location; never report another zone."""
        zone = body.get("zone") if isinstance(body, dict) else None
        if zone is not None and zone != self.zone:
            raise MalformedResponse(f"answered for zone {zone!r}, asked for {self.zone!r}")

    def _fetch_current(self, now: datetime) -> tuple[Point, list[Point] | None]:
        body = self._get_json("/v3/carbon-intensity/latest", {"zone": self.zone})
        self._check_zone(body)
        value = check_intensity(dig(body, "carbonIntensity"), "carbonIntensity")
        return Point(parse_time(dig(body, "datetime"), "datetime"), value), None

    def _fetch_forecast(self, now: datetime) -> list[Point]:
        body = self._get_json("/v3/carbon-intensity/forecast", {"zone": self.zone})
        self._check_zone(body)
        rows = dig(body, "forecast")
        if not isinstance(rows, list):
            raise MalformedResponse("field 'forecast' is not a list")
        return [Point(parse_time(dig(r, "datetime"), f"forecast.{i}.datetime"),
                      check_intensity(dig(r, "carbonIntensity"), f"forecast.{i}.carbonIntensity"))
                for i, r in enumerate(rows)]
