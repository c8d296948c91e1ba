"""build_observation writes its features slice by slice into one float32 array: the values
must be those of the layout's formula (each part rounded to float32, concatenated, NaN -> 0,
clipped to the bounds), which shipped policies were trained on."""
from __future__ import annotations

import numpy as np
import pytest

from clover_rl.envs.observation import ObservationLayout, build_observation, graph_features


def _reference(layout: ObservationLayout, *, ci_now, forecast, rate_ratio, p95_over_sla, accuracy_over_base,
               energy_over_base, graph, hour_of_day, rate_trend, budget_left, window_left) -> np.ndarray:
    """The formula as float32 parts concatenated (the layout's definition)."""
    fc = np.asarray(forecast, dtype=np.float32)[: layout.forecast_hours]
    if len(fc) < layout.forecast_hours:
        pad = fc[-1] if len(fc) else ci_now
        fc = np.concatenate([fc, np.full(layout.forecast_hours - len(fc), pad, dtype=np.float32)])
    angle = 2.0 * np.pi * (hour_of_day % 24.0) / 24.0
    obs = np.concatenate([
        np.array([ci_now], dtype=np.float32), fc,
        np.array([rate_ratio, p95_over_sla, accuracy_over_base, energy_over_base], dtype=np.float32),
        np.asarray(graph, dtype=np.float32).ravel() / 7.0,
        np.array([np.sin(angle), np.cos(angle)], dtype=np.float32),
        np.array([rate_trend, budget_left, window_left], dtype=np.float32),
    ])
    low, high = layout.bounds()
    obs[np.isnan(obs)] = 0.0
    return np.clip(obs, low, high)


@pytest.mark.parametrize("forecast_hours", [0, 1, 6])
def test_observation_equals_the_formula_bit_for_bit(forecast_hours: int) -> None:
    layout = ObservationLayout(forecast_hours, ("b0", "b5", "b7"), ("1g", "2g", "3g", "4g", "7g"))
    rng = np.random.default_rng(forecast_hours)

    def value() -> float:
        kind = rng.integers(8)
        return [float("nan"), float("inf"), -float("inf"), 1e-9 * rng.random()][kind] if kind < 4 \
            else float(rng.normal() * 4)

    for _ in range(300):
        g = rng.integers(0, 8, size=(3, 5))
        kw = dict(ci_now=value(), forecast=np.array([value() for _ in range(rng.integers(0, forecast_hours + 2))]),
                  rate_ratio=value(), p95_over_sla=value(), accuracy_over_base=value(), energy_over_base=value(),
                  hour_of_day=float(rng.integers(0, 30)) + float(rng.choice([0.0, 0.5, 1 / 3])),
                  rate_trend=value(), budget_left=value(), window_left=value())
        want = _reference(layout, graph=g, **kw)
        got = build_observation(layout, graph=g, **kw)
        pre = build_observation(layout, graph_obs=graph_features(g).ravel(), **kw)
        assert got.dtype == np.float32 and got.shape == (layout.size,)
        assert got.tobytes() == want.tobytes() == pre.tobytes()


def test_observation_is_a_new_array_each_call() -> None:
    layout = ObservationLayout(2, ("a",), ("1g",))
    kw = dict(ci_now=1.0, forecast=np.ones(2), rate_ratio=1.0, p95_over_sla=1.0, accuracy_over_base=1.0,
              energy_over_base=1.0, graph=np.ones((1, 1)), hour_of_day=3.0)
    a = build_observation(layout, **kw)
    b = build_observation(layout, **kw)
    assert a is not b and not np.shares_memory(a, b)
