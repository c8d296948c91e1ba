"""Shared robustness of the API sources (retries, cache, stale fallback), on loopback fakes."""
from __future__ import annotations

import socket
from datetime import timedelta

import pytest

from clover_rl.carbon.base import CarbonSource
from clover_rl.carbon.providers import CarbonSourceError, ElectricityMapsSource
from clover_rl.errors import BackendError, ConfigError
from tests.support.apis import T0, ElectricityMapsFake, Fault, Ticker, iso

LATEST = "/v3/carbon-intensity/latest"
FORECAST = "/v3/carbon-intensity/forecast"


@pytest.fixture
def api():
    with ElectricityMapsFake() as fake:
        yield fake


@pytest.fixture
def ticker() -> Ticker:
    return Ticker()


def make(api: ElectricityMapsFake, ticker: Ticker, **kw) -> ElectricityMapsSource:
    opts = {"base_url": api.url, "token": api.token, "timeout_s": 2.0, "retries": 2,
            "backoff_s": 0.5, "cache_ttl_s": 300, "failure_ttl_s": 60, "sleep": ticker.sleep,
            "monotonic": ticker}
    opts.update(kw)
    return ElectricityMapsSource("DE", **opts)


def test_is_a_carbon_source(api, ticker):
    src = make(api, ticker)
    assert isinstance(src, CarbonSource)
    r = src.read(now=T0)
    assert (r.value, r.time, r.source, r.stale, r.message) == (300.0, T0, "electricitymaps:DE",
                                                               False, "")


def test_retries_5xx_with_exponential_backoff(api, ticker):
    api.fail_next.extend([Fault.status(500), Fault.status(503)])
    r = make(api, ticker, backoff_s=0.25).read(now=T0)
    assert r.value == 300.0 and not r.stale
    assert api.hits(LATEST) == 3
    assert ticker.sleeps == [0.25, 0.5]


def test_backoff_is_capped(api, ticker):
    api.down = Fault.status(500)
    with pytest.raises(CarbonSourceError):
        make(api, ticker, retries=4, backoff_s=1.0, backoff_max_s=3.0).read(now=T0)
    assert ticker.sleeps == [1.0, 2.0, 3.0, 3.0]


def test_5xx_before_any_good_value_raises_one_line_backend_error(api, ticker):
    api.down = Fault.status(502)
    with pytest.raises(BackendError) as e:
        make(api, ticker).read(now=T0)
    msg = str(e.value)
    assert "\n" not in msg and "HTTP 502" in msg and "electricitymaps:DE" in msg
    assert "3 attempts" in msg
    assert api.hits(LATEST) == 3


def test_timeout(api, ticker):
    api.down = Fault.sleep(0.6)
    src = make(api, ticker, timeout_s=0.15, retries=1)
    with pytest.raises(CarbonSourceError, match="timed out after 0.15 s"):
        src.read(now=T0)
    assert api.hits(LATEST) == 2


def test_connection_refused():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    t = Ticker()
    src = ElectricityMapsSource("DE", token="x", base_url=f"http://127.0.0.1:{port}",
                                retries=1, sleep=t.sleep, monotonic=t)
    with pytest.raises(CarbonSourceError, match="connection failed"):
        src.read(now=T0)


@pytest.mark.parametrize("body, why", [
    ("<html>Bad gateway</html>", "not JSON"),
    ('{"zone": "DE", "datetime": "2026-11-29T10:00:00.000Z"}', "missing field 'carbonIntensity'"),
    ('{"zone": "DE", "carbonIntensity": -5, "datetime": "2026-11-29T10:00Z"}', "negative"),
    ('{"zone": "DE", "carbonIntensity": NaN, "datetime": "2026-11-29T10:00Z"}', "not finite"),
    ('{"zone": "DE", "carbonIntensity": "300", "datetime": "2026-11-29T10:00Z"}', "not a number"),
    ('{"zone": "DE", "carbonIntensity": 300, "datetime": "yesterday"}', "not an ISO-8601"),
    ('[1, 2]', "missing field 'carbonIntensity'"),
])
def test_garbage_is_rejected_without_retry(api, ticker, body, why):
    api.down = Fault.body(body)
    with pytest.raises(CarbonSourceError, match="malformed response") as e:
        make(api, ticker).read(now=T0)
    assert why in str(e.value) and "\n" not in str(e.value)
    assert api.hits(LATEST) == 1


