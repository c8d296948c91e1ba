"""GB Carbon Intensity API source, national and regional, against a loopback fake."""
from __future__ import annotations

from datetime import timedelta

import pytest

from clover_rl.carbon.providers import CarbonSourceError, UkGridSource
from clover_rl.errors import ConfigError
from tests.support.apis import T0, Fault, Ticker, UkGridFake


@pytest.fixture
def api():
    with UkGridFake() as fake:
        yield fake


def make(api, region=None, **kw) -> UkGridSource:
    t = Ticker()
    return UkGridSource(region, base_url=api.url, sleep=t.sleep, monotonic=t, **kw)


def test_actual_preferred_over_forecast(api):
    r = make(api).read(now=T0)
    assert (r.value, r.time, r.source) == (250.0, T0, "ukgrid")
    api.actual = None
    assert make(api).read(now=T0).value == 260.0


def test_national_forecast_from_the_current_half_hour(api):
    r = make(api).read(now=T0 + timedelta(minutes=47), horizon_h=3)
    assert api.requests[-1].path == "/intensity/2026-11-29T10:30Z/fw24h"
    # half-hours from 10:30 are 260, 262, ...; 11:47 is in the 11:30 slot (index 2)
    assert r.forecast == (264.0, 268.0, 272.0)


def test_regional(api):
    src = make(api, 13)
    r = src.read(now=T0, horizon_h=1)
    assert src.name == "ukgrid:13" and r.value == 120.0 and r.forecast == (124.0,)
    assert [q.path for q in api.requests] == [
        "/regional/regionid/13", "/regional/intensity/2026-11-29T10:00Z/fw24h/regionid/13"]


@pytest.mark.parametrize("region", [0, 18, "london", "1.5"])
def test_bad_region(region):
    with pytest.raises(ConfigError, match="region id 1-17"):
        UkGridSource(region)


def test_missing_intensity_block(api):
    api.down = Fault.json({"data": [{"from": "2026-11-29T10:00Z", "to": "2026-11-29T10:30Z"}]})
    with pytest.raises(CarbonSourceError, match="missing field 'intensity'"):
        make(api).read(now=T0)


def test_default_base_url():
    assert UkGridSource().base_url == "https://api.carbonintensity.org.uk"
