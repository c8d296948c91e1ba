"""A model-predictive controller (``mpc``): each interval, plan the configurations of the next
hours on the profile model with the *forecast* intensity and load, pay a switching cost per
change, serve the plan's first configuration, and plan again next interval.

* Model: the replay model's steady-state table of every configuration at the forecast load
  (:func:`clover_rl.objectives.objective_table`) -- the profile, not measurements of the future.
* Forecast: never the future trace. The intensity now is read (as every policy does); ahead, a
  forecaster's values where the environment offers them (``env.forecast()``, the scenario's
  forecaster, for its ``forecast_hours``), and beyond them (or without one) a seasonal-naive
  forecast blended with persistence from *past* intensities: ``f(h) = w_h CI_now + (1 - w_h) CI(now - 24 h + h)``, ``w_h = 2^(-h/3)``
  (persistence only until a day of history exists). Load: persistence of the current rate.
* Plan: a dynamic program over the horizon with ``switch_cost`` per change (in objective units).
  On a fleet (a configuration per GPU, :mod:`clover_rl.fleet`) a change costs ``switch_cost``
  times the share of the GPUs it reconfigures (the replay model charges downtime only to those),
  planned by :func:`clover_rl.fleet.planning.plan_fleet` (Viterbi, ``O(H x S^2)`` over the ``S``
  allowed fleets): moving one GPU of eight costs an eighth of changing them all.
  Under a carbon budget, carbon gets a price: the smallest one at which the forecast plan of the
  rest of the window fits the budget left (:func:`carbon_price`, capped at the overspend
  penalty's own rate), so it spends where the forecast is clean and saves where it is dirty.

Everything is vectorised over the configuration table: a 48-h evaluation costs the table
builds plus milliseconds per interval.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from clover_rl.agents.base import BindablePolicy
from clover_rl.agents.planning import carbon_price, first_move
from clover_rl.contracts import ControlContext
from clover_rl.objectives import CarbonBudget


def seasonal_persistence(past: np.ndarray, now: float, n: int, half_life_h: float = 3.0) -> np.ndarray:
    """Intensity forecast for offsets ``0..n-1`` (0 = now) from past hourly values (oldest first,
    ending with now): persistence blended into the value a day earlier."""
    out = np.full(n, float(now))
    if len(past) < 25 or n <= 1:
        return out
    h = np.arange(1, n)
    day_ago = past[len(past) - 1 - 24 + (h % 24)]
    w = 2.0 ** (-h / half_life_h)
    out[1:] = w * now + (1.0 - w) * day_ago
    return out


class MPCPolicy(BindablePolicy):
    """Receding-horizon planner on the profile model and the forecast (see the module docstring).

    ``horizon``: intervals planned (default: the scenario's forecast hours + 1, the current one
    included); ``switch_cost``: objective value charged per configuration change (hysteresis
    against flapping and the reconfiguration's downtime).
    """

    name = "mpc"

    def __init__(self, env: Any = None, *, seed: int = 0, horizon: int | None = None,
                 switch_cost: float = 0.005) -> None:
        if horizon is not None and int(horizon) < 1:
            raise ValueError(f"horizon must be >= 1 interval (got {horizon})")
        if not switch_cost >= 0:
            raise ValueError(f"switch_cost must be >= 0 (got {switch_cost})")
        self.seed = seed
        self.horizon = horizon
        self.switch_cost = float(switch_cost)
        self.last_decision: dict[str, Any] = {}
        if env is not None:
            self.bind(env)

    def reset(self) -> None:
        self.last_decision = {}

    def forecast(self, n: int) -> np.ndarray:
        """Intensity (g/kWh) for offsets ``0..n-1``; never reads the future of a replayed trace."""
        env = self._context()
        now = float(env.intensity())
        out = seasonal_persistence(np.asarray(env.past_intensities(48), dtype=float), now, n)
        f = np.asarray(env.forecast(), dtype=float)[: n - 1]  # the context's forecaster (past only)
        out[1:1 + len(f)] = f
        return out

    def _context(self) -> ControlContext:
        if self.env is None:
            raise RuntimeError("mpc: bind(env) before act()")
        return self.env

    def act(self, observation: np.ndarray, info: dict[str, Any]) -> int:
        env = self._context()
        obj = env.objective
        step = env.step_index
        horizon = self.horizon or env.scenario.carbon.forecast_hours + 1
        left_in_episode = max(1, env.steps_per_episode - step)
        n = min(horizon, left_in_episode)
        if isinstance(obj, CarbonBudget):
            n_plan = max(n, min(obj.steps_left(step), left_in_episode))
        else:
            n_plan = n
        ci = self.forecast(n_plan)
        rate = float(env.rate())
        mask = env.action_masks()
        values = np.empty((n_plan, len(mask)))
        carbon = np.empty_like(values)
        for h in range(n_plan):
            tv = env.objective_table(rate_rps=rate, intensity=float(ci[h]))
            allowed = tv.allowed() & mask
            values[h] = np.where(allowed, tv.value, -np.inf)
            carbon[h] = np.where(allowed, tv.carbon_g, np.inf)
        price = 0.0
        if isinstance(obj, CarbonBudget):
            price = min(carbon_price(values, carbon, obj.left_g(step)), obj.overspend_penalty / obj.allowance_g)
            values = values - price * np.where(np.isfinite(carbon), carbon, 0.0)
        current = int(env.catalog.lookup(env.configuration))
        changes = getattr(env.catalog, "changes", None)  # a fleet: cost per reconfigured GPU
        if changes is not None:
            action, planned = fleet_move(values[:n], current, changes, self.switch_cost / env.catalog.n_gpus)
        else:
            action, planned = first_move(values[:n], current, self.switch_cost)
        self.last_decision = {
            "policy": self.name, "reoptimized": True, "probes": 0, "hindsight": False,
            "config": env.catalog.configs[action].label(), "horizon": n, "planned_value": planned,
            "carbon_price": price, "forecast": [round(float(x), 1) for x in ci[:n]],
            "reason": "receding-horizon plan on the forecast" + (" with a carbon price" if price > 0 else ""),
        }
        return action


def fleet_move(values: np.ndarray, current: int, changes: np.ndarray, cost_per_gpu: float) -> tuple[int, float]:
    """First action of the best path through ``values`` ((H, S), ``-inf`` where not allowed)
    from fleet ``current``, paying ``cost_per_gpu`` per reconfigured GPU (``changes``: (S, S)
    GPUs changed). Plans over the fleets allowed in some interval plus ``current``; an interval
    with none allowed keeps ``current``."""
    from clover_rl.fleet.planning import plan_fleet

    cols = np.union1d(np.flatnonzero(np.isfinite(values).any(axis=0)), [current])
    v = values[:, cols]
    if not np.isfinite(v).any(axis=1).all():
        return current, float("-inf")
    plan, total = plan_fleet(v, changes[np.ix_(cols, cols)], cost_per_gpu, start=int(np.searchsorted(cols, current)))
    return int(cols[plan[0]]), total
