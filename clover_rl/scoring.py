"""Scoring: the paper's score, the RL reward built on it, and the pluggable objective interface.

One implementation, used by the environment, the live controller, the config tables of the
hindsight baselines and the optimizers (``ServiceModel`` wires it to a scenario).

Paper score (Li et al., SC'23, and its artifact)::

    score = lambda * dC - (1 - lambda) * dA
    dC = (C_ref - C) / C_ref   C = carbon per request now, C_ref = BASE's carbon per request at
                               the reference intensity (paper: 250 g/kWh x PUE 1.5)
    dA = (A_base - A) / A_base

and, when p95 > SLA, the score multiplied by SLA / p95 (as in the artifact; this shrinks a
negative score toward zero, which is why the RL reward adds its own SLA penalty).

Sign conventions: ``sla_penalty`` and ``PenaltySpec`` weights are positive *costs*; the
``reward_*`` fields of :class:`IntervalOutcome` (and of the env's ``info``) are the signed
*contributions* to the reward (<= 0 for penalties), so ``reward`` is their sum.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from clover_rl.serving.metrics import IntervalMetrics

JOULES_PER_KWH = 3.6e6
NOTHING_SERVED_P95_MS = 1e9
"""p95 the score uses for an interval with nothing served: the SLA factor then drives the
score to ~0 (no credit), and the RL reward's SLA penalty (from the interval's own p95, the
timeout) makes the interval cost."""


def carbon_g(energy_j: Any, intensity_g_per_kwh: float, pue: float = 1.0) -> Any:
    """Carbon (g) = energy (J) / 3.6e6 x CI (g/kWh) x PUE; works on floats and arrays."""
    return energy_j / JOULES_PER_KWH * intensity_g_per_kwh * pue


@dataclass(frozen=True)
class ObjectiveReference:
    c_ref_g: float  # BASE carbon per request at the reference intensity
    a_base: float  # BASE accuracy
    sla_ms: float
    lam: float = 0.1

    @staticmethod
    def from_base(base_energy_per_request_j: float, a_base: float, sla_ms: float, lam: float = 0.1,
                  reference_intensity: float = 250.0, reference_pue: float = 1.5) -> ObjectiveReference:
        c_ref = carbon_g(base_energy_per_request_j, reference_intensity, reference_pue)
        return ObjectiveReference(c_ref, a_base, sla_ms, lam)


@dataclass(frozen=True)
class Score:
    delta_c: float
    delta_a: float
    raw: float  # before the SLA factor
    sla_factor: float  # 1, or SLA/p95 when violated
    value: float

    def to_dict(self) -> dict:
        return asdict(self)


def _paper_terms(cpr: Any, acc: Any, p95: Any, ref: ObjectiveReference) -> tuple[Any, Any, Any, Any, Any]:
    """(dC, dA, raw, factor, value) -- elementwise on floats or equally shaped arrays."""
    dc = (ref.c_ref_g - cpr) / ref.c_ref_g
    da = (ref.a_base - acc) / ref.a_base
    raw = ref.lam * dc - (1.0 - ref.lam) * da
    if isinstance(p95, float):  # one interval (the env scores one per step): the same IEEE operations
        factor = ref.sla_ms / max(p95, 1e-12) if p95 > ref.sla_ms else 1.0
    else:
        factor = np.where(np.greater(p95, ref.sla_ms), ref.sla_ms / np.maximum(p95, 1e-12), 1.0)
    return dc, da, raw, factor, raw * factor


def score(carbon_per_request_g: float, accuracy: float, p95_ms: float, ref: ObjectiveReference) -> Score:
    """The paper's score of one operating point (see the module docstring)."""
    dc, da, raw, factor, value = _paper_terms(float(carbon_per_request_g), float(accuracy), float(p95_ms), ref)
    return Score(float(dc), float(da), float(raw), float(factor), float(value))


def scores(carbon_per_request_g: np.ndarray, accuracy: np.ndarray, p95_ms: np.ndarray,
           ref: ObjectiveReference) -> np.ndarray:
    """Vectorised :func:`score` values (shape of the inputs)."""
    return np.asarray(_paper_terms(carbon_per_request_g, accuracy, p95_ms, ref)[4], dtype=float)