def test_client_errors_are_not_retried(api, ticker):
    src = ElectricityMapsSource("XX", base_url=api.url, token=api.token, sleep=ticker.sleep,
                                monotonic=ticker)
    with pytest.raises(CarbonSourceError, match="HTTP 404"):
        src.read(now=T0)
    assert api.hits(LATEST) == 1 and ticker.sleeps == []


def test_cache_ttl(api, ticker):
    src = make(api, ticker, cache_ttl_s=300)
    src.read(now=T0)
    api.latest = 111.0
    ticker.advance(299)
    assert src.read(now=T0).value == 300.0
    assert api.hits(LATEST) == 1
    ticker.advance(1)
    assert src.read(now=T0).value == 111.0
    assert api.hits(LATEST) == 2


def test_stale_last_good_value_then_recovery(api, ticker):
    src = make(api, ticker, cache_ttl_s=60, failure_ttl_s=30)
    assert src.read(now=T0).value == 300.0
    api.down = Fault.status(500)
    ticker.advance(61)
    r = src.read(now=T0 + timedelta(minutes=1))
    assert r.stale and r.value == 300.0 and r.time == T0
    assert "HTTP 500" in r.message and "last good value from 2026-11-29T10:00Z" in r.message
    assert "\n" not in r.message
    # within failure_ttl: no new requests, still stale
    hits = api.hits(LATEST)
    ticker.advance(10)
    assert src.read(now=T0).stale and api.hits(LATEST) == hits
    # server comes back
    api.down = None
    api.latest, api.latest_time = 280.0, T0 + timedelta(hours=1)
    ticker.advance(30)
    r = src.read(now=T0 + timedelta(hours=1))
    assert (r.value, r.stale, r.message) == (280.0, False, "")


def test_stale_prefers_cached_forecast_for_now(api, ticker):
    src = make(api, ticker, cache_ttl_s=60, timeout_s=0.1, retries=0)
    r = src.read(now=T0, horizon_h=3)
    assert r.forecast == (310.0, 320.0, 330.0)
    api.down = Fault.sleep(0.5)
    ticker.advance(120)
    r = src.read(now=T0 + timedelta(hours=2, minutes=30), horizon_h=2)
    assert r.stale and r.value == 320.0 and r.time == T0 + timedelta(hours=2)
    assert "cached forecast for 2026-11-29T12:00Z" in r.message
    assert r.forecast == (330.0, 340.0)


def test_stale_after_forecast_runs_out_uses_last_good(api, ticker):
    api.forecast = [310.0]
    src = make(api, ticker, cache_ttl_s=60)
    src.read(now=T0, horizon_h=1)
    api.down = Fault.status(500)
    ticker.advance(120)
    r = src.read(now=T0 + timedelta(hours=5))
    assert r.stale and r.value == 300.0 and "last good value" in r.message


def test_garbage_after_good_value_is_stale_not_raised(api, ticker):
    src = make(api, ticker, cache_ttl_s=0)
    src.read(now=T0)
    api.fail_next.append(Fault.json({"zone": "DE", "carbonIntensity": None,
                                     "datetime": iso(T0)}))
    r = src.read(now=T0)
    assert r.stale and r.value == 300.0 and "not a number" in r.message


def test_invalid_http_settings():
    with pytest.raises(ConfigError, match="timeout"):
        ElectricityMapsSource("DE", token="x", timeout_s=0)
    with pytest.raises(ConfigError, match="retries"):
        ElectricityMapsSource("DE", token="x", retries=-1)
    with pytest.raises(ConfigError, match="base_url"):
        ElectricityMapsSource("DE", token="x", base_url="ftp://example")


def test_unexpected_parse_slip_is_stale_not_a_crash(api, ticker):
    src = make(api, ticker, cache_ttl_s=0)
    src.read(now=T0)

    def broken(now):
        raise AttributeError("'list' object has no attribute 'get'")

    src._fetch_current = broken  # a shape no parser anticipated
    r = src.read(now=T0)
    assert r.stale and r.value == 300.0 and "AttributeError" in r.message
