"""``oracle-plan``: the hindsight plan of a whole episode with a cost per reconfigured GPU."""
from __future__ import annotations

from typing import Any

import numpy as np

from clover_rl.agents.baselines import OraclePolicy
from clover_rl.fleet.configuration import FleetConfiguration
from clover_rl.fleet.planning import change_matrix, plan_fleet


class PlannedOraclePolicy(OraclePolicy):
    """ORACLE planned over the rest of the episode at its first ``act``: every interval's
    objective table in hindsight (as ``oracle``), then :func:`plan_fleet` with
    ``switch_cost_per_gpu`` (objective units per reconfigured GPU) -- a dynamic program over
    time, so it changes GPUs only when the gain outlasts the cost. On a single-configuration
    scenario every change costs ``gpus x switch_cost_per_gpu``. An upper bound, not a controller."""

    name = "oracle-plan"

    def __init__(self, env: Any = None, *, seed: int = 0, switch_cost_per_gpu: float = 0.001) -> None:
        if not switch_cost_per_gpu >= 0:
            raise ValueError(f"switch_cost_per_gpu must be >= 0 (got {switch_cost_per_gpu})")
        self.switch_cost_per_gpu = float(switch_cost_per_gpu)
        self._plan: dict[int, int] = {}
        super().__init__(env, seed=seed)

    def reset(self) -> None:
        super().reset()
        self._plan = {}

    def _choose(self) -> tuple[int, dict[str, Any]]:
        env = self.env
        step = env.step_index
        if step not in self._plan:
            self._plan = self._make_plan(step)
        return self._plan[step], {"reason": "hindsight plan of the episode with a per-GPU switching cost",
                                  "switch_cost_per_gpu": self.switch_cost_per_gpu}

    def _make_plan(self, step: int) -> dict[int, int]:
        env, cat = self.env, self.env.catalog
        n = env.steps_per_episode - step
        mask = self._allowed()
        values = np.empty((n, len(cat)))
        for o in range(n):
            tv = env.objective_table(o)
            values[o] = np.where(tv.allowed() & mask, tv.value, -np.inf)
        cols = np.flatnonzero(np.isfinite(values).any(axis=0))
        current = int(cat.lookup(env.configuration))
        cols = np.union1d(cols, [current])
        gpus = env.scenario.gpus
        fleets = [c if isinstance(c, FleetConfiguration) else FleetConfiguration.identical(c, gpus)
                  for c in (cat.configs[int(i)] for i in cols)]
        plan, _ = plan_fleet(values[:, cols], change_matrix(fleets), self.switch_cost_per_gpu,
                             start=int(np.searchsorted(cols, current)))
        return {step + t: int(cols[a]) for t, a in enumerate(plan)}
