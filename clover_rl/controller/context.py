"""The live controller as a policy sees it: the :class:`~clover_rl.contracts.ControlContext`
answered from the deployment (the carbon reading, the measured rate, the configuration being
served, the controller's masks) instead of a trace, so any policy that runs in the environment
deploys unchanged. The model's facts (catalog, scenario, reference, objective, ...) come from
:class:`~clover_rl.service_model.ModelContext`, shared with the environment.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from clover_rl.carbon.base import CarbonReading
from clover_rl.carbon.forecast import OnlineForecaster
from clover_rl.contracts import ProbeResult
from clover_rl.mig.config import Configuration
from clover_rl.objectives import TableValues, objective_table
from clover_rl.service_model import ConfigTable, ModelContext, ServiceModel

DEPLOYMENT_STEPS = 1 << 30
"""``steps_per_episode`` of a deployment: it has no episode end."""


class DeploymentContext(ModelContext):
    """The policy-facing half of the ``Controller`` (``ControlContext``).

    The host sets ``model``, ``current``, ``reading`` and ``measured_rate`` and provides
    ``mask()``, ``probe()`` and ``_next_index()``.
    """

    model: ServiceModel
    current: int
    reading: CarbonReading | None
    measured_rate: float | None
    _forecaster: OnlineForecaster

    def _init_context(self, model: ServiceModel) -> None:
        self.model = model
        self._init_spaces()

    @property
    def step_index(self) -> int:
        """The index of the interval being decided (a budget's windows count from the first)."""
        return self._next_index()

    @property
    def steps_per_episode(self) -> int:
        return DEPLOYMENT_STEPS

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

    def forecast(self) -> np.ndarray:
        """The reading's forecast (g/kWh): the provider's, completed by the online forecaster."""
        r = self.reading
        return np.asarray(r.forecast if r is not None else (), dtype=float)

    def past_intensities(self, n: int) -> np.ndarray:
        """The online forecaster's hourly history, ending with the intensity now."""
        past = self._forecaster.past(n)
        now = self.intensity()
        if past.size and self.reading is not None and not self.reading.stale:
            past[-1] = now  # the current hour's mean so far -> the reading now
            return past
        return np.append(past, now)[-n:]

    def rate(self, offset: int = 0) -> float:
        """The request rate measured over the last interval (the scenario's mean before any)."""
        return max(float(self.measured_rate or self.model.mean_rate), 1e-6)

    def action_masks(self) -> np.ndarray:
        return self.mask()

    def mask(self) -> np.ndarray:  # provided by the controller
        raise NotImplementedError

    def probe(self, action: Any) -> ProbeResult:  # provided by the controller
        raise NotImplementedError

    def _next_index(self) -> int:  # provided by the controller
        raise NotImplementedError

    def objective_table(self, offset: int = 0, *, rate_rps: float | None = None,
                        intensity: float | None = None) -> TableValues:
        """The objective over the configuration table at the measured load and the provider's
        intensity / forecast (:func:`clover_rl.objectives.objective_table`)."""
        return objective_table(self, offset, rate_rps=rate_rps, intensity=intensity)

    def config_table(self, rate_rps: float | None = None) -> ConfigTable:
        """The replay model's steady-state table (hindsight baselines only; estimated)."""
        return self.model.config_table(rate_rps if rate_rps is not None else self.rate())
