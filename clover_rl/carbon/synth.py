"""Seeded synthetic carbon-intensity traces, for domain randomisation in RL training.

A policy trained only on a few real traces can overfit their exact hours; synthetic grids
with the characteristic shapes of real ones (ranges roughly 50-600 g/kWh) widen what it has
seen. Every trace is marked ``synthetic=True`` and its provenance records the parameters.

Shapes (``hour`` = UTC hour + ``utc_offset_h``):

* ``solar``: a solar-heavy grid's "duck curve": a midday dip whose depth varies per day
  (cloud cover), an evening peak as solar fades, a slow drift of the daily level.
* ``wind``: a wind-heavy grid: slow AR(1) swings (time constant ~1.5 days) as wind comes
  and goes, with a weak night-time dip.
* ``flat``: a fossil-heavy grid: high and nearly constant, slow small drift.
* ``mixed``: solar dip and wind swings together.

All randomness comes from ``numpy.random.default_rng(seed)``: the same arguments give the
same trace on every machine.
"""
from __future__ import annotations

import math
from typing import Literal

import numpy as np

from clover_rl.carbon.base import CarbonTrace
from clover_rl.carbon.trace import _to_datetime64
from clover_rl.errors import ConfigError

Shape = Literal["solar", "wind", "flat", "mixed"]
SHAPES: tuple[str, ...] = ("solar", "wind", "flat", "mixed")
DEFAULT_START = "2021-01-01T00:00:00Z"
MAX_DAYS = 3660

# per shape: mean (g/kWh), amplitude (g/kWh), noise std (g/kWh)
DEFAULTS: dict[str, tuple[float, float, float]] = {
    "solar": (250.0, 200.0, 15.0),
    "wind": (330.0, 110.0, 10.0),
    "flat": (450.0, 25.0, 8.0),
    "mixed": (300.0, 150.0, 12.0),
}


def _ar1(rng: np.random.Generator, n: int, phi: float) -> np.ndarray:
    """Stationary AR(1) with unit variance."""
    eps = rng.standard_normal(n) * math.sqrt(1.0 - phi * phi)
    x = np.empty(n)
    x[0] = rng.standard_normal()
    for i in range(1, n):
        x[i] = phi * x[i - 1] + eps[i]
    return x


def _solar_profile(hour: np.ndarray, cloud: np.ndarray) -> np.ndarray:
    """Zero-mean-ish duck curve: -1 at a clear noon, ~+0.6 at the evening peak."""
    sun = np.clip(np.sin(np.pi * (hour - 6.0) / 12.0), 0.0, None) * cloud
    evening = 0.45 * np.exp(-0.5 * ((hour - 19.5) / 1.8) ** 2)
    return -sun + evening + (2.0 / np.pi / 2.0) * np.mean(cloud) - 0.45 * 1.8 * math.sqrt(2 * math.pi) / 24


def _check(name: str, value: object, lo: float, *, strict: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{name}: expected a number (got {value!r})")
    if value < lo or (strict and value == lo):
        raise ConfigError(f"{name}: must be {'>' if strict else '>='} {lo:g} (got {value!r})")
    return float(value)


def synthesize(shape: Shape, days: int, seed: int, *, mean: float | None = None,
               amplitude: float | None = None, noise: float | None = None,
               start: object = DEFAULT_START, floor: float = 20.0,
               utc_offset_h: float = 0.0, name: str | None = None) -> CarbonTrace:
    """An hourly synthetic trace of ``days`` days; unspecified levels use :data:`DEFAULTS`."""
    if shape not in SHAPES:
        raise ConfigError(f"shape: expected one of {', '.join(SHAPES)} (got {shape!r})")
    if isinstance(days, bool) or not isinstance(days, (int, np.integer)) or not 1 <= days <= MAX_DAYS:
        raise ConfigError(f"days: expected an integer in [1, {MAX_DAYS}] (got {days!r})")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed: expected a non-negative integer (got {seed!r})")
    d_mean, d_amp, d_noise = DEFAULTS[shape]
    mean = _check("mean", d_mean if mean is None else mean, 0.0, strict=True)
    amplitude = _check("amplitude", d_amp if amplitude is None else amplitude, 0.0)
    noise = _check("noise", d_noise if noise is None else noise, 0.0)
    floor = _check("floor", floor, 0.0)
    utc_offset_h = _check("utc_offset_h", utc_offset_h, -24.0)
    t0 = _to_datetime64(start, "start")

    rng = np.random.default_rng(int(seed))
    n = int(days) * 24
    hour = (np.arange(n) + utc_offset_h) % 24.0
    day = ((np.arange(n) + utc_offset_h) // 24).astype(int)
    day -= day.min()
    n_days = int(day.max()) + 1
    drift = _ar1(rng, n, 0.995)  # slow change of the daily level (weather, demand, outages)
    jitter = _ar1(rng, n, 0.5)  # hour-to-hour noise, mildly correlated

    if shape == "solar":
        cloud = rng.uniform(0.35, 1.0, n_days)[day]
        v = mean + amplitude * _solar_profile(hour, cloud) + 0.12 * mean * drift
    elif shape == "wind":
        wind = _ar1(rng, n, 0.97)
        night = np.cos(2 * np.pi * (hour - 3.0) / 24.0)  # windier at night -> lower CI
        v = mean - amplitude * wind - 0.15 * amplitude * night + 0.05 * mean * drift
    elif shape == "flat":
        v = mean + amplitude * drift
    else:  # mixed
        cloud = rng.uniform(0.35, 1.0, n_days)[day]
        wind = _ar1(rng, n, 0.97)
        v = (mean + 0.8 * amplitude * _solar_profile(hour, cloud) - 0.5 * amplitude * wind
             + 0.08 * mean * drift)
    v = np.maximum(v + noise * jitter, floor)

    times = t0 + (np.arange(n) * 3600).astype("timedelta64[s]")
    prov = (f"synthetic {shape} (seed={int(seed)}, days={int(days)}, mean={mean:g}, "
            f"amplitude={amplitude:g}, noise={noise:g}, floor={floor:g}, "
            f"utc_offset_h={utc_offset_h:g}); clover_rl.carbon.synth")
    return CarbonTrace(times, v.astype(np.float64), name or f"synth_{shape}_s{int(seed)}",
                       prov, synthetic=True)


def sample_synthetic(days: int, seed: int, *, start: object = DEFAULT_START) -> CarbonTrace:
    """A randomised shape and level (for domain randomisation): shape uniform over
    :data:`SHAPES`, mean and amplitude scaled by U(0.6, 1.4) of the shape's defaults."""
    rng = np.random.default_rng(int(seed))
    shape = SHAPES[int(rng.integers(len(SHAPES)))]
    d_mean, d_amp, d_noise = DEFAULTS[shape]
    k_mean, k_amp = rng.uniform(0.6, 1.4, 2)
    return synthesize(shape, days, int(rng.integers(2**31)), mean=d_mean * k_mean,  # type: ignore[arg-type]
                      amplitude=d_amp * k_amp, noise=d_noise, start=start)
