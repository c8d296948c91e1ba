"""The reward and objective of one served interval, computed exactly as the environment does.

The live learner and the decision log must score a live interval with the same formula the
policy was trained on (``CloverServingEnv.step``): the paper's score for the interval's carbon
per request, accuracy and p95, minus the SLA, refusal and reconfiguration penalties.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from clover_rl.objective import ObjectiveReference, carbon_g, score, sla_penalty
from clover_rl.serving.metrics import IntervalMetrics


@dataclass(frozen=True)
class IntervalOutcome:
    reward: float
    objective: float
    delta_c: float
    delta_a: float
    sla_factor: float
    carbon_g: float
    carbon_per_request_g: float
    sla_violated: bool
    sla_penalty: float
    infeasible_penalty: float
    reconfig_penalty: float
    p95_over_sla: float  # the next observation's ratios, as the env computes them
    accuracy_over_base: float
    energy_over_base: float

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def interval_outcome(m: IntervalMetrics, *, intensity: float, pue: float, reference: ObjectiveReference,
                     sla_ms: float, base_energy_per_request_j: float, penalties: Any,
                     refused: bool = False, reconfigurations: int = 0) -> IntervalOutcome:
    """``CloverServingEnv.step``'s reward for metrics ``m`` served at ``intensity`` (g/kWh)."""
    cpr_basis = m.energy_per_request_j if m.served else m.energy_j
    s = score(carbon_g(cpr_basis, intensity, pue), m.accuracy if m.served else 0.0,
              m.p95_ms if m.served else 1e9, reference)
    viol = m.p95_ms > sla_ms
    sla_pen = sla_penalty(m.p95_ms, sla_ms, penalties.sla)
    inf_pen = penalties.infeasible if refused else 0.0
    rec_pen = penalties.reconfiguration * reconfigurations
    c_g = carbon_g(m.energy_j, intensity, pue)
    return IntervalOutcome(
        reward=float(s.value - sla_pen - inf_pen - rec_pen), objective=s.value, delta_c=s.delta_c,
        delta_a=s.delta_a, sla_factor=s.sla_factor, carbon_g=c_g,
        carbon_per_request_g=c_g / m.served if m.served else float("nan"), sla_violated=bool(viol),
        sla_penalty=-sla_pen, infeasible_penalty=-inf_pen, reconfig_penalty=-rec_pen,
        p95_over_sla=m.p95_ms / sla_ms,
        accuracy_over_base=m.accuracy / reference.a_base if m.served else 0.0,
        energy_over_base=(m.energy_per_request_j / base_energy_per_request_j) if m.served else 10.0,
    )


def env_outcome(env: Any, m: IntervalMetrics, intensity: float, refused: bool = False,
                reconfigurations: int = 0, penalties: Any = None) -> IntervalOutcome:
    """:func:`interval_outcome` with the references of a ``CloverServingEnv`` (and its penalties
    unless ``penalties`` is given, e.g. those a trained policy was trained with)."""
    sc = env.scenario
    return interval_outcome(m, intensity=intensity, pue=sc.carbon.pue, reference=env.reference,
                            sla_ms=env.sla_ms, base_energy_per_request_j=env.base_metrics.energy_per_request_j,
                            penalties=penalties if penalties is not None else sc.penalties, refused=refused,
                            reconfigurations=reconfigurations)


def training_penalties(policy: Any, default: Any) -> Any:
    """The reward penalties a trained policy was trained with (its run metadata), else ``default``:
    fine-tuning and the logged reward then optimise what the policy learned to optimise."""
    meta = getattr(policy, "metadata", None) or {}
    pen = (meta.get("scenario_config") or {}).get("penalties") if isinstance(meta, dict) else None
    if not isinstance(pen, dict):
        return default
    try:
        return type(default).model_validate({**default.model_dump(), **pen})
    except Exception:
        return default
