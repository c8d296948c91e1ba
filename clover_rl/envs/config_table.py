"""The configuration table: steady-state figures of every configuration at one load, from the
replay model (hindsight: for the oracle, model-predictive planning and analysis)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from clover_rl.scoring import Objective, ObjectiveReference, carbon_g
from clover_rl.scoring import scores as paper_scores


@dataclass(frozen=True)
class ConfigTable:
    """Steady-state figures of every configuration at one load (the replay model's hindsight)."""

    rate_rps: float
    energy_per_request_j: np.ndarray
    accuracy: np.ndarray
    p95_ms: np.ndarray
    feasible: np.ndarray

    def scores(self, intensity: float, pue: float, objective: Objective | ObjectiveReference) -> np.ndarray:
        """The objective of every configuration at ``intensity`` g/kWh (-inf where infeasible);
        a bare ``ObjectiveReference`` means the paper's score against it."""
        ok = self.feasible & np.isfinite(self.energy_per_request_j) & np.isfinite(self.p95_ms)
        e = np.where(ok, self.energy_per_request_j, 0.0)
        p95 = np.where(ok, self.p95_ms, 1.0)
        cpr = carbon_g(e, intensity, pue)
        v = (paper_scores(cpr, self.accuracy, p95, objective) if isinstance(objective, ObjectiveReference)
             else objective.scores(cpr, self.accuracy, p95))
        return np.where(ok, v, -np.inf)


def build_config_table(model: Any, catalog: Any, rate_rps: float, interval_s: float) -> ConfigTable:
    """Steady state of every feasible configuration of ``catalog`` at ``rate_rps`` on the replay
    ``model`` (a ReplayBackend), as one interval of ``interval_s`` seconds."""
    n = len(catalog)
    e = np.full(n, np.inf)
    acc = np.zeros(n)
    p95 = np.full(n, np.inf)
    for i, cfg in enumerate(catalog.configs):
        if not catalog.feasible[i]:
            continue
        m = model.steady_state(rate_rps, cfg).interval(interval_s)
        e[i] = m.energy_per_request_j if m.served else np.inf
        acc[i] = m.accuracy
        p95[i] = m.p95_ms
    return ConfigTable(rate_rps, e, acc, p95, catalog.feasible.copy())


def fill_tables(model: Any, rates: Any, tick: Any = None) -> int:
    """Build ``model``'s configuration table (a ``ServiceModel``) at each of ``rates`` (req/s):
    every feasible configuration's steady state there is computed, or read from the persistent
    store (:mod:`clover_rl.serving.steady_store`), which keeps what was computed for every later
    process. ``tick()`` after each rate. Returns the number of steady states asked for."""
    n = 0
    for r in rates:
        model.config_table(float(r))
        n += int(np.count_nonzero(model.catalog.feasible))
        if tick is not None:
            tick()
    return n
