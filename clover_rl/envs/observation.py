"""The observation vector: one layout shared by training (replay) and deployment (live).

Kept as a pure function of readings so the live controller builds exactly what the policy
was trained on.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

#: Appended after the hour of day (so checkpoints trained before them map by name): the load's
#: change over the last interval / the nominal rate, the carbon budget left in the window (a
#: fraction; 1 without a budget) and the window's intervals left (a fraction; 1 without one).
EXTRA_FEATURES = ("request_rate_trend", "budget_left", "window_left")


@dataclass(frozen=True)
class ObservationLayout:
    forecast_hours: int
    variants: tuple[str, ...]
    profiles: tuple[str, ...]

    @cached_property
    def _names(self) -> tuple[str, ...]:
        n = ["ci_now"] + [f"ci_forecast_{h + 1}h" for h in range(self.forecast_hours)]
        n += ["request_rate", "p95_over_sla", "accuracy_over_base", "energy_over_base"]
        n += [f"graph[{v},{p}]" for v in self.variants for p in self.profiles]
        n += ["hour_sin", "hour_cos"]
        n += list(EXTRA_FEATURES)
        return tuple(n)

    @property
    def names(self) -> list[str]:
        return list(self._names)

    @property
    def size(self) -> int:
        return len(self._names)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        low, high = self._bounds
        return low.copy(), high.copy()

    @cached_property
    def _bounds(self) -> tuple[np.ndarray, np.ndarray]:  # built once: the env asks every step
        low = np.zeros(self.size, dtype=np.float32)
        high = np.full(self.size, 10.0, dtype=np.float32)
        h = self.names.index("hour_sin")
        low[h:h + 2] = -1.0
        high[h:h + 2] = 1.0
        g0 = 1 + self.forecast_hours + 4
        high[g0:g0 + len(self.variants) * len(self.profiles)] = 1.0
        low[h + 2] = -10.0  # request_rate_trend
        high[h + 4] = 1.0  # window_left
        return low, high


def build_observation(
    layout: ObservationLayout,
    *,
    ci_now: float,
    forecast: np.ndarray,
    rate_ratio: float,
    p95_over_sla: float,
    accuracy_over_base: float,
    energy_over_base: float,
    graph: np.ndarray,
    hour_of_day: float,
    rate_trend: float = 0.0,
    budget_left: float = 1.0,
    window_left: float = 1.0,
) -> np.ndarray:
    """``ci_*`` are CI x PUE divided by the reference (250 g/kWh x 1.5 by default)."""
    fc = np.asarray(forecast, dtype=np.float32)[: layout.forecast_hours]
    if len(fc) < layout.forecast_hours:  # hold the last known value
        pad = fc[-1] if len(fc) else ci_now
        fc = np.concatenate([fc, np.full(layout.forecast_hours - len(fc), pad, dtype=np.float32)])
    angle = 2.0 * np.pi * (hour_of_day % 24.0) / 24.0
    obs = np.concatenate([
        np.array([ci_now], dtype=np.float32),
        fc,
        np.array([rate_ratio, p95_over_sla, accuracy_over_base, energy_over_base], dtype=np.float32),
        np.asarray(graph, dtype=np.float32).ravel() / 7.0,
        np.array([np.sin(angle), np.cos(angle)], dtype=np.float32),
        np.array([rate_trend, budget_left, window_left], dtype=np.float32),
    ]).astype(np.float32)
    low, high = layout._bounds
    obs[np.isnan(obs)] = 0.0  # +-inf are clipped to the bounds (<= 10) below
    return np.clip(obs, low, high, out=obs)
