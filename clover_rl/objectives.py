"""Operator objectives: what a controller maximises, selected by the scenario's ``objective.kind``.

* ``paper`` -- the Clover paper's score, unchanged (:func:`clover_rl.scoring.score`):
  ``lambda dC - (1 - lambda) dA``, x SLA/p95 when violated.
* ``carbon_budget`` -- a carbon budget ``B`` (g) per window of ``window_hours``; accuracy is
  maximised under it and the SLA. Interval value ``-dA = (A - A_base) / A_base`` minus
  ``overspend_penalty x (carbon spent beyond B in this interval) / (B / intervals per window)``.
  The penalties telescope: a window's mean value is its mean ``-dA`` minus
  ``overspend_penalty x max(0, S - B) / B`` (S = the window's carbon). ``B`` is ``budget_g``, or
  ``budget_fraction`` x what BASE emits in a window at the nominal load and the reference
  intensity (``C_ref x rate x window``: 0.6 = "40% below BASE on a 250 g/kWh grid").
* ``accuracy_floor`` -- carbon minimised while accuracy stays >= ``floor x A_base``: value
  ``dC - shortfall_penalty x max(0, floor x A_base - A) / A_base`` each interval.

SLA: the new objectives carry no SLA factor (it would reward violators, see the oracle); the
SLA is a constraint that the oracle, MPC and baselines respect and the RL reward penalises.
Every objective has one scalar form (an interval as served, which books the budget) and one
vectorised form over a configuration table (:meth:`Objective.table`): the same formulas.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from clover_rl.errors import ConfigError
from clover_rl.scoring import JOULES_PER_KWH, ObjectiveReference, Score, score
from clover_rl.scoring import scores as paper_scores

KINDS = ("paper", "carbon_budget", "accuracy_floor")


@dataclass(frozen=True)
class TableValues:
    """Per-configuration value and carbon (g) of one interval; ``ok`` = feasible, ``meets_sla``
    = feasible with a steady-state p95 within the SLA."""

    value: np.ndarray
    carbon_g: np.ndarray
    ok: np.ndarray
    meets_sla: np.ndarray

    def allowed(self) -> np.ndarray:
        """Where a planner may choose: within the SLA, or anything feasible if nothing is."""
        return self.meets_sla if self.meets_sla.any() else self.ok


class Objective:
    """The paper's score; base class of the operator objectives (stateless)."""

    kind = "paper"
    budgeted = False

    def __init__(self, ref: ObjectiveReference, interval_s: float, window_steps: int = 0) -> None:
        self.ref = ref
        self.interval_s = float(interval_s)
        self.window_steps = int(window_steps)

    # the clover_rl.scoring.Objective protocol
    @property
    def name(self) -> str:
        return self.kind

    @property
    def reference(self) -> ObjectiveReference:
        return self.ref

    def scores(self, carbon_per_request_g: np.ndarray, accuracy: np.ndarray, p95_ms: np.ndarray) -> np.ndarray:
        """Vectorised :meth:`score` values."""
        return np.asarray(self._values(np.asarray(carbon_per_request_g, dtype=float),
                                       np.asarray(accuracy, dtype=float), np.asarray(p95_ms, dtype=float)))

    # ----------------------------------------------------------- per configuration
    def table(self, energy_per_request_j: np.ndarray, accuracy: np.ndarray, p95_ms: np.ndarray,
              feasible: np.ndarray, intensity: float, pue: float, rate_rps: float) -> TableValues:
        """Value and carbon of every configuration for one interval (``-inf`` where infeasible)."""
        ok = feasible & np.isfinite(energy_per_request_j) & np.isfinite(p95_ms)
        e = np.where(ok, energy_per_request_j, 0.0)
        cpr = e / JOULES_PER_KWH * intensity * pue
        carbon = cpr * rate_rps * self.interval_s
        v = self._values(cpr, np.asarray(accuracy, dtype=float), np.where(ok, p95_ms, 1.0))
        meets = ok & (np.where(ok, p95_ms, np.inf) <= self.ref.sla_ms * (1 + 1e-9))
        return TableValues(np.where(ok, v, -np.inf), np.where(ok, carbon, np.inf), ok, meets)

    def _values(self, cpr: np.ndarray, acc: np.ndarray, p95: np.ndarray) -> np.ndarray:
        return paper_scores(cpr, acc, p95, self.ref)

    def myopic(self, tv: TableValues, step: int | None = None) -> np.ndarray:
        """What an interval-by-interval optimizer maximises at episode step ``step`` (a budget:
        paced evenly over the rest of its window)."""
        return tv.value

    # ----------------------------------------------------------- one interval as served
    def score(self, carbon_per_request_g: float, accuracy: float, p95_ms: float) -> Score:
        """The interval score of a measurement (no booking): ``value`` is what is maximised."""
        s = score(carbon_per_request_g, accuracy, p95_ms, self.ref)
        if self.kind == "paper":
            return s
        v = float(self._values(np.array([carbon_per_request_g]), np.array([accuracy]), np.array([p95_ms]))[0])
        return replace(s, raw=v, sla_factor=1.0, value=v)

    def online_score(self, carbon_per_request_g: float, accuracy: float, p95_ms: float,
                     rate_rps: float, step: int) -> Score:
        """What an online optimizer compares for a measurement at episode step ``step``: the
        interval score, and under a budget less the penalty of exceeding an even pace."""
        s = self.score(carbon_per_request_g, accuracy, p95_ms)
        if not self.budgeted:
            return s
        carbon = carbon_per_request_g * rate_rps * self.interval_s
        tv = TableValues(np.array([s.value]), np.array([carbon]), np.array([True]), np.array([True]))
        return replace(s, value=float(self.myopic(tv, step)[0]))

    def reset(self) -> None:
        """A new episode (the budget ledger restarts)."""

    def book(self, step: int, carbon_g: float, value: float) -> tuple[float, dict[str, float]]:
        """Book interval ``step`` (0-based in the episode) that emitted ``carbon_g`` and scored
        ``value``; its objective value (a budget: less the overspend penalty) and parts for info."""
        return value, {}

    def features(self, step: int) -> tuple[float, float]:
        """(budget left, window left) as fractions, for the observation (1, 1 without a budget)."""
        return 1.0, 1.0

    def ledger(self) -> tuple[int, float] | None:
        """(window index, grams spent in it): what a restarted deployment restores; None
        for an objective without a budget."""
        return None

    def restore(self, window: int, spent_g: float) -> None:
        """Resume a :meth:`ledger` (no-op without a budget)."""


