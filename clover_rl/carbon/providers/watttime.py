"""``watttime:REGION`` — WattTime API v3, marginal emissions (``co2_moer``) in g/kWh.

Authentication: ``GET /login`` with HTTP basic auth (``WATTTIME_USERNAME`` /
``WATTTIME_PASSWORD``; the official SDK's ``WATTTIME_USER`` is accepted too) returns a JWT
valid for 30 minutes, sent as ``Authorization: Bearer``. The token is renewed after
``token_ttl_s`` (25 min) and whenever a request answers 401.

Which endpoint gives "now": ``/v3/signal-index`` answers a 0-100 *percentile*, not an
intensity, so it cannot feed the carbon accounting. ``/v3/historical`` lags and needs a
time window. We use ``GET /v3/forecast?region=R&signal_type=co2_moer``: its first point is
the current 5-minute interval, and the same answer carries the next 24 h, so one request
gives both the value and the forecast. Units come from ``meta.units``; ``lbs_co2_per_mwh``
is converted with 1 lb/MWh = 0.453592 g/kWh; any other unit (e.g. ``percentile``) is
rejected as unusable.

Note that MOER is the *marginal* rate (what one more kWh emits), typically higher than the
grid-average intensity of Electricity Maps or the GB API.
"""
from __future__ import annotations

import os
from datetime import datetime
from typing import Any

import httpx

from clover_rl.carbon.providers.common import (
    CarbonSourceError,
    MalformedResponse,
    Point,
    check_intensity,
    dig,
    parse_time,
)
from clover_rl.carbon.providers.http import HttpCarbonSource, Unauthorized, _positive
from clover_rl.errors import ConfigError

DEFAULT_BASE_URL = "https://api.watttime.org"
USERNAME_ENV = "WATTTIME_USERNAME"
PASSWORD_ENV = "WATTTIME_PASSWORD"
LBS_PER_MWH_TO_G_PER_KWH = 0.453592
#: meta.units -> factor to g/kWh
UNIT_FACTORS = {
    "lbs_co2_per_mwh": LBS_PER_MWH_TO_G_PER_KWH,
    "kg_co2_per_mwh": 1.0,
    "g_co2_per_kwh": 1.0,
}


class WattTimeSource(HttpCarbonSource):
    """Marginal CO2 rate of one WattTime region (e.g. ``CAISO_NORTH``)."""

    default_base_url = DEFAULT_BASE_URL

    def __init__(self, region: str, *, username: str | None = None,
                 password: str | None = None, username_env: str = USERNAME_ENV,
                 password_env: str = PASSWORD_ENV, signal_type: str = "co2_moer",
                 token_ttl_s: float = 25 * 60, name: str | None = None, **http: Any) -> None:
        region = (region or "").strip()
        if not region:
            raise ConfigError("watttime: missing region (write watttime:REGION, "
                              "e.g. watttime:CAISO_NORTH)")
        self.region = region
        self.signal_type = signal_type
        name = name or f"watttime:{region}"
        user = username or os.environ.get(username_env, "").strip()
        if not user and username_env == USERNAME_ENV:
            user = os.environ.get("WATTTIME_USER", "").strip()
        pwd = password or os.environ.get(password_env, "").strip()
        missing = [env for env, v in ((username_env, user), (password_env, pwd)) if not v]
        if missing:
            raise ConfigError(f"{name}: no credentials: set the environment variable"
                              f"{'s' if len(missing) > 1 else ''} {' and '.join(missing)}")
        self._auth = (user, pwd)
        self.auth_hint = f" (check {username_env} / {password_env})"
        super().__init__(name, **http)
        self.token_ttl_s = _positive(name, "token_ttl_s", token_ttl_s)
        self._token: str | None = None
        self._token_at: float | None = None
        self.logins = 0  # how many times we logged in (observability, tests)

    # -- auth ----------------------------------------------------------------------------
    def _login(self) -> str:
        try:
            body = self._get_json("/login", auth=httpx.BasicAuth(*self._auth))
        except Unauthorized as e:
            raise CarbonSourceError(str(e).replace(": HTTP 401", ": login rejected: HTTP 401", 1)) from None
        token = dig(body, "token")
        if not isinstance(token, str) or not token:
            raise MalformedResponse("login answered no token")
        self.logins += 1
        self._token, self._token_at = token, self._monotonic()
        return token

    def _authed_json(self, path: str, params: dict[str, str]) -> Any:
        """GET with the bearer token; log in first if needed, and once more on 401."""
        expired = (self._token_at is None
                   or self._monotonic() - self._token_at >= self.token_ttl_s)
        token = self._login() if self._token is None or expired else self._token
        try:
            return self._get_json(path, params, {"Authorization": f"Bearer {token}"})
        except Unauthorized:
            token = self._login()
            return self._get_json(path, params, {"Authorization": f"Bearer {token}"})

    # -- data ----------------------------------------------------------------------------
    def _forecast_points(self) -> list[Point]:
        body = self._authed_json("/v3/forecast",
                                 {"region": self.region, "signal_type": self.signal_type})
        units = dig(body, "meta", "units")
        factor = UNIT_FACTORS.get(str(units).lower())
        if factor is None:
            raise MalformedResponse(f"meta.units {units!r} is not an emission rate "
                                    f"(expected one of {', '.join(UNIT_FACTORS)})")
        rows = dig(body, "data")
        if not isinstance(rows, list) or not rows:
            raise MalformedResponse("field 'data' is empty or not a list")
        return [Point(parse_time(dig(r, "point_time"), f"data.{i}.point_time"),
                      check_intensity(dig(r, "value"), f"data.{i}.value", factor))
                for i, r in enumerate(rows)]

    def _fetch_current(self, now: datetime) -> tuple[Point, list[Point] | None]:
        points = self._forecast_points()
        first = min(points, key=lambda p: p.time)
        return first, points

    def _fetch_forecast(self, now: datetime) -> list[Point]:
        return self._forecast_points()
