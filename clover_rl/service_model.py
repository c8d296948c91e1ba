"""``ServiceModel``: everything a scenario fixes about the controlled service, built once.

The environment (replay or live backend) and the live controller both stand on one model, so
the catalog, the references, the observation and the reward cannot drift apart:

- service, GPU, profile, ``catalog`` (``ActionCatalog``: the action space and its masks);
- ``replay``: the profile's replay model (a ``ReplayBackend``) for references and hindsight;
- ``workload`` (the scenario's, built once) and its nominal ``mean_rate``;
- ``base_metrics`` (BASE at the mean load), ``sla_ms`` (scenario value, else BASE's p95),
  ``reference`` and ``objective`` (pluggable; default the scenario's ``objective.kind``);
- ``layout`` and :meth:`observe` (the observation from readings);
- :meth:`score` / :meth:`outcome` (scalar: one interval) and :meth:`config_table` (vectorised
  over every configuration), all through ``clover_rl.scoring``.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from clover_rl.envs.actions import ActionCatalog
from clover_rl.envs.config_table import ConfigTable, build_config_table
from clover_rl.envs.observation import ObservationLayout, build_observation, graph_features
from clover_rl.errors import ConfigError
from clover_rl.mig.config import Configuration
from clover_rl.objectives import Objective, make_objective
from clover_rl.scenario import Scenario, load_scenario
from clover_rl.scoring import (
    IntervalOutcome,
    ObjectiveReference,
    Penalties,
    Score,
    interval_outcome,
    operating_point,
    score_metrics,
)
from clover_rl.serving.metrics import IntervalMetrics, merge_metrics
from clover_rl.serving.steady import SteadyState


@dataclass(frozen=True)
class LastRatios:
    """The observation's feedback from the previous interval (1.0 each before any)."""

    p95_over_sla: float = 1.0
    accuracy_over_base: float = 1.0
    energy_over_base: float = 1.0

    @staticmethod
    def of(outcome: IntervalOutcome) -> LastRatios:
        return LastRatios(outcome.p95_over_sla, outcome.accuracy_over_base, outcome.energy_over_base)


ObjectiveFactory = Callable[[ObjectiveReference, Scenario, float], Objective]


def scenario_objective(reference: ObjectiveReference, scenario: Scenario, nominal_rate_rps: float) -> Objective:
    """The objective the scenario's ``objective.kind`` names (``clover_rl.objectives``)."""
    return make_objective(scenario.objective, reference, interval_s=scenario.control_interval_s,
                          nominal_rate_rps=nominal_rate_rps)


