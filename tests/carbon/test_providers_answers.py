"""Rate limits, plan limits and server messages from the carbon APIs, on loopback fakes.

Faults from issue 10 part 2: Electricity Maps' 429 with ``Retry-After: 60`` was retried after
0.5 s and 1 s; rate-limit 401s and plan 403s all said "check the token"; a WattTime region
outside the plan (403) also blamed the credentials; errors dropped the server's message.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import httpx
import pytest

from clover_rl.carbon.providers import CarbonSourceError, ElectricityMapsSource
from clover_rl.carbon.providers.answers import classify, retry_after_s, server_message
from clover_rl.carbon.providers.watttime import WattTimeSource
from tests.support.apis import T0, ElectricityMapsFake, Fault, Ticker, WattTimeFake

LATEST = "/v3/carbon-intensity/latest"
FORECAST = "/v3/carbon-intensity/forecast"
WT_PLAN_403 = {"error": "Invalid scope. You do not have sufficient access to this resource. See "
                        "the data plans page for more information. Please note that all users "
                        "are allowed free access to CAISO_NORTH."}


@pytest.fixture
def api():
    with ElectricityMapsFake() as fake:
        yield fake


def em(api: ElectricityMapsFake, ticker: Ticker, **kw) -> ElectricityMapsSource:
    opts = {"base_url": api.url, "token": api.token, "retries": 2, "backoff_s": 0.5,
            "backoff_max_s": 8.0, "cache_ttl_s": 300, "failure_ttl_s": 30,
            "sleep": ticker.sleep, "monotonic": ticker}
    opts.update(kw)
    return ElectricityMapsSource("DE", **opts)


def test_429_retry_after_60_is_not_retried_early_and_reads_stale_meanwhile(api):
    ticker = Ticker()
    src = em(api, ticker)
    assert src.read(now=T0).value == 300.0
    ticker.advance(301)  # cache expired
    api.fail_next.append(Fault.status(429, LATEST, {"message": "Too many requests"},
                                      {"Retry-After": "60"}))
    r = src.read(now=T0)
    assert r.stale and r.value == 300.0 and ticker.sleeps == []  # no 0.5 s / 1 s retries
    assert "HTTP 429 (Too many requests)" in r.message and "retry after 60 s" in r.message
    assert "check the token" not in r.message
    hits = api.hits(LATEST)
    ticker.advance(45)  # past failure_ttl_s=30, still inside Retry-After
    assert src.read(now=T0).stale and api.hits(LATEST) == hits  # no request before 60 s
    ticker.advance(16)
    r = src.read(now=T0)
    assert not r.stale and api.hits(LATEST) == hits + 1


def test_short_retry_after_stretches_the_backoff(api):
    ticker = Ticker()
    api.fail_next.append(Fault.status(429, LATEST, headers={"Retry-After": "3"}))
    assert em(api, ticker).read(now=T0).value == 300.0
    assert ticker.sleeps == [3.0]  # not 0.5


def test_retry_after_as_http_date_measured_from_the_server_date(api):
    ticker = Ticker()
    when = datetime.now(timezone.utc) + timedelta(seconds=120)  # the fake sends its own Date
    hdrs = {"Retry-After": format_datetime(when, usegmt=True)}
    api.fail_next.append(Fault.status(503, LATEST, {"message": "maintenance"}, hdrs))
    with pytest.raises(CarbonSourceError, match=r"HTTP 503 \(maintenance\).*retry after 1[12]\d s"):
        em(api, ticker).read(now=T0)
    assert ticker.sleeps == []


@pytest.mark.parametrize("code,payload,hint,no_hint", [
    (401, {"message": "Invalid auth-token"}, "check the token in ELECTRICITYMAPS_API_TOKEN", None),
    (401, {"message": "Rate limit exceeded for this token"}, None, "check the token"),
    (403, {"message": "Your plan does not include access to zone DE"}, "not covered by the account's plan",
     "check the token"),
    (404, {"message": "Zone 'XX' does not exist."}, "Zone 'XX' does not exist.", "check the token"),
])
def test_credentials_hint_only_for_real_auth_failures(api, code, payload, hint, no_hint):
    ticker = Ticker()
    api.down = Fault.status(code, LATEST, payload)
    with pytest.raises(CarbonSourceError) as e:
        em(api, ticker, retries=0).read(now=T0)
    msg = str(e.value)
    assert f"HTTP {code} ({payload['message']})" in msg and "\n" not in msg
    if hint:
        assert hint in msg
    if no_hint:
        assert no_hint not in msg


def test_watttime_region_outside_plan_does_not_blame_credentials(monkeypatch):
    with WattTimeFake() as wt:
        wt.down = Fault.status(403, "/v3/forecast", WT_PLAN_403)
        src = WattTimeSource("PJM_ROANOKE", base_url=wt.url, username=wt.username,
                             password=wt.password, sleep=Ticker().sleep)
        with pytest.raises(CarbonSourceError) as e:
            src.read(now=T0)
    msg = str(e.value)
    assert "HTTP 403 (Invalid scope. You do not have sufficient access" in msg
    assert "not covered by the account's plan" in msg and "WATTTIME_PASSWORD" not in msg


def test_watttime_bad_login_keeps_hint_and_server_message():
    with WattTimeFake() as wt:
        src = WattTimeSource("CAISO_NORTH", base_url=wt.url, username="x", password="y",
                             sleep=Ticker().sleep)
        with pytest.raises(CarbonSourceError, match=r"login rejected: HTTP 401.*check WATTTIME_USERNAME"):
            src.read(now=T0)


def _resp(status: int, body: bytes = b"", **headers: str) -> httpx.Response:
    return httpx.Response(status, content=body, headers=headers)


def test_answer_helpers():
    assert retry_after_s(_resp(429, **{"Retry-After": "60"})) == 60.0
    assert retry_after_s(_resp(429, **{"Retry-After": "soon"})) is None
    assert retry_after_s(_resp(429, **{"Retry-After": "-5"})) is None
    assert retry_after_s(_resp(429)) is None
    when = T0 + timedelta(seconds=90)
    assert retry_after_s(_resp(429, **{"Retry-After": format_datetime(when, usegmt=True)}),
                         now=T0) == 90.0
    assert server_message(_resp(400, b'{"detail": [{"msg": "bad zone"}]}')) == "bad zone"
    assert server_message(_resp(502, b"<html> Bad   gateway </html>")) == "<html> Bad gateway </html>"
    assert classify(429, "") == "rate" and classify(403, "quota exceeded") == "rate"
    assert classify(403, "Invalid scope") == "plan" and classify(401, "bad token") == "auth"
    assert classify(403, "") == "other" and classify(500, "boom") == "other"
