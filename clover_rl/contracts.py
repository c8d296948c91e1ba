"""Typed contracts between policies and what they control (as SB3's ``type_aliases``).

:class:`ControlContext` is what a policy may read and do, whoever runs it: the training /
evaluation environment (``CloverServingEnv``) and the live ``Controller`` both implement it,
so a policy written against the environment deploys unchanged and never probes ``Any``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, TypedDict, runtime_checkable

import numpy as np

if TYPE_CHECKING:  # type-only: these modules never import this one
    from gymnasium import spaces

    from clover_rl.envs.actions import ActionCatalog
    from clover_rl.mig.config import Configuration
    from clover_rl.objectives import Objective, TableValues
    from clover_rl.scenario import Scenario
    from clover_rl.scoring import ObjectiveReference, Score
    from clover_rl.service_model import ConfigTable, ServiceModel
    from clover_rl.serving.metrics import IntervalMetrics


class ProbeResult(TypedDict):
    """An optimizer's measurement of one candidate (paid for in the current interval)."""

    metrics: IntervalMetrics
    score: Score
    config: str  # label
    action: int


@runtime_checkable
class ControlContext(Protocol):
    """What a policy sees of the service it controls.

    Errors: ``probe`` raises ``ConfigError`` for a masked/infeasible candidate or when the
    interval's probe budget is spent; a candidate that cannot be brought up scores as an
    outage (``IntervalMetrics.nothing_served``), it does not raise.
    """

    model: ServiceModel
    observation_space: spaces.Box
    action_space: spaces.Discrete

    @property
    def catalog(self) -> ActionCatalog: ...

    @property
    def scenario(self) -> Scenario: ...

    @property
    def reference(self) -> ObjectiveReference: ...

    @property
    def objective(self) -> Objective: ...

    @property
    def mean_rate(self) -> float:
        """The workload's nominal rate (req/s)."""

    @property
    def step_index(self) -> int:
        """The current interval's index in the episode (0 in a deployment)."""

    @property
    def steps_per_episode(self) -> int: ...

    @property
    def configuration(self) -> Configuration:
        """The configuration being served now."""

    def intensity(self, offset: int = 0) -> float:
        """Grid intensity (g/kWh, without PUE) now, or ``offset`` intervals ahead (a forecast)."""

    def forecast(self) -> np.ndarray:
        """Forecast intensities (g/kWh, without PUE) for the next ``forecast_hours`` intervals,
        made now from the past only: the env's scenario forecaster; a deployment's provider
        forecast, completed by the online forecaster. Never the future of a replayed trace."""

    def past_intensities(self, n: int) -> np.ndarray:
        """Up to ``n`` hourly intensities (g/kWh) up to and including now, oldest first."""

    def rate(self, offset: int = 0) -> float:
        """Request rate (req/s) of the coming interval."""

    def action_masks(self) -> np.ndarray:
        """Bool mask over the catalog: the actions allowed now."""

    def probe(self, action: int | str | Configuration) -> ProbeResult:
        """Serve ``action`` for ``scenario.probe_s`` and score the window."""

    def config_table(self, rate_rps: float | None = None) -> ConfigTable:
        """The replay model's steady-state table (hindsight; baselines and the oracle only)."""

    def objective_table(self, offset: int = 0, *, rate_rps: float | None = None,
                        intensity: float | None = None) -> TableValues:
        """The objective over every configuration for interval ``offset`` (planners)."""


def context_of(env: Any) -> ControlContext:
    """The ``ControlContext`` behind ``env`` (unwrapping gymnasium wrappers); ``TypeError`` if
    ``env`` is not one."""
    inner = getattr(env, "unwrapped", env)
    if not isinstance(inner, ControlContext):
        raise TypeError(f"{type(inner).__name__} is not a ControlContext (an env or a Controller)")
    return inner
