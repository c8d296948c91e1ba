"""Non-learning reference policies: BASE, RAND, ORACLE and a carbon-greedy one.

* ``BasePolicy`` -- the paper's BASE: the largest variant on whole GPUs, never changes. Every
  carbon saving is measured against it.
* ``RandomSearchPolicy`` -- the paper's RAND: random search with the same re-optimisation rule,
  history reuse, probe budget and stopping rule as Clover, but no graph neighbourhoods and no
  annealing; serves the best it measured. (The artifact's RAND also stops at 5 evaluations
  without improvement and explores up to ``iter_limit = 20``; here both share ``max_explored``,
  10 by default, so they spend the same budget.)
* ``OraclePolicy`` -- per interval the best configuration in hindsight, read from the replay
  model's steady-state table at the interval's intensity and load, with no exploration cost:
  an upper bound, not an achievable controller. Under a carbon budget: a hindsight plan of the
  window (dynamic program over the configuration table with a discretised budget).
* ``IdenticalOraclePolicy`` -- ORACLE over identical fleets only (a fleet scenario's reference).
* ``GreedyCarbonPolicy`` -- least carbon per request subject to the SLA, ignoring accuracy.
  **Hindsight**: it reads the same table as the oracle (documented choice, see its docstring).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from clover_rl.agents.annealing import OnlineSearchPolicy
from clover_rl.agents.base import BindablePolicy
from clover_rl.agents.planning import plan_budget
from clover_rl.scoring import carbon_g


class BasePolicy(BindablePolicy):
    """BASE: the largest variant on whole GPUs (``catalog.base_index``), every interval."""

    name = "base"

    def __init__(self, env: Any = None, *, seed: int = 0) -> None:
        self.seed = seed
        self.last_decision: dict[str, Any] = {}
        self._action: int | None = None
        if env is not None:
            self.bind(env)

    def bind(self, env: Any) -> None:
        super().bind(env)
        self._action = int(self.env.catalog.base_index)

    def reset(self) -> None:
        self.last_decision = {}

    def act(self, observation: np.ndarray, info: dict[str, Any]) -> int:
        if self._action is None:
            raise RuntimeError("base: bind(env) before act()")
        self.last_decision = {"policy": self.name, "reoptimized": False, "probes": 0,
                              "reason": "BASE never changes",
                              "config": self.env.catalog.configs[self._action].label()}
        return self._action


class RandomSearchPolicy(OnlineSearchPolicy):
    """RAND: candidates drawn like Clover's (a partition uniformly, then a variant per slice),
    but anywhere in the space rather than near an annealing centre."""

    name = "random"

    def _next(self, evaluated: set[int]) -> tuple[int | None, bool]:
        draw = self._draw(evaluated, 1)
        return (None, True) if draw is None else (int(draw[0]), False)


class _HindsightPolicy(BindablePolicy):
    """Reads ``env.config_table`` (the replay model's steady state): hindsight, no probes."""

    name = "hindsight"

    def __init__(self, env: Any = None, *, seed: int = 0) -> None:
        self.seed = seed
        self.last_decision: dict[str, Any] = {}
        if env is not None:
            self.bind(env)

    def reset(self) -> None:
        self.last_decision = {}

    def _choose(self) -> tuple[int, dict[str, Any]]:
        raise NotImplementedError

    def act(self, observation: np.ndarray, info: dict[str, Any]) -> int:
        if self.env is None:
            raise RuntimeError(f"{self.name}: bind(env) before act()")
        action, extra = self._choose()
        self.last_decision = {"policy": self.name, "reoptimized": True, "probes": 0, "hindsight": True,
                              "config": self.env.catalog.configs[action].label(), **extra}
        return action


class OraclePolicy(_HindsightPolicy):
    """ORACLE: the best configuration of every interval in hindsight, with no exploration cost.

    "Best" as for the paper's optimizer: the highest score among configurations whose
    steady-state p95 meets the SLA (the artifact never keeps an SLA-violating configuration as
    its best). The plain argmax would not do: the paper's SLA factor multiplies a *negative*
    score by SLA/p95 < 1, so whenever CI x PUE is above the reference a configuration that
    breaks the SLA badly looks better than one that meets it. Falls back to the plain argmax
    when no configuration meets the SLA.
    """

    name = "oracle"

    def _choose(self) -> tuple[int, dict[str, Any]]:
        env = self.env
        if env.objective.budgeted:
            return self._plan_window()
        tv = env.objective_table()
        scores = np.where(self._allowed(), tv.value, -np.inf)
        meets = np.isfinite(scores) & tv.meets_sla
        if meets.any():
            a = self._simplest_of_best(np.where(meets, scores, -np.inf), env.rate())
            reason = "hindsight best score within the SLA"
        else:
            a = self._simplest_of_best(scores, env.rate())
            reason = "no configuration meets the SLA in hindsight: best score"
        return a, {"reason": reason, "best_score": float(scores[a])}

    def _plan_window(self) -> tuple[int, dict[str, Any]]:
        """A carbon budget: the hindsight plan of the rest of the window (dynamic program over
        the carbon spent, :func:`plan_budget`), re-planned every interval with the budget
        actually left; the first action is served."""
        env, obj = self.env, self.env.objective
        step = env.step_index
        n = min(obj.steps_left(step), env.steps_per_episode - step)
        values, carbon = [], []
        for o in range(n):
            tv = env.objective_table(o)
            allowed = tv.allowed() & self._allowed()
            values.append(np.where(allowed, tv.value, -np.inf))
            carbon.append(np.where(allowed, tv.carbon_g, np.inf))
        spent = obj.budget_g - obj.left_g(step)
        plan, total = plan_budget(np.array(values), np.array(carbon), obj.budget_g,
                                  obj.overspend_penalty / obj.allowance_g, spent_g=spent)
        return int(plan[0]), {"reason": f"hindsight budget plan over the {n} interval(s) left in the window",
                              "plan_value": total, "budget_left_g": obj.budget_g - spent}

    def _allowed(self) -> np.ndarray:
        return self.env.action_masks()

    def _simplest_of_best(self, scores: np.ndarray, rate: float) -> int:
        """The argmax, ties (within 1e-9 relative) going to the simplest configuration: fewest
        idle slices (a slice whose variant serves no request adds nothing but a reconfiguration),
        then fewest distinct variants, then fewest slices, then catalog order."""
        best = float(np.max(scores))
        ties = np.flatnonzero(scores >= best - 1e-9 * max(1.0, abs(best)))
        if len(ties) == 1:
            return int(ties[0])
        env = self.env
        cfgs = env.catalog.configs

        def key(i: int) -> tuple[int, int, int, int]:
            share = env.model.steady_state(rate, cfgs[i]).interval(env.scenario.control_interval_s).variant_share
            idle = sum(1 for v in cfgs[i].variants if float((share or {}).get(v, 0.0)) <= 0.0)
            return idle, len(set(cfgs[i].variants)), len(cfgs[i].pairs), int(i)

        return int(min(ties, key=key))


class GreedyCarbonPolicy(_HindsightPolicy):
    """Least carbon per request whose steady-state p95 meets the SLA; accuracy ignored.

    Hindsight by choice: carbon per request is energy per request x CI x PUE, so its argmin does
    not depend on the intensity -- only on the load -- and an online variant would merely spend
    probes rediscovering the same configuration. The table is the replay model's, so this is the
    carbon-saving bound of an accuracy-blind controller, not something deployable as is.
    Falls back to the lowest-p95 configuration when none meets the SLA.
    """

    name = "greedy-carbon"

    def _choose(self) -> tuple[int, dict[str, Any]]:
        env = self.env
        table = env.config_table(env.rate())
        ok = env.action_masks() & np.isfinite(table.energy_per_request_j)
        meets = ok & (table.p95_ms <= env.reference.sla_ms)
        if meets.any():
            a = int(np.argmin(np.where(meets, table.energy_per_request_j, np.inf)))
            reason = "hindsight least carbon per request within the SLA"
        else:
            a = int(np.argmin(np.where(ok, table.p95_ms, np.inf)))
            reason = "no configuration meets the SLA in hindsight: lowest p95"
        cpr = carbon_g(float(table.energy_per_request_j[a]), env.intensity(), env.scenario.carbon.pue)
        return a, {"reason": reason, "carbon_per_request_g": cpr}


class IdenticalOraclePolicy(OraclePolicy):
    """ORACLE restricted to one configuration on every GPU (the paper's fleet): on a fleet
    scenario (:mod:`clover_rl.fleet`) the best identical fleet per interval in hindsight, so
    ``oracle`` minus ``oracle-identical`` is what heterogeneity gains; elsewhere the same as ORACLE."""

    name = "oracle-identical"

    def _allowed(self) -> np.ndarray:
        cat = self.env.catalog
        mask = self.env.action_masks()
        return mask & getattr(cat, "identical_mask", np.ones(len(mask), dtype=bool))
