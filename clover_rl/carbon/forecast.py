"""Carbon-intensity forecasters: what a controller may know about the hours ahead.

In replay the future is on file, but an online policy must never see it: its forecast
features come from a forecaster that reads only the past (and, where a provider published
its forecasts, those forecasts as issued). Three kinds (``carbon.forecaster`` in a scenario):

* ``auto`` (default): the provider's own historical forecasts where they ship with the trace
  (SGIP hour-ahead forecasts for ``caiso_pge``/``caiso_sce``, horizons 1-2 h), the model
  below for the other horizons and every other trace.
* ``model``: the documented statistical model only, :func:`model_forecast`.
* ``perfect``: the trace's own future values. **Hindsight, for analysis only** (an upper
  bound on what forecasts are worth); outputs name it ``perfect (hindsight, analysis only)``.

The model is a seasonal profile blended with persistence of the current anomaly (a standard
baseline of short-term load and carbon forecasting, e.g. Hyndman & Athanasopoulos,
*Forecasting: Principles and Practice*, 3rd ed., sections 5.2 and 9.4)::

    s(t')      = mean of the values at t' - d*P for the DAYS most recent whole days d >= 1
                 with t' - d*P <= t (P = steps per day)
    forecast(t + k) = s(t + k) + exp(-k / TAU) * (value(t) - s(t))

At k = 0 it is persistence; far ahead it is the recent daily profile. ``DAYS`` and ``TAU``
were chosen on the train periods of the train grids only: lowest mean WAPE over horizons
1, 2, 3, 6, 12 and 24 h among DAYS in {1, 3, 7, 14} and TAU in {4, 8, 16, 24, 32} h or no
decay. ``benchmarks/forecast_error.py`` prints the error per grid and horizon beside
persistence and, for CAISO, the provider's forecasts. With under a day of history the model
is persistence.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Literal

import numpy as np

from clover_rl.carbon.base import CarbonReading, CarbonTrace
from clover_rl.errors import ConfigError

Kind = Literal["auto", "model", "perfect"]
KINDS: tuple[str, ...] = ("auto", "model", "perfect")
PERFECT = "perfect (hindsight, analysis only)"
MODEL = "seasonal profile + anomaly persistence"
DAYS = 7
TAU_H = 24.0


@dataclass(frozen=True)
class Forecast:
    """Forecasts for every step of a trace: ``values[t, k - 1]`` (g/kWh) is the forecast made
    at step ``t`` for step ``t + k``, k = 1 .. horizon; shape (n, horizon)."""

    values: np.ndarray
    name: str  # what produced it ("perfect (hindsight, analysis only)" for hindsight)

    @property
    def hindsight(self) -> bool:
        return self.name == PERFECT


def check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise ConfigError(f"carbon.forecaster: expected one of {', '.join(KINDS)} (got {kind!r})")
    return kind


def model_forecast(values: np.ndarray, horizon: int, period: int = 24, days: int = DAYS,
                   tau_steps: float = TAU_H) -> np.ndarray:
    """The model's forecasts (n, horizon) for a series; row ``t`` reads ``values[: t + 1]`` only.

    ``period``: steps per day (24 for hourly data); ``tau_steps``: e-folding horizon of the
    anomaly, in steps. Vectorised over t: (days + 1) * horizon array operations.
    """
    v = np.asarray(values, dtype=np.float64)
    n = len(v)
    out = np.empty((n, max(0, horizon)))
    if horizon <= 0 or n == 0:
        return out
    s_now = _profile(v, 0, period, days)  # s(t) from whole days before t
    for k in range(1, horizon + 1):
        s_k = _profile(v, k, period, days)
        w = math.exp(-k / tau_steps)
        anomaly = s_k + w * (v - s_now)  # both profiles known
        blend = w * v + (1.0 - w) * s_k  # s(t + k) known, s(t) not yet (under a day of data)
        out[:, k - 1] = np.where(np.isnan(s_k), v, np.where(np.isnan(s_now), blend, anomaly))
    return np.maximum(out, 0.0)


def _profile(v: np.ndarray, k: int, period: int, days: int) -> np.ndarray:
    """s(t + k) for every t: mean of v[t + k - d*period] over the ``days`` smallest d >= 1 with
    t + k - d*period <= t (so only the past); NaN where no such value exists yet."""
    n = len(v)
    d0 = max(1, math.ceil(k / period))
    acc = np.zeros(n)
    cnt = np.zeros(n)
    for d in range(d0, d0 + days):
        lag = d * period - k  # >= 0: reads v[t - lag]
        if lag >= n:
            break
        acc[lag:] += v[: n - lag]
        cnt[lag:] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(cnt > 0, acc / np.maximum(cnt, 1), np.nan)


def perfect_forecast(values: np.ndarray, horizon: int) -> np.ndarray:
    """Hindsight: the series' own future (the last value held past its end). Analysis only."""
    v = np.asarray(values, dtype=np.float64)
    n = len(v)
    idx = np.minimum(np.arange(n)[:, None] + np.arange(1, horizon + 1)[None, :], n - 1)
    return v[idx] if n else np.empty((0, horizon))


