"""The ``pretrain:`` block of a training config (the imitation warm start of
:mod:`clover_rl.training.pretrain`): fields, defaults and their checks, kept apart from the
warm-start code so :mod:`clover_rl.training.config` can include it without importing the envs."""
from __future__ import annotations

from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from clover_rl.config_io import Count

Expert = Literal["mpc"]
#: Experts a policy may imitate: forecast-only controllers (no hindsight, no probing).
EXPERTS: tuple[str, ...] = get_args(Expert)


class PretrainConfig(BaseModel):
    """Behaviour cloning with DAgger rounds before PPO (absent or ``null``: PPO from scratch)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    expert: Expert = Field("mpc", description=(
        "Which controller to imitate: mpc, the forecast-driven planner (never hindsight)."))
    expert_kwargs: dict[str, Any] = Field(default_factory=dict, description=(
        "Arguments of the expert's constructor (mpc: horizon, switch_cost)."))
    rounds: Count = Field(3, description=(
        "Data-collection rounds: round 0 the expert alone, later rounds DAgger (learner rollouts "
        "labelled by the expert)."))
    episodes: Count = Field(24, description=(
        "Training episodes rolled out per round (each episode_hours of intervals)."))
    epochs: Count = Field(30, description="Passes over the aggregated data after each round.")
    batch_size: Count = Field(256, description="Minibatch size (intervals).")
    learning_rate: float = Field(1e-3, gt=0, le=1, description=(
        "Adam step size for the fit (its own optimiser; PPO's is untouched)."))
    value_coef: float = Field(0.5, ge=0, le=100, description=(
        "Weight of the value head's squared error against the discounted returns."))
    beta: float = Field(0.5, ge=0, le=1, description=(
        "Expert share of the actions in DAgger round k is beta ** k."))

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump()
