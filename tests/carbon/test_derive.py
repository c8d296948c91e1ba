"""Trace derivation on small synthetic inputs: grid-mix intensity and SGIP hourly forecasts."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from clover_rl.carbon.derive import (
    EMISSION_FACTORS,
    MAX_GAP_H,
    average_intensity,
    hourly_issued_forecast,
    hourly_mean,
)
from clover_rl.errors import TraceError

COAL, GAS, WIND, NUC = (EMISSION_FACTORS[k][0] for k in ("coal", "gas", "wind_onshore", "nuclear"))


def _gen(hours: int, freq: str = "15min", tz: str = "Europe/Berlin", start: str = "2020-01-01") -> pd.DataFrame:
    idx = pd.date_range(start, periods=hours * (4 if freq == "15min" else 1), freq=freq, tz=tz)
    n = len(idx)
    return pd.DataFrame({"Fossil Hard coal": np.full(n, 100.0), "Fossil Gas": np.full(n, 300.0),
                         "Wind Onshore": np.linspace(0, 600, n), "Nuclear": np.full(n, 1000.0),
                         "Hydro Pumped Storage": np.full(n, 5000.0)}, index=idx)


def test_mix_weighted_factors_hourly_means_and_utc():
    g = _gen(6)
    ci, rep = average_intensity([g], "2019-12-31T23:00", "2020-01-01T05:00")
    assert len(ci) == 6 and str(ci.index.tz) == "UTC"
    assert ci.index[0] == pd.Timestamp("2019-12-31T23:00", tz="UTC")  # local midnight CET
    wind = g["Wind Onshore"].iloc[:4].mean()  # first hour: mean of four quarter-hours
    expect = (100 * COAL + 300 * GAS + wind * WIND + 1000 * NUC) / (1400 + wind)
    assert ci.iloc[0] == pytest.approx(expect)
    assert "Hydro Pumped Storage" not in rep.fuels  # storage is left out
    assert ci.is_monotonic_decreasing  # more wind, cleaner
    assert rep.filled_hours == 0 and rep.negative_cells == 0


def test_negative_values_are_zero_and_minor_missing_counts_as_zero():
    g = _gen(4, freq="1h", tz="UTC")
    g["Fossil Oil"] = 5.0  # minor (< 2% of the total)
    g.loc[g.index[1], "Fossil Oil"] = np.nan
    g.loc[g.index[2], "Fossil Hard coal"] = -50.0
    ci, rep = average_intensity([g], "2020-01-01", "2020-01-01T04:00")
    assert rep.negative_cells == 1 and rep.minor_missing_cells == 1
    w = g["Wind Onshore"].iloc[2]
    assert ci.iloc[2] == pytest.approx((5 * 650 + 300 * GAS + w * WIND + 1000 * NUC) / (1305 + w))


def test_major_gaps_interpolate_up_to_the_limit_and_fail_beyond():
    g = _gen(24, freq="1h", tz="UTC")
    g.loc[g.index[5:8], "Fossil Gas"] = np.nan  # a major fuel missing for 3 hours
    ci, rep = average_intensity([g], "2020-01-01", "2020-01-02")
    assert rep.filled_hours == 3
    assert ci.iloc[6] == pytest.approx((ci.iloc[4] + ci.iloc[8]) / 2)
    g.loc[g.index[5:6 + MAX_GAP_H], "Fossil Gas"] = np.nan
    with pytest.raises(TraceError, match=f"more than {MAX_GAP_H} hours without data from 2020-01-01T05:00Z"):
        average_intensity([g], "2020-01-01", "2020-01-02", "x")


def test_abrupt_zero_of_a_dispatchable_fleet_is_a_glitch_but_a_ramp_is_real():
    g = _gen(12, freq="1h", tz="UTC")
    g.loc[g.index[4], "Nuclear"] = 0.0  # 1000 MW -> 0 within the hour: reporting glitch
    ci, rep = average_intensity([g], "2020-01-01", "2020-01-01T12:00")
    assert rep.filled_hours == 1 and ci.iloc[4] == pytest.approx((ci.iloc[3] + ci.iloc[5]) / 2)
    g = _gen(12, freq="1h", tz="UTC")
    g["Fossil Gas"] = [300.0, 200, 100, 20, 0, 0, 0, 0, 20, 100, 200, 300]  # ramps to 0
    _, rep = average_intensity([g], "2020-01-01", "2020-01-01T12:00")
    assert rep.filled_hours == 0


def test_parts_judge_fuels_separately_and_unknown_types_fail():
    a = _gen(2, freq="1h", tz="UTC")
    b = _gen(2, freq="1h", tz="UTC", start="2020-01-01T02:00").drop(columns=["Fossil Hard coal"])
    ci, _ = average_intensity([a, b], "2020-01-01", "2020-01-01T04:00")
    assert len(ci) == 4 and ci.notna().all()  # coal absent from the second file = 0
    assert ci.iloc[2] < ci.iloc[1]
    bad = a.rename(columns={"Nuclear": "Fusion"})
    with pytest.raises(TraceError, match="unknown ENTSO-E production type 'Fusion'"):
        average_intensity([bad], "2020-01-01", "2020-01-01T02:00")


def test_sgip_hourly_mean_and_issued_forecasts():
    idx = pd.date_range("2021-03-01", periods=36, freq="5min", tz="UTC")  # 3 hours
    moer = pd.Series(np.arange(36, dtype=float), index=idx)
    h = hourly_mean(moer, "x")
    assert list(h) == [5.5, 17.5, 29.5]
    # fk issued at time t forecasts t + 5k min: here fk = 1000 * t_index + k
    df = pd.DataFrame({f"f{k}": 1000.0 * np.arange(36) + k for k in range(1, 37)}, index=idx)
    fc = hourly_issued_forecast(df, "x")
    assert list(fc.columns) == ["f1h", "f2h"] and list(fc.index) == list(idx[::12])
    assert fc["f1h"].iloc[0] == pytest.approx(np.mean(np.arange(12, 24)))  # hour +1: f12..f23
    assert fc["f2h"].iloc[1] == pytest.approx(12000 + np.mean(np.arange(24, 36)))
    with pytest.raises(TraceError, match="incomplete hour"):
        hourly_mean(moer.iloc[:30], "x")