class AccuracyFloor(Objective):
    kind = "accuracy_floor"

    def __init__(self, ref: ObjectiveReference, interval_s: float, floor: float,
                 shortfall_penalty: float) -> None:
        super().__init__(ref, interval_s)
        self.floor_accuracy = floor * ref.a_base
        self.shortfall_penalty = shortfall_penalty

    def _values(self, cpr: np.ndarray, acc: np.ndarray, p95: np.ndarray) -> np.ndarray:
        r = self.ref
        short = np.maximum(0.0, self.floor_accuracy - acc) / r.a_base
        return (r.c_ref_g - cpr) / r.c_ref_g - self.shortfall_penalty * short


class CarbonBudget(Objective):
    kind = "carbon_budget"
    budgeted = True

    def __init__(self, ref: ObjectiveReference, interval_s: float, window_steps: int, budget_g: float,
                 overspend_penalty: float) -> None:
        super().__init__(ref, interval_s, window_steps)
        if not budget_g > 0:
            raise ConfigError(f"objective: the carbon budget must be > 0 g (got {budget_g})")
        self.budget_g = float(budget_g)
        self.allowance_g = self.budget_g / self.window_steps
        self.overspend_penalty = float(overspend_penalty)
        self.spent_g = 0.0
        self._window = -1

    def _values(self, cpr: np.ndarray, acc: np.ndarray, p95: np.ndarray) -> np.ndarray:
        return (acc - self.ref.a_base) / self.ref.a_base

    def reset(self) -> None:
        self.spent_g = 0.0
        self._window = -1

    def _roll(self, step: int) -> None:
        w = step // self.window_steps
        if w != self._window:
            self._window, self.spent_g = w, 0.0

    def left_g(self, step: int) -> float:
        self._roll(step)
        return self.budget_g - self.spent_g

    def ledger(self) -> tuple[int, float] | None:
        return self._window, self.spent_g

    def restore(self, window: int, spent_g: float) -> None:
        self._window, self.spent_g = int(window), float(spent_g)

    def steps_left(self, step: int) -> int:
        """Intervals left in the window, this one included."""
        return self.window_steps - step % self.window_steps

    def penalty(self, overspend_g: float) -> float:
        return self.overspend_penalty * overspend_g / self.allowance_g

    def book(self, step: int, carbon_g: float, value: float) -> tuple[float, dict[str, float]]:
        self._roll(step)
        before = max(0.0, self.spent_g - self.budget_g)
        self.spent_g += carbon_g
        over = max(0.0, self.spent_g - self.budget_g) - before
        pen = self.penalty(over)
        return value - pen, {"budget_g": self.budget_g, "budget_spent_g": self.spent_g,
                               "budget_left_frac": 1.0 - self.spent_g / self.budget_g,
                               "overspend_g": over, "overspend_penalty": pen}

    def features(self, step: int) -> tuple[float, float]:
        left = self.left_g(step) / self.budget_g
        return float(np.clip(left, 0.0, 10.0)), self.steps_left(step) / self.window_steps

    def myopic(self, tv: TableValues, step: int | None = None) -> np.ndarray:
        """Accuracy, less the overspend penalty against an even pace over the rest of the window."""
        if step is None:
            return tv.value
        pace = max(self.left_g(step), 0.0) / self.steps_left(step)
        return tv.value - self.penalty(np.maximum(0.0, np.where(tv.ok, tv.carbon_g, 0.0) - pace))


