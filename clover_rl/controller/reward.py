"""The reward and objective of one served interval, computed exactly as the environment does.

The live learner and the decision log must score a live interval with the same formula the
policy was trained on (``CloverServingEnv.step``): the paper's score for the interval's carbon
per request, accuracy and p95, minus the SLA, refusal and reconfiguration penalties.
"""
from __future__ import annotations

from typing import Any

from clover_rl.objective import IntervalOutcome, interval_outcome
from clover_rl.serving.metrics import IntervalMetrics


def env_outcome(env: Any, m: IntervalMetrics, intensity: float, refused: bool = False,
                reconfigurations: int = 0, penalties: Any = None) -> IntervalOutcome:
    """:func:`interval_outcome` with the references of a ``CloverServingEnv`` (and its penalties
    unless ``penalties`` is given, e.g. those a trained policy was trained with)."""
    sc = env.scenario
    return interval_outcome(m, intensity=intensity, pue=sc.carbon.pue, objective=env.objective,
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