class ServiceModel:
    """The scenario-bound model of the service (see the module docstring).

    ``objective_factory(reference, scenario, nominal_rate)`` builds the objective (default: the one the
    scenario's ``objective.kind`` names -- the paper's score, a carbon budget, an accuracy floor). Raises ``ConfigError`` when the profile does not match the
    scenario's service/GPU.
    """

    def __init__(self, scenario: Scenario, *, objective_factory: ObjectiveFactory = scenario_objective) -> None:
        from clover_rl.fleet.model import fleet_catalog, replay_backend

        self.scenario = sc = scenario
        self.service = sc.service_spec()
        self.gpu = sc.gpu_model()
        self.is_llm = sc.is_llm
        self.catalog = ActionCatalog.restricted(self.gpu, self.service, sc.allowed_layouts)
        self.workload = sc.build_workload()
        self.mean_rate = self.workload.nominal_rate()
        base_cfg = self.catalog.configs[self.catalog.base_index]
        #: Units of work per request: 1 (requests), or an LLM's mean output tokens per request
        #: (its metrics count tokens; rates stay requests/s, budgets convert with this).
        self.units_per_request = 1.0
        if self.is_llm:
            from clover_rl.llm.model import llm_replay

            self.profile = None
            self.replay = llm_replay(sc)
            self.units_per_request = self.replay.tokens_per_request
            self.tpot_sla_ms = self._llm_slas(base_cfg)
        else:
            self.profile = sc.load_profile()
            if self.profile.service != self.service.name or self.profile.gpu != self.gpu.name:
                raise ConfigError(
                    f"profile {self.profile.path or ''} is for {self.profile.service} on {self.profile.gpu}, "
                    f"scenario {sc.name} needs {self.service.name} on {self.gpu.name}"
                )
            self.replay = replay_backend(sc, self.service, self.profile, self.gpu, seed=0)  # per GPU with sc.fleet
        self.base_metrics = self.replay.steady_state(self.mean_rate, base_cfg).interval(sc.control_interval_s)
        self.sla_ms = float(sc.sla_ms or self.base_metrics.p95_ms)
        if sc.fleet is not None:  # a configuration per GPU (clover_rl.fleet): the fleet action space
            self.catalog = fleet_catalog(self.catalog, sc, self.replay, self.mean_rate, self.sla_ms)
        o = sc.objective
        self.reference = ObjectiveReference.from_base(self.base_metrics.energy_per_request_j,
                                                      self.base_metrics.accuracy, self.sla_ms, o.lam,
                                                      o.reference_intensity, o.reference_pue)
        self.objective: Objective = objective_factory(self.reference, sc, self.mean_rate * self.units_per_request)
        self.ci_ref = o.reference_intensity * o.reference_pue  # g/kWh x PUE the observation divides by
        self.layout = ObservationLayout(sc.carbon.forecast_hours, self.catalog.variants, self.catalog.profiles)
        self._tables: dict[float, ConfigTable] = {}
        self._graph_obs: np.ndarray | None = None  # graph_features of every action, built on first use

    def _llm_slas(self, base_cfg: Configuration) -> float:
        """Fix an LLM scenario's TTFT and TPOT SLAs (unset: BASE's p95s at the nominal load) on
        the replay model; returns the TPOT SLA (``sla_ms`` is the TTFT one)."""
        sc = self.scenario
        tpot = sc.llm.tpot_sla_ms if sc.llm else None
        if sc.sla_ms is None or tpot is None:
            base = self.replay.steady_state(self.mean_rate, base_cfg).interval(sc.control_interval_s).extra
            ttft, tpot = sc.sla_ms or base["ttft_p95_ms"], tpot or base["tpot_p95_ms"]
        else:
            ttft = sc.sla_ms
        self.replay.set_slas(ttft, tpot)
        return float(tpot)

    def replay_backend(self, *, seed: int = 0, **kwargs: Any) -> Any:
        """A fresh replay backend of this service (what the env's ``backend="replay"`` builds)."""
        sc = self.scenario
        if self.is_llm:
            from clover_rl.llm.model import llm_replay

            b = llm_replay(sc, reconfiguration=kwargs.pop("reconfiguration", None))
            if kwargs:
                raise ConfigError(f"LLM replay takes no backend options {sorted(kwargs)}")
            b.set_slas(self.sla_ms, self.tpot_sla_ms)
            return b
        from clover_rl.fleet.model import replay_backend

        kwargs.setdefault("reconfiguration", sc.reconfiguration)
        return replay_backend(sc, self.service, self.profile, self.gpu, seed=seed, **kwargs)  # per GPU: sc.fleet

    @classmethod
    def from_scenario(cls, scenario: str | Scenario, *, objective_factory: ObjectiveFactory = scenario_objective,
                      **overrides: Any) -> ServiceModel:
        """A shipped scenario name, a YAML path or a ``Scenario``; ``overrides`` replace fields."""
        return cls(load_scenario(scenario, **overrides), objective_factory=objective_factory)

    @property
    def pue(self) -> float:
        return self.scenario.carbon.pue

    # ------------------------------------------------------------------ observation
    def observe(self, *, ci_now: float, forecast: Any, rate_rps: float, last: LastRatios, config_index: int,
                hour_of_day: float, rate_trend: float = 0.0, budget_left: float = 1.0,
                window_left: float = 1.0) -> np.ndarray:
        """The observation vector (``layout``): intensities in g/kWh *without* PUE (the model
        applies PUE and the reference), the rate in req/s, ``last`` from the previous interval,
        the extra features of ``envs.observation.EXTRA_FEATURES``."""
        scale = self.pue / self.ci_ref
        if self._graph_obs is None:
            self._graph_obs = graph_features(self.catalog.graphs)
        return build_observation(
            self.layout,
            ci_now=ci_now * scale,
            forecast=np.asarray(forecast, dtype=float) * scale,
            rate_ratio=rate_rps / self.mean_rate,
            p95_over_sla=last.p95_over_sla,
            accuracy_over_base=last.accuracy_over_base,
            energy_over_base=last.energy_over_base,
            graph_obs=self._graph_obs[config_index],
            hour_of_day=hour_of_day,
            rate_trend=rate_trend,
            budget_left=budget_left,
            window_left=window_left,
        )

    # ------------------------------------------------------------------ scoring
    def score(self, m: IntervalMetrics, intensity: float) -> Score:
        """The objective of metrics ``m`` served at ``intensity`` g/kWh (scenario PUE)."""
        return score_metrics(m, intensity, self.pue, self.objective)

    def online_score(self, m: IntervalMetrics, intensity: float, rate_rps: float, step: int) -> Score:
        """What an online optimizer compares for a measured window at episode ``step`` (the
        objective's ``online_score``: under a budget, less the penalty of exceeding its pace)."""
        return self.objective.online_score(*operating_point(m, intensity, self.pue),
                                           rate_rps * self.units_per_request, step)

    def outcome(self, m: IntervalMetrics, intensity: float, *, refused: bool = False, reconfigurations: int = 0,
                penalties: Penalties | None = None) -> IntervalOutcome:
        """The reward of ``m`` (the scenario's penalties unless ``penalties`` is given)."""
        return interval_outcome(m, intensity=intensity, pue=self.pue, objective=self.objective, sla_ms=self.sla_ms,
                                base_energy_per_request_j=self.base_metrics.energy_per_request_j,
                                penalties=penalties if penalties is not None else self.scenario.penalties,
                                refused=refused, reconfigurations=reconfigurations)

    def merge(self, windows: list[IntervalMetrics]) -> IntervalMetrics:
        """One interval from consecutive windows (an optimizer's probes + the rest), as
        :func:`~clover_rl.serving.metrics.merge_metrics`; an LLM service's SLA-judged latency is
        then re-derived from the merged TTFT and TPOT percentiles."""
        if len(windows) == 1 and not self.is_llm and windows[0].duration_s > 0:
            return windows[0]  # what merge_metrics makes of one window (the env's every step without probes)
        m = merge_metrics(windows)
        if self.is_llm:
            from clover_rl.llm.replay import rebind

            m = rebind(m, self.sla_ms, self.tpot_sla_ms)
        return m

    # ------------------------------------------------------------------ replay model (hindsight)
    def steady_state(self, rate_rps: float, configuration: Configuration) -> SteadyState:
        """The replay model's long-run behaviour of ``configuration`` at ``rate_rps`` (estimated)."""
        return self.replay.steady_state(rate_rps, configuration)

    def config_table(self, rate_rps: float) -> ConfigTable:
        """Steady-state energy/accuracy/p95 of every configuration at ``rate_rps`` (cached per
        load level). Hindsight: for the oracle and analysis, never an online agent's decisions."""
        rate = float(rate_rps)
        key = round(rate, 6)
        if key not in self._tables:
            self._tables[key] = build_config_table(self.replay, self.catalog, rate, self.scenario.control_interval_s)
        return self._tables[key]

    def close(self) -> None:
        self.replay.close()


class ModelContext:
    """The facts a :class:`~clover_rl.contracts.ControlContext` answers from its ``model`` (the
    same in the environment and the live controller), and the gymnasium spaces of its layout."""

    model: ServiceModel

    def _init_spaces(self) -> None:
        from gymnasium import spaces

        low, high = self.model.layout.bounds()
        self.observation_space = spaces.Box(low, high, dtype=np.float32)
        self.action_space = spaces.Discrete(len(self.model.catalog))
        self.observation_names = self.model.layout.names

    @property
    def scenario(self) -> Scenario:
        return self.model.scenario

    @property
    def catalog(self) -> ActionCatalog:
        return self.model.catalog

    @property
    def reference(self) -> ObjectiveReference:
        return self.model.reference

    @property
    def objective(self) -> Objective:
        return self.model.objective

    @property
    def sla_ms(self) -> float:
        return self.model.sla_ms

    @property
    def base_metrics(self) -> IntervalMetrics:
        return self.model.base_metrics

    @property
    def mean_rate(self) -> float:
        return self.model.mean_rate

    @property
    def workload(self) -> Any:
        """The scenario's workload (``clover_rl.workload.Workload``)."""
        return self.model.workload