def make_objective(spec: Any, ref: ObjectiveReference, *, interval_s: float, nominal_rate_rps: float) -> Objective:
    """The objective of a scenario's ``objective`` block (``ObjectiveSpec``)."""
    kind = getattr(spec, "kind", "paper")
    if kind == "paper":
        return Objective(ref, interval_s)
    if kind == "accuracy_floor":
        return AccuracyFloor(ref, interval_s, float(spec.floor), float(spec.shortfall_penalty))
    if kind == "carbon_budget":
        steps = max(1, int(round(spec.window_hours * 3600.0 / interval_s)))
        budget = spec.budget_g
        if budget is None:
            budget = spec.budget_fraction * ref.c_ref_g * nominal_rate_rps * steps * interval_s
        return CarbonBudget(ref, interval_s, steps, float(budget), float(spec.overspend_penalty))
    raise ConfigError(f"objective.kind: expected one of {', '.join(KINDS)} (got {kind!r})")


def table_rate(rate_rps: float, nominal_rps: float, rel: float = 0.10) -> float:
    """``rate_rps`` rounded *up* to a grid ``rel`` apart (log-spaced, through the nominal rate):
    steady-state tables are costly per load level (seconds each), so planners share them between
    close loads, and judge latency at a load no lower than the real one."""
    if rate_rps <= 0 or nominal_rps <= 0:
        return max(rate_rps, 1e-6)
    k = math.ceil(math.log(rate_rps / nominal_rps) / math.log1p(rel) - 1e-9)
    return nominal_rps * math.exp(k * math.log1p(rel))


def objective_table(env: Any, offset: int = 0, *, rate_rps: float | None = None,
                    intensity: float | None = None) -> TableValues:
    """The objective's value and carbon of every configuration of ``env`` (the env or a
    deployment view) for interval ``offset``, from the replay model's steady state at the
    interval's load (on the :func:`table_rate` grid) and intensity -- hindsight in replay, unless
    a forecast ``rate_rps`` / ``intensity`` is given, as a model-predictive controller does."""
    rate = env.rate(offset) if rate_rps is None else float(rate_rps)
    table = env.config_table(table_rate(rate, env.mean_rate))
    ci = env.intensity(offset) if intensity is None else float(intensity)
    units = float(getattr(getattr(env, "model", None), "units_per_request", 1.0))  # LLM: tokens/request
    return env.objective.table(table.energy_per_request_j, table.accuracy, table.p95_ms,
                               table.feasible & env.catalog.feasible, ci, env.scenario.carbon.pue, rate * units)
