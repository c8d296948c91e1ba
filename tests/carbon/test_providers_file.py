"""Trace replay sources: accelerated time through an injected clock, loop/hold, file loading."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from clover_rl.carbon.base import CarbonSource, CarbonTrace
from clover_rl.carbon.providers import FileSource, TraceSource, parse_source
from clover_rl.errors import CloverError, ConfigError

WALL0 = datetime(2030, 1, 1, 12, 0, tzinfo=timezone.utc)
TRACE0 = np.datetime64("2021-03-01T00:00:00", "s")


class Clock:
    def __init__(self) -> None:
        self.now = WALL0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def hourly_trace(values=(100.0, 200.0, 300.0, 400.0)) -> CarbonTrace:
    times = TRACE0 + np.arange(len(values)) * np.timedelta64(3600, "s")
    return CarbonTrace(times, np.asarray(values, dtype=float), name="t4")


def test_real_time_replay_starts_at_trace_start():
    clock = Clock()
    src = TraceSource(hourly_trace(), clock=clock)
    assert isinstance(src, CarbonSource) and src.name == "trace:t4"
    r = src.read()
    assert (r.value, r.time, r.stale) == (100.0, datetime(2021, 3, 1, tzinfo=timezone.utc), False)
    clock.advance(3599)
    assert src.read().value == 100.0
    clock.advance(1)
    assert src.read().value == 200.0


def test_speed_up_one_trace_hour_per_wall_second():
    clock = Clock()
    src = TraceSource(hourly_trace(), speed=3600, clock=clock)
    # under a day of history the forecaster is persistence: never the values on file ahead
    assert src.read(horizon_h=2).forecast == (100.0, 100.0)
    clock.advance(1.0)
    assert src.read().value == 200.0
    clock.advance(1.5)
    r = src.read()
    assert r.value == 300.0 and r.time == datetime(2021, 3, 1, 2, tzinfo=timezone.utc)
    # explicit `now` is wall time too
    assert src.read(now=WALL0 + timedelta(seconds=3)).value == 400.0


def test_loop_wraps_values_and_forecast():
    clock = Clock()
    src = TraceSource(hourly_trace(), speed=3600, clock=clock)
    clock.advance(3)
    r = src.read(horizon_h=3)
    assert r.value == 400.0 and r.forecast == (400.0, 400.0, 400.0) and r.message == ""
    clock.advance(2 + 4 * 10)  # 45 trace hours = 11 loops + 1 h
    assert src.read().value == 200.0


def test_hold_keeps_last_value_and_says_so():
    clock = Clock()
    src = TraceSource(hourly_trace(), speed=3600, end="hold", clock=clock)
    assert src.read(horizon_h=5).forecast == (100.0,) * 5
    clock.advance(100)
    r = src.read(horizon_h=1)
    assert r.value == 400.0 and r.forecast == (400.0,) and not r.stale
    assert "trace ended at 2021-03-01T03:00Z; holding last value" in r.message


def test_forecast_reads_the_past_only_and_follows_the_daily_profile():
    days = 9
    hour = np.arange(24 * days) % 24
    vals = 200.0 + 100.0 * np.sin(2 * np.pi * hour / 24)
    clock = Clock()
    src = TraceSource(hourly_trace(vals), speed=3600, clock=clock)
    clock.advance(24 * 8 + 3)  # day 8, 03:00: a week of history behind
    fc = np.array(src.read(horizon_h=6).forecast)
    np.testing.assert_allclose(fc, vals[24 * 8 + 4: 24 * 8 + 10], atol=1e-6)  # periodic: exact
    changed = vals.copy()
    changed[24 * 8 + 4:] = 999.0  # rewrite the future on file
    src2 = TraceSource(hourly_trace(changed), speed=3600, clock=clock, start=src.start)
    np.testing.assert_array_equal(np.array(src2.read(horizon_h=6).forecast), fc)


def test_before_start_holds_first_value():
    src = TraceSource(hourly_trace(), clock=Clock())
    assert src.read(now=WALL0 - timedelta(hours=3)).value == 100.0


@pytest.mark.parametrize("speed", [0, -2, float("nan"), float("inf"), "fast"])
def test_bad_speed(speed):
    with pytest.raises(ConfigError, match="speed must be a positive number"):
        TraceSource(hourly_trace(), speed=speed)


def test_bad_end_and_bad_trace():
    with pytest.raises(ConfigError, match="end must be one of loop, hold"):
        TraceSource(hourly_trace(), end="stop")
    with pytest.raises(ConfigError, match="empty"):
        TraceSource(hourly_trace(()))


def test_file_source_replays_a_csv(tmp_path):
    path = tmp_path / "ci.csv"
    path.write_text("timestamp,g_per_kwh\n2021-03-01T00:00Z,50\n2021-03-01T01:00Z,60\n"
                    "2021-03-01T02:00Z,70\n")
    clock = Clock()
    src = parse_source(f"file:{path},speed=60", clock=clock)
    assert isinstance(src, FileSource) and src.name == f"file:{path}"
    assert src.read(horizon_h=1).forecast == (50.0,)
    clock.advance(60)  # one wall minute = one trace hour
    assert src.read().value == 60.0
    clock.advance(120)  # loops back to the start
    assert src.read().value == 50.0


def test_file_source_shipped_trace_name():
    src = parse_source("file:caiso_pge:eval,speed=3600,end=hold", clock=Clock())
    assert src.read().time == datetime(2021, 1, 1, tzinfo=timezone.utc)


def test_file_source_missing_file(tmp_path):
    with pytest.raises(CloverError, match="nope.csv"):
        parse_source(f"file:{tmp_path / 'nope.csv'}")
