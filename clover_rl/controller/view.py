"""What a policy sees of a deployment: the slice of ``CloverServingEnv`` that policies use.

Policies are written against the environment (``catalog``, ``scenario``, ``reference``,
``configuration``, ``intensity()``, ``rate()``, ``action_masks()``, ``probe()``, and for the
hindsight baselines ``config_table()``). The view answers those from the live deployment --
the carbon reading, the measured request rate, the configuration being served, the
controller's masks -- so any policy that runs in the environment deploys unchanged.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from clover_rl.mig.config import Configuration

if TYPE_CHECKING:
    from clover_rl.controller.loop import Controller
    from clover_rl.envs.serving_env import CloverServingEnv


class DeploymentView:
    """Env-shaped facade over a running :class:`~clover_rl.controller.loop.Controller`."""

    def __init__(self, env: CloverServingEnv, controller: Controller) -> None:
        self._env = env
        self._ctl = controller
        self.scenario = env.scenario
        self.service = env.service
        self.gpu = env.gpu
        self.profile = env.profile
        self.catalog = env.catalog
        self.reference = env.reference
        self.sla_ms = env.sla_ms
        self.base_metrics = env.base_metrics
        self.layout = env.layout
        self.mean_rate = env.mean_rate
        self.model = env.model
        self.observation_space = env.observation_space
        self.action_space = env.action_space
        self.observation_names = env.observation_names
        self.objective = env.objective  # scoring only: the controller does not book a budget yet
        self.step_index = 0
        self.steps_per_episode = env.steps_per_episode

    @property
    def unwrapped(self) -> DeploymentView:
        return self

    @property
    def configuration(self) -> Configuration:
        return self.catalog.configs[self._ctl.current]

    def intensity(self, offset: int = 0) -> float:
        """Grid intensity (g/kWh) now, or ``offset`` hours ahead from the reading's forecast."""
        r = self._ctl.reading
        if r is None:
            return float(self.scenario.objective.reference_intensity)
        if offset <= 0 or not r.forecast:
            return float(r.value)
        return float(r.forecast[min(offset, len(r.forecast)) - 1])

    def rate(self, offset: int = 0) -> float:
        """The request rate measured over the last interval (the scenario's mean before any)."""
        return max(float(self._ctl.measured_rate or self.mean_rate), 1e-6)

    def action_masks(self) -> np.ndarray:
        return self._ctl.mask()

    def probe(self, action: Any) -> dict:
        return self._ctl.probe(action)

    def objective_table(self, offset: int = 0, *, rate_rps: float | None = None,
                        intensity: float | None = None) -> Any:
        """The objective over the configuration table at the measured load and the provider's
        intensity / forecast (:func:`clover_rl.objectives.objective_table`)."""
        from clover_rl.objectives import objective_table

        return objective_table(self, offset, rate_rps=rate_rps, intensity=intensity)

    def config_table(self, rate_rps: float | None = None) -> Any:
        """The replay model's steady-state table (hindsight baselines only; estimated)."""
        return self._env.config_table(rate_rps if rate_rps is not None else self.rate())