@runtime_checkable
class Objective(Protocol):
    """What a control objective provides: the scalar score of one interval's operating point
    and the same formula vectorised over configurations (for tables, oracles, optimizers).

    ``clover_rl.objectives.Objective`` (the paper's score) and its operator objectives (a
    carbon budget, an accuracy floor) implement it, on top of the functions here.
    """

    name: str
    reference: ObjectiveReference

    def score(self, carbon_per_request_g: float, accuracy: float, p95_ms: float) -> Score: ...

    def scores(self, carbon_per_request_g: np.ndarray, accuracy: np.ndarray, p95_ms: np.ndarray) -> np.ndarray: ...


def operating_point(m: IntervalMetrics, intensity: float, pue: float) -> tuple[float, float, float]:
    """(carbon per request g, accuracy, p95 ms) that an objective scores for interval ``m``.

    With nothing served the interval gets no credit: its whole energy counts as the carbon
    per request, accuracy 0 and p95 :data:`NOTHING_SERVED_P95_MS`.
    """
    if m.served:
        return carbon_g(m.energy_per_request_j, intensity, pue), m.accuracy, m.p95_ms
    return carbon_g(m.energy_j, intensity, pue), 0.0, NOTHING_SERVED_P95_MS


def score_metrics(m: IntervalMetrics, intensity: float, pue: float, objective: Objective) -> Score:
    """The objective of a served interval at ``intensity`` (g/kWh) and ``pue``."""
    return objective.score(*operating_point(m, intensity, pue))


def sla_penalty(p95_ms: float, sla_ms: float, weight: float) -> float:
    """The RL reward's SLA *cost* (>= 0): ``weight * (1 + min(p95/SLA - 1, 10))`` when violated.

    A fixed part as well as a proportional one: a policy must not learn that breaking the SLA
    by a few percent is nearly free (the paper's SLA/p95 factor even rewards it when scores are
    negative), so every violating interval costs at least ``weight``.
    """
    if p95_ms <= sla_ms:
        return 0.0
    return weight * (1.0 + min(p95_ms / sla_ms - 1.0, 10.0))


class Penalties(Protocol):
    """Reward penalty weights (``scenario.PenaltySpec``): positive costs."""

    sla: float
    infeasible: float
    reconfiguration: float


@dataclass(frozen=True)
class IntervalOutcome:
    """The reward of one served interval and what the next observation reads from it.

    ``reward = objective + reward_sla_penalty + reward_infeasible_penalty + reward_reconfig_penalty``
    (the three ``reward_*`` penalty contributions are <= 0).
    """

    reward: float
    objective: float
    delta_c: float
    delta_a: float
    sla_factor: float
    carbon_g: float
    carbon_per_request_g: float
    sla_violated: bool
    reward_sla_penalty: float
    reward_infeasible_penalty: float
    reward_reconfig_penalty: float
    p95_over_sla: float  # the next observation's ratios
    accuracy_over_base: float
    energy_over_base: float

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def interval_outcome(m: IntervalMetrics, *, intensity: float, pue: float, objective: Objective, sla_ms: float,
                     base_energy_per_request_j: float, penalties: Penalties, refused: bool = False,
                     reconfigurations: int = 0) -> IntervalOutcome:
    """Reward of metrics ``m`` served at ``intensity`` (g/kWh): the objective minus the SLA cost
    (from ``m.p95_ms``), ``penalties.infeasible`` if the action was refused and
    ``penalties.reconfiguration`` per counted reconfiguration."""
    s = score_metrics(m, intensity, pue, objective)
    sla_cost = sla_penalty(m.p95_ms, sla_ms, penalties.sla)
    inf_cost = penalties.infeasible if refused else 0.0
    rec_cost = penalties.reconfiguration * reconfigurations
    c_g = carbon_g(m.energy_j, intensity, pue)
    return IntervalOutcome(
        reward=float(s.value - sla_cost - inf_cost - rec_cost), objective=s.value, delta_c=s.delta_c,
        delta_a=s.delta_a, sla_factor=s.sla_factor, carbon_g=c_g,
        carbon_per_request_g=c_g / m.served if m.served else float("nan"), sla_violated=bool(m.p95_ms > sla_ms),
        reward_sla_penalty=-sla_cost, reward_infeasible_penalty=-inf_cost, reward_reconfig_penalty=-rec_cost,
        p95_over_sla=m.p95_ms / sla_ms,
        accuracy_over_base=m.accuracy / objective.reference.a_base if m.served else 0.0,
        energy_over_base=(m.energy_per_request_j / base_energy_per_request_j) if m.served else 10.0,
    )
