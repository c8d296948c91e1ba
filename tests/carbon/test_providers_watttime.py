"""WattTime v3 source: login, bearer token refresh, lbs/MWh conversion, forecast."""
from __future__ import annotations

from datetime import timedelta

import pytest

from clover_rl.carbon.providers import (
    LBS_PER_MWH_TO_G_PER_KWH,
    CarbonSourceError,
    WattTimeSource,
)
from clover_rl.errors import ConfigError
from tests.support.apis import T0, Fault, Ticker, WattTimeFake

K = LBS_PER_MWH_TO_G_PER_KWH


@pytest.fixture
def api():
    with WattTimeFake() as fake:
        yield fake


@pytest.fixture
def creds(monkeypatch, api):
    monkeypatch.setenv("WATTTIME_USERNAME", api.username)
    monkeypatch.setenv("WATTTIME_PASSWORD", api.password)


def make(api, ticker=None, **kw) -> WattTimeSource:
    t = ticker or Ticker()
    return WattTimeSource("CAISO_NORTH", base_url=api.url, sleep=t.sleep, monotonic=t, **kw)


def test_login_then_forecast_in_g_per_kwh(api, creds):
    r = make(api).read(now=T0, horizon_h=2)
    assert K == 0.453592
    assert r.value == pytest.approx(1000 * K) and r.time == T0 and not r.stale
    # 5-minute points: one hour ahead is step 12
    assert r.forecast == pytest.approx((1012 * K, 1024 * K))
    login, data = api.requests
    assert login.path == "/login" and login.headers["authorization"].startswith("Basic ")
    assert data.path == "/v3/forecast"
    assert data.query == {"region": "CAISO_NORTH", "signal_type": "co2_moer"}
    assert data.headers["authorization"] == "Bearer jwt-1"


def test_token_reused_until_it_expires(api, creds):
    t = Ticker()
    src = make(api, t, cache_ttl_s=60, token_ttl_s=1500)
    for _ in range(3):
        src.read(now=T0)
        t.advance(61)
    assert src.logins == 1 and api.hits("/v3/forecast") == 3
    t.advance(1500)
    src.read(now=T0)
    assert src.logins == 2


def test_401_refreshes_token_once(api, creds):
    t = Ticker()
    src = make(api, t, cache_ttl_s=0)
    src.read(now=T0)
    api.expire_tokens()  # server-side expiry before our 25-minute renewal
    r = src.read(now=T0)
    assert not r.stale and r.value == pytest.approx(1000 * K)
    assert src.logins == 2 and api.requests[-1].headers["authorization"] == "Bearer jwt-2"


def test_bad_credentials(api, monkeypatch):
    monkeypatch.setenv("WATTTIME_USERNAME", api.username)
    monkeypatch.setenv("WATTTIME_PASSWORD", "nope")
    with pytest.raises(CarbonSourceError, match="login rejected.*WATTTIME_PASSWORD"):
        make(api).read(now=T0)
    assert api.hits("/login") == 1


def test_missing_credentials_name_the_variables(api, monkeypatch):
    for var in ("WATTTIME_USERNAME", "WATTTIME_PASSWORD", "WATTTIME_USER"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(ConfigError, match="WATTTIME_USERNAME and WATTTIME_PASSWORD"):
        make(api)
    monkeypatch.setenv("WATTTIME_USER", api.username)  # the official SDK's name
    with pytest.raises(ConfigError, match="variable WATTTIME_PASSWORD$"):
        make(api)


def test_percentile_units_are_rejected(api, creds):
    api.units = "percentile"
    with pytest.raises(CarbonSourceError, match="'percentile' is not an emission rate"):
        make(api).read(now=T0)


def test_stale_uses_cached_5_minute_forecast(api, creds):
    t = Ticker()
    src = make(api, t, cache_ttl_s=60)
    src.read(now=T0)
    api.down = Fault.status(500, path="/v3/forecast")
    t.advance(61)
    r = src.read(now=T0 + timedelta(minutes=62), horizon_h=1)
    assert r.stale and r.value == pytest.approx(1012 * K)
    assert r.forecast == pytest.approx((1024 * K,))
    assert "HTTP 500" in r.message and "cached forecast for 2026-11-29T11:00Z" in r.message


def test_garbage_data(api, creds):
    api.down = Fault.json({"data": [], "meta": {"units": "lbs_co2_per_mwh"}}, path="/v3/")
    with pytest.raises(CarbonSourceError, match="'data' is empty"):
        make(api).read(now=T0)
