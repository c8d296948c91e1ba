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


def graph_features(graph: np.ndarray) -> np.ndarray:
    """The observation's graph features of edge counts ``graph`` (any shape, e.g. a catalog's
    (n_actions, variants x profiles) ``graphs``): float32 counts / 7, same shape."""
    return np.asarray(graph, dtype=np.float32) / 7.0


_ANGLES: dict[float, tuple[float, float]] = {}  # hour of day -> (sin, cos): few distinct hours


def _hour_features(hour_of_day: float) -> tuple[float, float]:
    hit = _ANGLES.get(hour_of_day)
    if hit is None:
        angle = 2.0 * np.pi * (hour_of_day % 24.0) / 24.0
        if len(_ANGLES) > 4096:
            _ANGLES.clear()
        hit = _ANGLES[hour_of_day] = (np.sin(angle), np.cos(angle))
    return hit


def build_observation(
    layout: ObservationLayout,
    *,
    ci_now: float,
    forecast: np.ndarray,
    rate_ratio: float,
    p95_over_sla: float,
    accuracy_over_base: float,
    energy_over_base: float,
    graph: np.ndarray | None = None,
    hour_of_day: float,
    rate_trend: float = 0.0,
    budget_left: float = 1.0,
    window_left: float = 1.0,
    graph_obs: np.ndarray | None = None,
) -> np.ndarray:
    """``ci_*`` are CI x PUE divided by the reference (250 g/kWh x 1.5 by default); ``graph``:
    the configuration's edge counts, or ``graph_obs``: its :func:`graph_features` (precomputed
    per catalog by a caller that builds one every step). A new float32 array of ``layout.size``;
    NaN reads 0 and every feature is clipped to ``layout.bounds()``.

    Written slice by slice into one float32 array (each value is rounded to float32 once, as
    when the parts were float32 arrays concatenated): the env builds one per step."""
    fh = layout.forecast_hours
    obs = np.empty(layout.size, dtype=np.float32)
    obs[0] = ci_now
    fc = np.asarray(forecast)[:fh]
    n = fc.shape[0]
    obs[1:1 + n] = fc
    if n < fh:  # hold the last known value
        obs[1 + n:1 + fh] = obs[n] if n else np.float32(ci_now)
    i = 1 + fh
    obs[i] = rate_ratio
    obs[i + 1] = p95_over_sla
    obs[i + 2] = accuracy_over_base
    obs[i + 3] = energy_over_base
    i += 4
    if graph_obs is None:
        if graph is None:
            raise TypeError("build_observation needs graph or graph_obs")
        graph_obs = graph_features(graph).ravel()
    j = i + graph_obs.shape[0]
    obs[i:j] = graph_obs
    obs[j], obs[j + 1] = _hour_features(hour_of_day)
    obs[j + 2] = rate_trend
    obs[j + 3] = budget_left
    obs[j + 4] = window_left
    low, high = layout._bounds
    obs[np.isnan(obs)] = 0.0  # +-inf are clipped to the bounds (<= 10) below
    np.maximum(obs, low, out=obs)
    return np.minimum(obs, high, out=obs)