def _issued(trace: CarbonTrace) -> np.ndarray | None:
    """The provider's issued forecasts aligned to ``trace`` (NaN where none), if the trace is
    a shipped grid (same name, same values at those hours) that ships them."""
    from clover_rl.carbon.shipped import GRIDS, load_issued_forecast, load_shipped

    if trace.name not in GRIDS or trace.resolution_s != 3600.0:
        return None
    issued = load_issued_forecast(trace.name)
    if issued is None:
        return None
    times, vals = issued
    pos = np.searchsorted(times, trace.times)
    pos_c = np.minimum(pos, len(times) - 1)
    hit = times[pos_c] == trace.times
    if not hit.any():
        return None
    ref = load_shipped(trace.name)
    ref_pos = np.minimum(np.searchsorted(ref.times, trace.times), len(ref) - 1)
    if not np.allclose(ref.values[ref_pos][hit], trace.values[hit]):
        return None  # same name, other numbers: not the shipped data
    out = np.full((len(trace), vals.shape[1]), np.nan)
    out[hit] = vals[pos_c[hit]]
    return out


def forecast_for(trace: CarbonTrace, horizon: int, kind: str = "auto") -> Forecast:
    """Forecasts for every step of ``trace`` (see the module doc for the kinds)."""
    check_kind(kind)
    period = max(1, round(86400.0 / trace.resolution_s))
    tau = TAU_H * 3600.0 / trace.resolution_s
    if kind == "perfect":
        return Forecast(perfect_forecast(trace.values, horizon), PERFECT)
    fc = model_forecast(trace.values, horizon, period, DAYS, tau)
    if kind == "auto" and horizon > 0:
        issued = _issued(trace)
        if issued is not None:
            h = min(horizon, issued.shape[1])
            fc[:, :h] = np.where(np.isnan(issued[:, :h]), fc[:, :h], issued[:, :h])
            return Forecast(fc, f"provider's issued forecasts (1-{h} h) + {MODEL}")
    return Forecast(fc, MODEL)


class OnlineForecaster:
    """The same model for a live controller. Readings (any interval) are averaged into clock
    hours; a reading whose provider gave fewer than ``horizon`` hourly forecast values is
    completed from that hourly history (the provider's own values first)."""

    def __init__(self, days: int = DAYS) -> None:
        self.days = days
        self._hours: deque[tuple[int, float, int]] = deque(maxlen=24 * (days + 2))

    def _record(self, reading: CarbonReading) -> None:
        hour = int(reading.time.timestamp() // 3600)
        if self._hours and self._hours[-1][0] == hour:
            _, total, count = self._hours[-1]
            self._hours[-1] = (hour, total + reading.value, count + 1)
            return
        if self._hours and hour > self._hours[-1][0]:  # hours without readings hold the last mean
            last_h, total, count = self._hours[-1]
            for h in range(last_h + 1, min(hour, last_h + 1 + self._hours.maxlen)):
                self._hours.append((h, total / count, 1))
        elif self._hours and hour < self._hours[-1][0]:
            self._hours.clear()  # the clock went back (a replayed trace looped): start over
        self._hours.append((hour, float(reading.value), 1))

    def past(self, n: int) -> np.ndarray:
        """Up to ``n`` recorded hourly means (g/kWh), oldest first (hours without readings hold
        the last mean)."""
        hist = [t / c for _, t, c in self._hours]
        return np.asarray(hist[max(0, len(hist) - n):], dtype=float)

    def complete(self, reading: CarbonReading, horizon: int) -> CarbonReading:
        """``reading`` with its forecast extended to ``horizon`` hourly values by the model;
        records the value unless it is stale."""
        if not reading.stale and reading.time is not None:
            self._record(reading)
        have = tuple(reading.forecast)[:horizon]
        if len(have) >= horizon:
            return reading
        if self._hours:
            hist = np.array([t / c for _, t, c in self._hours])
            hist[-1] = reading.value
            fc = model_forecast(hist, horizon)[-1]
        else:
            fc = np.full(horizon, float(reading.value))
        extra = tuple(float(x) for x in fc[len(have):])
        note = f"forecast h{len(have) + 1}-{horizon}: {MODEL}"
        msg = f"{reading.message}; {note}" if reading.message else note
        return CarbonReading(reading.value, reading.time, reading.source, reading.stale,
                             have + extra, msg)
