"""Electricity Maps v3 source against a loopback fake of its documented JSON."""
from __future__ import annotations

import pytest

from clover_rl.carbon.providers import CarbonSourceError, ElectricityMapsSource
from clover_rl.errors import ConfigError
from tests.support.apis import T0, ElectricityMapsFake, Fault, Ticker

FORECAST = "/v3/carbon-intensity/forecast"


@pytest.fixture
def api():
    with ElectricityMapsFake() as fake:
        yield fake


def make(api, **kw) -> ElectricityMapsSource:
    t = Ticker()
    return ElectricityMapsSource("DE", base_url=api.url, sleep=t.sleep, monotonic=t, **kw)


def test_token_from_env_and_request_shape(api, monkeypatch):
    monkeypatch.setenv("ELECTRICITYMAPS_API_TOKEN", api.token)
    r = make(api).read(now=T0)
    assert r.value == 300.0 and r.time == T0 and r.forecast == ()
    req = api.requests[-1]
    assert req.path == "/v3/carbon-intensity/latest"
    assert req.query == {"zone": "DE"} and req.headers["auth-token"] == api.token
    assert api.hits(FORECAST) == 0  # horizon 0 costs one request


def test_forecast_parsing(api):
    src = make(api, token=api.token)
    r = src.read(now=T0, horizon_h=4)
    assert r.forecast == (310.0, 320.0, 330.0, 340.0) and not r.stale and r.message == ""
    # hourly values line up with now, whatever the minute
    from datetime import timedelta

    assert src.read(now=T0 + timedelta(minutes=45), horizon_h=2).forecast == (310.0, 320.0)


def test_forecast_shorter_than_asked_says_so(api):
    api.forecast = [310.0, 320.0]
    r = make(api, token=api.token).read(now=T0, horizon_h=5)
    assert r.forecast == (310.0, 320.0) and not r.stale
    assert r.message == "forecast covers 2 of 5 h"


def test_forecast_endpoint_unavailable_keeps_value_fresh(api):
    api.down = Fault.status(403, path=FORECAST)  # free plans have no forecast
    r = make(api, token=api.token).read(now=T0, horizon_h=3)
    assert r.value == 300.0 and not r.stale and r.forecast == ()
    assert "forecast unavailable" in r.message and "HTTP 403" in r.message


def test_missing_token_env_is_a_clear_config_error(monkeypatch, api):
    monkeypatch.delenv("ELECTRICITYMAPS_API_TOKEN", raising=False)
    with pytest.raises(ConfigError, match="set the environment variable "
                                          "ELECTRICITYMAPS_API_TOKEN"):
        make(api)


def test_token_env_name_is_configurable(monkeypatch, api):
    monkeypatch.setenv("MY_EM_KEY", api.token)
    assert make(api, token_env="MY_EM_KEY").read(now=T0).value == 300.0
    monkeypatch.delenv("MY_EM_KEY")
    with pytest.raises(ConfigError, match="MY_EM_KEY"):
        make(api, token_env="MY_EM_KEY")


def test_wrong_token_names_the_variable(api):
    with pytest.raises(CarbonSourceError, match="HTTP 401.*ELECTRICITYMAPS_API_TOKEN"):
        make(api, token="wrong").read(now=T0)
    assert len(api.requests) == 1  # not retried


def test_missing_zone():
    with pytest.raises(ConfigError, match="missing zone"):
        ElectricityMapsSource("", token="x")


def test_answer_for_another_zone_is_rejected(api):
    api.down = Fault.json({"zone": "FR", "carbonIntensity": 50, "datetime": "2026-11-29T10:00Z"})
    with pytest.raises(CarbonSourceError, match="answered for zone 'FR', asked for 'DE'"):
        make(api, token=api.token).read(now=T0)
