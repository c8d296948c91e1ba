"""Forecasters read only the past: the model, the shipped provider forecasts, the env's
observations, the live controller's completion of readings."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from clover_rl.carbon.base import CarbonReading, CarbonTrace
from clover_rl.carbon.forecast import (
    MODEL,
    PERFECT,
    OnlineForecaster,
    forecast_for,
    model_forecast,
)
from clover_rl.carbon.shipped import load_issued_forecast, load_shipped
from clover_rl.envs.serving_env import CloverServingEnv
from clover_rl.errors import ConfigError
from clover_rl.scenario import load_scenario


def _trace(values, name="t"):
    times = np.datetime64("2021-03-01T00:00:00", "s") + np.arange(len(values)) * np.timedelta64(3600, "s")
    return CarbonTrace(times, np.asarray(values, dtype=float), name)


def _series(n=24 * 10, seed=0):
    rng = np.random.default_rng(seed)
    hour = np.arange(n) % 24
    return 300 + 100 * np.sin(2 * np.pi * hour / 24) + np.cumsum(rng.normal(0, 10, n))


@pytest.mark.parametrize("t", [0, 5, 23, 24, 100, 200])
def test_model_row_t_depends_on_values_up_to_t_only(t):
    v = _series()
    f = model_forecast(v, 30)
    w = v.copy()
    w[t + 1:] = np.random.default_rng(1).uniform(0, 900, len(v) - t - 1)
    np.testing.assert_array_equal(model_forecast(w, 30)[: t + 1], f[: t + 1])
    assert not np.allclose(f[t], v[t + 1: t + 31][: len(f[t])])  # and it is not the future


def test_model_is_persistence_without_history_and_exact_on_a_periodic_series():
    v = np.arange(10.0)
    np.testing.assert_array_equal(model_forecast(v, 3), np.repeat(v[:, None], 3, axis=1))
    per = np.tile(np.linspace(100, 400, 24), 10)
    f = model_forecast(per, 24)
    np.testing.assert_allclose(f[24 * 8], per[24 * 8 + 1: 24 * 9 + 1])


def test_kinds_are_named_and_perfect_is_hindsight():
    tr = _trace(_series())
    perfect = forecast_for(tr, 4, "perfect")
    assert perfect.name == PERFECT == "perfect (hindsight, analysis only)" and perfect.hindsight
    np.testing.assert_array_equal(perfect.values[10], tr.values[11:15])
    model = forecast_for(tr, 4, "auto")
    assert model.name == MODEL and not model.hindsight
    with pytest.raises(ConfigError, match="carbon.forecaster: expected one of auto, model, perfect"):
        forecast_for(tr, 4, "oracle")


def test_auto_uses_the_provider_forecasts_shipped_with_caiso():
    ev = load_shipped("caiso_pge", "eval")
    fc = forecast_for(ev, 4, "auto")
    times, issued = load_issued_forecast("caiso_pge")
    i = int(np.searchsorted(times, ev.times[0]))
    np.testing.assert_array_equal(fc.values[:, :2], issued[i: i + len(ev)])
    np.testing.assert_array_equal(fc.values[:, 2:], forecast_for(ev, 4, "model").values[:, 2:])
    assert "issued" in fc.name
    # same name, other numbers: not the shipped data, so no provider forecasts
    other = CarbonTrace(ev.times, ev.values + 1.0, "caiso_pge")
    assert forecast_for(other, 4, "auto").name == MODEL


def _observations(trace, steps, forecaster="auto"):
    sc = load_scenario("efficientnet")
    sc = sc.model_copy(update={"carbon": sc.carbon.model_copy(update={"forecaster": forecaster})})
    e = CloverServingEnv(sc, episode_hours=steps, carbon_trace=trace)
    obs = [e.reset(seed=0, options={"start": 30})[0]]
    for _ in range(steps - 1):
        obs.append(e.step(e.catalog.base_index)[0])
    e.close()
    return np.array(obs)


def test_env_observations_never_contain_the_future():
    v = _series(24 * 3)
    steps, t = 8, 4  # episode starts at index 30; compare observations at steps 0..t
    future = v.copy()
    future[30 + t + 1:] = 900.0  # rewrite everything after step t
    a, b = _observations(_trace(v), steps), _observations(_trace(future), steps)
    np.testing.assert_array_equal(a[: t + 1], b[: t + 1])
    assert not np.array_equal(a[t + 1:], b[t + 1:])  # the rewrite is visible once it is the past
    # the hindsight forecaster does see it: the test above would catch a leak
    p, q = _observations(_trace(v), steps, "perfect"), _observations(_trace(future), steps, "perfect")
    assert not np.array_equal(p[: t + 1], q[: t + 1])


def test_online_forecaster_completes_readings_from_hourly_history():
    f = OnlineForecaster()
    t0 = datetime(2021, 3, 1, tzinfo=timezone.utc)
    vals = np.tile(np.linspace(100, 400, 24), 9)
    r = None
    for h, v in enumerate(vals):
        for m in (0, 30):  # two readings per hour are averaged into the hour
            r = f.complete(CarbonReading(float(v), t0 + timedelta(hours=h, minutes=m), "x"), 3)
    np.testing.assert_allclose(r.forecast, np.linspace(100, 400, 24)[0:3])  # next day 00..02
    assert "seasonal profile" in r.message
    given = f.complete(CarbonReading(50.0, t0 + timedelta(hours=len(vals)), "x", forecast=(60.0,)), 3)
    assert given.forecast[0] == 60.0 and len(given.forecast) == 3
    full = CarbonReading(50.0, t0, "x", forecast=(1.0, 2.0, 3.0))
    assert f.complete(full, 3) is full
    fresh = OnlineForecaster().complete(CarbonReading(70.0, t0, "x"), 2)
    assert fresh.forecast == (70.0, 70.0)
