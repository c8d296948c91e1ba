"""The live controller as a policy sees it: the :class:`~clover_rl.contracts.ControlContext`
answered from the deployment (the carbon reading, the measured rate, the configuration being
served, the controller's masks) instead of a trace, so any policy that runs in the environment
deploys unchanged.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from clover_rl.carbon.base import CarbonReading
from clover_rl.contracts import ProbeResult
from clover_rl.envs.actions import ActionCatalog
from clover_rl.mig.config import Configuration
from clover_rl.objectives import Objective, TableValues, objective_table
from clover_rl.scenario import Scenario
from clover_rl.scoring import ObjectiveReference
from clover_rl.service_model import ConfigTable, ServiceModel


class DeploymentContext:
    """Mixin of the ``Controller``: the policy-facing half (``ControlContext``).

    The host sets ``model``, ``current``, ``reading`` and ``measured_rate`` and provides
    ``mask()`` and ``probe()``.
    """

    model: ServiceModel
    current: int
    reading: CarbonReading | None
    measured_rate: float | None

    def _init_context(self, model: ServiceModel) -> None:
        self.model = model
        low, high = model.layout.bounds()
        self.observation_space = spaces.Box(low, high, dtype=np.float32)
        self.action_space = spaces.Discrete(len(model.catalog))
        self.observation_names = model.layout.names

    @property
    def catalog(self) -> ActionCatalog:
        return self.model.catalog

    @property
    def scenario(self) -> Scenario:
        return self.model.scenario

    @property
    def reference(self) -> ObjectiveReference:
        return self.model.reference

    @property
    def objective(self) -> Objective:
        """Scoring only: the controller does not book a carbon budget (yet)."""
        return self.model.objective

    @property
    def mean_rate(self) -> float:
        return self.model.mean_rate

    @property
    def step_index(self) -> int:
        return 0

    @property
    def steps_per_episode(self) -> int:
        return self.scenario.steps_per_episode

    @property
    def sla_ms(self) -> float:
        return self.model.sla_ms

    @property
    def configuration(self) -> Configuration:
        return self.catalog.configs[self.current]

    def intensity(self, offset: int = 0) -> float:
        """Grid intensity (g/kWh) now, or ``offset`` hours ahead from the reading's forecast."""
        r = self.reading
        if r is None:
            return float(self.scenario.objective.reference_intensity)
        if offset <= 0 or not r.forecast:
            return float(r.value)
        return float(r.forecast[min(offset, len(r.forecast)) - 1])

    def rate(self, offset: int = 0) -> float:
        """The request rate measured over the last interval (the scenario's mean before any)."""
        return max(float(self.measured_rate or self.model.mean_rate), 1e-6)

    def action_masks(self) -> np.ndarray:
        return self.mask()

    def mask(self) -> np.ndarray:  # provided by the controller
        raise NotImplementedError

    def probe(self, action: Any) -> ProbeResult:  # provided by the controller
        raise NotImplementedError

    def objective_table(self, offset: int = 0, *, rate_rps: float | None = None,
                        intensity: float | None = None) -> TableValues:
        """The objective over the configuration table at the measured load and the provider's
        intensity / forecast (:func:`clover_rl.objectives.objective_table`)."""
        return objective_table(self, offset, rate_rps=rate_rps, intensity=intensity)

    def config_table(self, rate_rps: float | None = None) -> ConfigTable:
        """The replay model's steady-state table (hindsight baselines only; estimated)."""
        return self.model.config_table(rate_rps if rate_rps is not None else self.rate())
