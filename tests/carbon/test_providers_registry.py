"""parse_source: spec strings to sources, and clear ConfigErrors for bad ones."""
from __future__ import annotations

import numpy as np
import pytest

from clover_rl.carbon.base import CarbonReading, CarbonSource, CarbonTrace
from clover_rl.carbon.providers import (
    ElectricityMapsSource,
    TraceSource,
    UkGridSource,
    WattTimeSource,
    kinds,
    parse_source,
    register_kind,
)
from clover_rl.errors import ConfigError


@pytest.fixture(autouse=True)
def creds(monkeypatch):
    monkeypatch.setenv("ELECTRICITYMAPS_API_TOKEN", "t")
    monkeypatch.setenv("WATTTIME_USERNAME", "u")
    monkeypatch.setenv("WATTTIME_PASSWORD", "p")


def tiny_trace() -> CarbonTrace:
    return CarbonTrace(np.array(["2021-01-01T00:00"], dtype="datetime64[s]"), np.array([42.0]))


def test_kinds():
    assert set(kinds()) >= {"electricitymaps", "watttime", "ukgrid", "file", "trace"}


def test_api_specs_and_options():
    em = parse_source("electricitymaps:US-CAL-CISO,ttl=120,timeout=3,retries=0")
    assert isinstance(em, ElectricityMapsSource) and isinstance(em, CarbonSource)
    assert (em.name, em.zone, em.cache_ttl_s, em.timeout_s, em.retries) == \
        ("electricitymaps:US-CAL-CISO", "US-CAL-CISO", 120.0, 3.0, 0)
    wt = parse_source(" WattTime:CAISO_NORTH ")
    assert isinstance(wt, WattTimeSource) and wt.region == "CAISO_NORTH"
    uk = parse_source("ukgrid")
    assert isinstance(uk, UkGridSource) and uk.region_id is None
    assert parse_source("ukgrid,base_url=http://127.0.0.1:9").base_url == "http://127.0.0.1:9"
    assert parse_source("ukgrid:7").region_id == 7


def test_overrides_win_over_string_options():
    assert parse_source("ukgrid,ttl=5", cache_ttl_s=9).cache_ttl_s == 9


def test_trace_form_wraps_an_in_memory_trace():
    src = parse_source("trace:demo,speed=3600", trace=tiny_trace())
    assert isinstance(src, TraceSource) and src.name == "trace:demo" and src.speed == 3600
    assert src.read().value == 42.0


@pytest.mark.parametrize("spec, match", [
    ("", "empty spec"),
    ("   ", "empty spec"),
    ("carbonapi:DE", "unknown kind 'carbonapi'"),
    ("electricitymaps", "needs a zone"),
    ("electricitymaps:", "needs a zone"),
    ("watttime", "needs a region"),
    ("file", "needs a path"),
    ("file:x.csv,speed=fast", "speed must be a positive number, got 'fast'"),
    ("file:x.csv,speed=0", "speed must be a positive number"),
    ("file:x.csv,speed=-3", "speed must be a positive number"),
    ("file:x.csv,pace=3", "unknown option 'pace' for file"),
    ("ukgrid,ttl=soon", "bad value for ttl"),
    ("ukgrid:99", "region id 1-17"),
    ("ukgrid!", "expected ':' or ','"),
    ("trace", "needs an in-memory trace"),
    ("electricitymaps:DE,ttl=5,oops", "expected key=value"),
    ("42:x", "expected KIND"),
])
def test_bad_specs(spec, match):
    with pytest.raises(ConfigError, match=match):
        parse_source(spec)


def test_missing_token_surfaces_through_parse_source(monkeypatch):
    monkeypatch.delenv("ELECTRICITYMAPS_API_TOKEN")
    with pytest.raises(ConfigError, match="ELECTRICITYMAPS_API_TOKEN"):
        parse_source("electricitymaps:DE")


def test_paths_with_commas_stay_whole(tmp_path):
    path = tmp_path / "a,b.csv"
    path.write_text("timestamp,g_per_kwh\n2021-03-01T00:00Z,5\n2021-03-01T01:00Z,6\n")
    assert parse_source(f"file:{path},speed=2").read().value == 5.0


def test_register_kind():
    class Const:
        name = "const"

        def read(self, now=None, horizon_h=0):
            return CarbonReading(7.0, None, self.name)  # type: ignore[arg-type]

    register_kind("const_test", lambda arg, kw: Const())
    assert parse_source("const_test").read().value == 7.0
