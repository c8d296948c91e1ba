"""Helpers for the agent tests: a scripted stand-in for CloverServingEnv (real action catalog, scores we choose) so the
optimizers' budgets and stopping rules can be checked exactly, and a real-env episode runner."""
from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import numpy as np
from gymnasium import spaces

from clover_rl.envs.actions import ActionCatalog
from clover_rl.mig.catalog import get_gpu
from clover_rl.objectives import Objective
from clover_rl.scenario import load_scenario
from clover_rl.scoring import ObjectiveReference, carbon_g, score
from clover_rl.services import load_service

_CATALOG = ActionCatalog(get_gpu("a100-40gb"), load_service("efficientnet"))


class ScriptedEnv:
    """Probe-able ``ControlContext`` whose configuration figures (energy/request, accuracy, p95)
    are given by ``figures(action) -> (energy_j, accuracy, p95_ms)``; the intensity is set by the
    test. No replay model behind it (``model`` is None, ``config_table`` refuses)."""

    model = None

    def __init__(self, figures: Callable[[int], tuple[float, float, float]], intensity: float = 250.0,
                 probe_s: float = 30.0) -> None:
        self.catalog = _CATALOG
        self.scenario = load_scenario("efficientnet", probe_s=probe_s)
        self.figures = figures
        e0, a0, p0 = figures(self.catalog.base_index)
        self.reference = ObjectiveReference.from_base(e0, a0, p0, 0.1, 250.0, 1.5)
        self.objective = Objective(self.reference, self.scenario.control_interval_s)  # the paper's score
        self.mean_rate = self.scenario.build_workload().nominal_rate()
        self.step_index = 0
        self.steps_per_episode = self.scenario.steps_per_episode
        self.observation_space = spaces.Box(0.0, 1.0, (1,), dtype=np.float32)
        self.action_space = spaces.Discrete(len(self.catalog))
        self.ci = intensity
        self.current = self.catalog.base_index
        self.probes: list[int] = []  # every probe ever made, in order
        self.interval_probes = 0
        self.fail: set[int] = set()  # actions whose probe serves nothing

    @property
    def unwrapped(self) -> ScriptedEnv:
        return self

    @property
    def configuration(self):
        return self.catalog.configs[self.current]

    def intensity(self, offset: int = 0) -> float:
        return self.ci

    def forecast(self) -> np.ndarray:
        return np.full(self.scenario.carbon.forecast_hours, self.ci)

    def past_intensities(self, n: int) -> np.ndarray:
        return np.array([self.ci])

    def rate(self, offset: int = 0) -> float:
        return self.mean_rate

    def config_table(self, rate_rps: float | None = None) -> Any:
        raise NotImplementedError("ScriptedEnv has no replay model")

    def objective_table(self, offset: int = 0, **kw: Any) -> Any:
        raise NotImplementedError("ScriptedEnv has no replay model")

    def action_masks(self) -> np.ndarray:
        return self.catalog.feasible.copy()

    def probe(self, action: int) -> dict[str, Any]:
        assert self.catalog.feasible[action], "probed a masked configuration"
        self.probes.append(int(action))
        self.interval_probes += 1
        e, a, p95 = self.figures(int(action))
        if action in self.fail:  # served nothing (as the env scores it)
            m = SimpleNamespace(served=0, p95_ms=0.0, accuracy=0.0, energy_per_request_j=0.0, energy_j=50.0)
            s = score(carbon_g(50.0, self.ci, self.scenario.carbon.pue), 0.0, 1e9, self.reference)
            return {"metrics": m, "score": s, "action": int(action)}
        m = SimpleNamespace(served=100, p95_ms=p95, accuracy=a, energy_per_request_j=e, energy_j=100 * e)
        s = score(carbon_g(e, self.ci, self.scenario.carbon.pue), a, p95, self.reference)
        return {"metrics": m, "score": s, "action": int(action)}

    def serve(self, action: int) -> int:
        """End the interval serving ``action``; returns the probes it made."""
        self.current = int(action)
        n, self.interval_probes = self.interval_probes, 0
        return n


def smooth_figures(action: int) -> tuple[float, float, float]:
    """Deterministic, varied figures: smaller variants save energy and lose accuracy."""
    g = _CATALOG.graphs[action].reshape(len(_CATALOG.variants), len(_CATALOG.profiles))
    slots = g.sum()
    acc_v = np.array([79.0, 81.5, 83.5, 84.5])
    e_v = np.array([4.0, 6.0, 9.0, 14.0])
    acc = float((g.sum(axis=1) * acc_v).sum() / slots)
    energy = float((g.sum(axis=1) * e_v).sum() / slots) * (1.0 + 0.05 * slots) + 2.0
    p95 = 300.0 + 40.0 * float(g[:, :2].sum()) + (action % 7) * 5.0  # small slices are slower
    return energy, acc, p95


CATALOG = _CATALOG
