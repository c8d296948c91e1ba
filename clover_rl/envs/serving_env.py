"""CloverServingEnv: carbon-aware MIG configuration of an inference service, one hour a step.

The env is a ``ServiceModel`` (catalog, references, observation, scoring) + a ``Backend`` +
episode state (trace window, time, load scale, last ratios); it has no reward code of its own.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np

from clover_rl.carbon.base import CarbonTrace
from clover_rl.carbon.forecast import Forecast, forecast_for
from clover_rl.carbon.resolve import resolve_trace
from clover_rl.contracts import ProbeResult
from clover_rl.envs.config_table import ConfigTable
from clover_rl.envs.randomization import Randomization, load_levels, snap_up
from clover_rl.errors import ConfigError
from clover_rl.mig.config import Configuration
from clover_rl.objectives import TableValues, objective_table
from clover_rl.scenario import Scenario
from clover_rl.service_model import LastRatios, ModelContext, ServiceModel
from clover_rl.serving.backend import Backend
from clover_rl.serving.metrics import IntervalMetrics
from clover_rl.workload.build import workload_from_config
from clover_rl.workload.workload import DiurnalRate, Workload

__all__ = ["CloverServingEnv", "ConfigTable", "Randomization"]


@dataclass
class _Probes:
    """Optimizer windows served so far in the current interval."""

    windows: list[IntervalMetrics] = field(default_factory=list)
    changes: int = 0


class CloverServingEnv(ModelContext, gym.Env[np.ndarray, np.int64]):
    """
    ## Description
    An inference service (a `ServiceSpec`: EfficientNet, YOLOv5, ALBERT or your own) runs on
    `gpus` NVIDIA GPUs split into MIG slices. Every control interval (default one hour) the
    agent picks one configuration -- a MIG partition plus a model variant per slice, applied
    to every GPU as in the Clover paper -- while the grid's carbon intensity follows a trace.
    The backend serves the interval (trace replay: profile + simulator; live: real workers).

    ## Action Space
    `Discrete(n)` over the unique configurations of one GPU in the paper's canonical graph
    form (1282 for A100-40GB with 4 variants). `action_masks()` marks the configurations
    whose models fit their slices' memory. `step()` accepts any action: an infeasible one is
    refused (no change, a penalty, `info["refused"] = True`).

    ## Observation Space
    A flat float32 `Box` (see `observation_names`): carbon intensity now and its forecast for
    the next `forecast_hours` intervals by the scenario's `carbon.forecaster`, which reads only
    the past (`forecast()`; CI x PUE over the reference 250 g/kWh x 1.5), request rate over the scenario's mean,
    last p95 over the SLA, last accuracy over BASE's, last energy per request over BASE's, the
    current configuration's graph edge counts / 7, and the hour of day as sin/cos.

    ## Rewards
    The paper's score `lambda*dC - (1-lambda)*dA` (x SLA/p95 when violated) for the interval
    actually served (including any optimizer probes and the reconfiguration downtime, whose
    queued requests are accounted), minus `penalties.sla * (1 + min(p95/SLA - 1, 10))` when the SLA
    is violated, `penalties.infeasible` for a refused action and `penalties.reconfiguration`
    per counted reconfiguration (a failed apply counts none and keeps the served configuration,
    `info["reconfig_failed"]`). Every component is in `info`; the formula lives in
    `clover_rl.scoring`, wired by the `ServiceModel` (`env.model`).

    ## Starting State
    BASE (largest variant on whole GPUs) at a window start drawn from `self.np_random`
    (or `options={"start": i}`), and a load scale drawn from the randomisation range.

    ## Episode End
    Never `terminated`; `truncated` after `episode_hours` intervals (the trace window ends).

    ## Arguments
    `scenario` (shipped name, YAML path, `Scenario`, or a built `ServiceModel`), `backend` ("replay" | "live" | a
    `Backend`), `carbon_trace` (replaces the scenario's trace: a trace spec
    `NAME|FILE[,column=..][,time_column=..][,unit=..]`, a mapping with those keys, or a
    `CarbonTrace`; the same forms work in `reset(options={"trace": ...})`),
    `trace_period` ("train" | "eval" | "all"), `episode_hours`,
    `randomization` (dict, see `Randomization`), `backend_kwargs`, and scenario field overrides.

    ## Version History
    * v0: initial version.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 1}

    def __init__(
        self,
        scenario: str | Scenario | ServiceModel = "efficientnet",
        *,
        backend: str | Backend = "replay",
        carbon_trace: str | CarbonTrace | None = None,
        trace_period: str | None = None,
        episode_hours: int | None = None,
        randomization: dict | Randomization | None = None,
        backend_kwargs: dict | None = None,
        render_mode: str | None = None,
        device: str | None = None,
        interval_s: float | None = None,
        **overrides: Any,
    ) -> None:
        backend_kwargs = dict(backend_kwargs or {})
        if device is not None:
            backend_kwargs["device"] = device
        if interval_s is not None:
            overrides["control_interval_s"] = interval_s
        if episode_hours is not None:
            overrides["episode_hours"] = episode_hours
        if isinstance(scenario, ServiceModel):
            if overrides:
                raise ConfigError(f"scenario overrides {sorted(overrides)} cannot change a built ServiceModel")
            self.model = scenario
        else:
            self.model = ServiceModel.from_scenario(scenario, **overrides)
        sc = self.model.scenario
        self.randomization = (randomization if isinstance(randomization, Randomization)
                              else Randomization.from_dict(randomization))
        period = trace_period or sc.carbon.period
        self._trace = resolve_trace(carbon_trace or sc.carbon.trace_spec(), period, sc.control_interval_s)
        self._pool: list[CarbonTrace] = [self._trace]
        if self.randomization and self.randomization.traces:
            self._pool = [resolve_trace(t, self.randomization.period, sc.control_interval_s)
                          for t in self.randomization.traces]
        self.render_mode = render_mode
        self.backend: Backend = self._make_backend(backend, backend_kwargs)

        self._init_spaces()

        self._episode_trace = self._trace
        self._t0 = 0
        self._t = 0
        self._rate_scale = 1.0
        self._episode_workload: Workload = self.model.workload
        self._current = self.catalog.base_index
        self._last = LastRatios()
        self._probes = _Probes()
        self._forecasts: dict[int, tuple[CarbonTrace, Forecast]] = {}  # by trace object
        self._levels: np.ndarray | None = None  # randomization.snap_rate's load levels (req/s)
        self._hours: tuple[CarbonTrace, np.ndarray] | None = None  # (trace, hour of day per interval)
        self._rates: dict[int, float] = {}  # rate() by episode interval (the episode's workload and scale)
        self._steps = self.scenario.steps_per_episode
        self._time_labels: tuple[CarbonTrace | None, dict[int, str]] = (None, {})  # info["time"] per trace
        self._labels: dict[int, str] = {}  # info["config"] by action

    # ------------------------------------------------------------------ helpers
    def _make_backend(self, backend: str | Backend, kwargs: dict) -> Backend:
        if not isinstance(backend, str):
            return backend
        m, sc = self.model, self.model.scenario
        if backend == "replay":
            return m.replay_backend(seed=int(kwargs.pop("seed", 0)), **kwargs)
        if sc.fleet is not None:
            raise ConfigError(f"scenario {sc.name} has a fleet (a configuration per GPU): backend 'replay', "
                              "or a fleet plane passed as a Backend")
        if backend == "live":
            from clover_rl.serving.live.backend import LiveBackend

            kwargs.setdefault("max_queue_wait_s", sc.timeout_s)  # outage latency as in replay
            return LiveBackend(m.service, m.gpu, sc.gpus, **kwargs)
        raise ConfigError(f"unknown backend {backend!r} (replay, live)")

    @property
    def steps_per_episode(self) -> int:
        return self._steps

    @property
    def configuration(self) -> Configuration:
        return self.catalog.configs[self._current]

    @property
    def trace(self) -> CarbonTrace:
        return self._episode_trace

    def intensity(self, offset: int = 0) -> float:
        """Grid intensity (g/kWh, without PUE) at the current interval + ``offset``."""
        vals = self._episode_trace.values
        return float(vals[min(self._t + offset, len(vals) - 1)])

    def forecast(self) -> np.ndarray:
        """Forecast intensities (g/kWh, without PUE) for the next ``forecast_hours`` intervals,
        made at the current interval by the scenario's forecaster from the past only (see
        clover_rl.carbon.forecast); the observation's forecast features."""
        tr = self._episode_trace
        if id(tr) not in self._forecasts:  # entries hold their trace, so ids are not reused
            if len(self._forecasts) > len(self._pool) + 1:
                self._forecasts.clear()
            sc = self.scenario.carbon
            self._forecasts[id(tr)] = (tr, forecast_for(tr, sc.forecast_hours, sc.forecaster))
        return self._forecasts[id(tr)][1].values[min(self._t, len(tr) - 1)]

    def past_intensities(self, n: int) -> np.ndarray:
        """The last ``n`` intensities (g/kWh) up to and including the current interval (the
        trace's history before the episode counts too): what a forecaster may read."""
        vals = self._episode_trace.values
        return np.asarray(vals[max(0, self._t + 1 - n): self._t + 1], dtype=float)

    def rate(self, offset: int = 0) -> float:
        """Mean request rate (req/s) of the current interval + ``offset`` (the episode's workload)."""
        i = self._t - self._t0 + offset
        hit = self._rates.get(i)  # the env asks ~4 times per step; forgotten at reset
        if hit is None:
            hit = self._rates[i] = self._rate_at(i)
        return hit

    def _rate_at(self, i: int) -> float:
        step = self.scenario.control_interval_s
        t0 = i * step
        rate = max(self._episode_workload.mean_rate(t0, t0 + step) * self._rate_scale, 1e-6)
        if self.randomization and self.randomization.snap_rate:
            if self._levels is None:
                self._levels = load_levels(self.mean_rate)
            return snap_up(rate, self._levels)
        return rate

    @property
    def step_index(self) -> int:
        """The current interval's index in the episode (0-based)."""
        return self._t - self._t0

    def objective_table(self, offset: int = 0, *, rate_rps: float | None = None,
                        intensity: float | None = None) -> TableValues:
        """The objective's value and carbon of every configuration for interval ``offset``
        (:func:`clover_rl.objectives.objective_table`; hindsight unless ``rate_rps`` and
        ``intensity`` are forecasts)."""
        return objective_table(self, offset, rate_rps=rate_rps, intensity=intensity)

    def _hour(self, offset: int = 0) -> float:
        tr = self._episode_trace
        if self._hours is None or self._hours[0] is not tr:  # hours of the day, once per trace
            self._hours = (tr, (tr.times - tr.times.astype("datetime64[D]")) / np.timedelta64(1, "h"))
        hours = self._hours[1]
        return float(hours[min(self._t + offset, len(hours) - 1)])

    def _time_label(self) -> str:
        """``str`` of the current interval's timestamp (kept per trace: info carries it every step)."""
        tr = self._episode_trace
        if self._time_labels[0] is not tr:
            self._time_labels = (tr, {})
        labels = self._time_labels[1]
        text = labels.get(self._t)
        if text is None:
            text = labels[self._t] = str(tr.times[self._t])
        return text

    def _config_label(self) -> str:
        text = self._labels.get(self._current)
        if text is None:
            text = self._labels[self._current] = self.configuration.label()
        return text

    def config_table(self, rate_rps: float | None = None) -> ConfigTable:
        """The replay model's steady-state table at ``rate_rps`` (default: the current load).

        Hindsight knowledge: for the oracle and for analysis, never for an online agent's decisions.
        """
        return self.model.config_table(float(rate_rps if rate_rps is not None else self.rate()))

    def action_masks(self) -> np.ndarray:
        return self.catalog.feasible.copy()

    def _obs(self) -> np.ndarray:
        budget_left, window_left = self.objective.features(self.step_index)
        return self.model.observe(ci_now=self.intensity(), forecast=self.forecast(),
                                  rate_rps=self.rate(), last=self._last, config_index=self._current,
                                  hour_of_day=self._hour(), rate_trend=(self.rate() - self.rate(-1)) / self.mean_rate,
                                  budget_left=budget_left, window_left=window_left)

    def _served_index(self) -> int:
        """The catalog index of what the backend actually serves (after a failed apply)."""
        served = self.backend.configuration
        return self.catalog.index.get(served, self._current) if served is not None else self._current

    def _draw_trace(self, options: dict) -> CarbonTrace:
        r = self.randomization
        if "trace" in options:
            return resolve_trace(options["trace"], "all", self.scenario.control_interval_s)
        if r and r.synthetic_prob > 0 and self.np_random.random() < r.synthetic_prob:
            return r.synthetic_trace(self.np_random, self.steps_per_episode // 24 + 2)
        return self._pool[int(self.np_random.integers(len(self._pool)))]

    def _draw_workload(self, options: dict) -> Workload:
        """The episode's workload: given, drawn from the randomisation's load patterns, or the
        scenario's; a diurnal cycle is aligned with the carbon trace's clock."""
        r = self.randomization
        w = self.model.workload
        if "workload" in options:
            w = workload_from_config(options["workload"])
        elif r and r.load_patterns:
            from clover_rl.workload.randomize import random_workload

            kind = str(self.np_random.choice(list(r.load_patterns)))
            w = random_workload(kind, self.mean_rate, self.steps_per_episode, self.np_random,
                                step_s=self.scenario.control_interval_s, traces=r.rate_traces)
        return w.at_hour(self._hour()) if isinstance(w, DiurnalRate) else w

    # ------------------------------------------------------------------ gym API
    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        options = dict(options or {})
        self._episode_trace = self._draw_trace(options)
        n = len(self._episode_trace)
        steps = self.steps_per_episode
        if n < steps:
            raise ConfigError(
                f"carbon trace {self._episode_trace.name} has {n} intervals; an episode needs {steps} "
                f"(lower episode_hours)"
            )
        if "start" in options:
            start = int(options["start"])
            if not 0 <= start <= n - steps:
                raise ConfigError(f"reset option start={start} outside 0..{n - steps}")
        else:
            start = int(self.np_random.integers(0, n - steps + 1))
        self._t0 = self._t = start
        r = self.randomization
        if "rate_scale" in options:
            self._rate_scale = float(options["rate_scale"])
        elif r and r.rate_scale[0] != r.rate_scale[1]:
            self._rate_scale = float(self.np_random.uniform(*r.rate_scale))
        else:
            self._rate_scale = 1.0
        self._episode_workload = self._draw_workload(options)
        self._rates = {}
        self.objective.reset()
        self.backend.reseed(int(self.np_random.integers(2**31)))
        start_cfg = options.get("config", self.catalog.base_index)
        self._current = self.catalog.lookup(start_cfg)
        if not self.backend.apply(self.configuration).ok:
            self._current = self._served_index()
        self.backend.settle()  # an episode starts from a service already running
        self._last = LastRatios()
        self._probes = _Probes()
        return self._obs(), self._info_reset()

    def _info_reset(self) -> dict:
        return {
            "config": self._config_label(),
            "ci": self.intensity(),
            "rate_rps": self.rate(),
            "sla_ms": self.sla_ms,
            "time": self._time_label(),
            "action_mask": self.action_masks(),
        }

    def probe(self, action: int | str | Configuration) -> ProbeResult:
        """Measure a candidate configuration on the backend for ``scenario.probe_s`` seconds.

        This is an online optimizer's exploration: the window is served by the candidate and
        counts in the current interval's results (carbon, accuracy, latency) at the next step.
        Returns the window's metrics and its score at the current intensity. ``ConfigError``
        for an infeasible candidate or when the probes would exceed the interval.
        """
        idx = self.catalog.lookup(action)
        if not self.catalog.feasible[idx]:
            raise ConfigError(f"cannot probe {self.catalog.configs[idx].label()}: {self.catalog.why_infeasible(idx)}")
        cfg = self.catalog.configs[idx]
        used = sum(p.duration_s for p in self._probes.windows)
        if used + self.scenario.probe_s > self.scenario.control_interval_s:
            raise ConfigError("probe budget exceeds the control interval")
        before = self.backend.configuration
        m = self.backend.probe(cfg, self.scenario.probe_s, self.rate())
        self._probes.windows.append(m)
        self._probes.changes += int(self.backend.configuration != before)  # a failed apply changes nothing
        score = self.model.online_score(m, self.intensity(), self.rate(), self.step_index)
        return {"metrics": m, "score": score, "config": cfg.label(), "action": idx}

    def step(self, action: Any) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict]:
        a = int(action)
        if not 0 <= a < len(self.catalog):  # Discrete(len(catalog)).contains, without its checks
            raise ConfigError(f"action {action!r} outside Discrete({self.action_space.n})")
        sc = self.scenario
        refused = not self.catalog.feasible[a]
        target = self._current if refused else a
        probes = self._probes.windows
        probe_time = sum(p.duration_s for p in probes)
        reconfigs = self._probes.changes
        report = None
        want = self.catalog.configs[target]
        served = self.backend.configuration
        if served is not want and served != want:
            report = self.backend.apply(want)
            if report.ok:
                reconfigs += int(report.changed)
            else:  # the backend still serves what it served: no counted reconfiguration
                target = self._served_index()
        main = self.backend.run(max(sc.control_interval_s - probe_time, 1e-3), self.rate())
        m = self.model.merge(list(probes) + [main])
        self._current = target
        ci = self.intensity()
        out = self.model.outcome(m, ci, refused=refused, reconfigurations=reconfigs)
        self._last = LastRatios.of(out)
        self._probes = _Probes()
        value, booked = self.objective.book(self.step_index, out.carbon_g, out.objective)
        reward = out.reward + value - out.objective  # a budget's overspend penalty (0 for other objectives)
        info = {
            "time": self._time_label(),
            "ci": ci,
            "pue": sc.carbon.pue,
            "rate_rps": self.rate(),
            "action": a,
            "config": self._config_label(),
            "refused": refused,
            "refused_reason": self.catalog.why_infeasible(a) if refused else "",
            "carbon_g": out.carbon_g,
            "carbon_per_request_g": out.carbon_per_request_g,
            "energy_j": m.energy_j,
            "energy_per_request_j": m.energy_per_request_j,
            "accuracy": m.accuracy,
            "p50_ms": m.p50_ms,
            "p95_ms": m.p95_ms,
            "p99_ms": m.p99_ms,
            "sla_ms": self.sla_ms,
            "sla_violated": out.sla_violated,
            "served": m.served,
            "dropped": m.dropped,
            "arrived": m.arrived,
            "probes": len(probes),
            "probe_s": probe_time,
            "reconfigurations": reconfigs,
            "reconfig_failed": bool(report is not None and not report.ok),
            "reconfig_message": report.message if report is not None else "",
            "downtime_s": max(report.downtime_s.values(), default=0.0) if report else 0.0,
            "variant_share": dict(m.variant_share),
            "objective": value,
            "objective_kind": self.objective.kind,
            **booked,
            "delta_c": out.delta_c,
            "delta_a": out.delta_a,
            "sla_factor": out.sla_factor,
            "reward_objective": value,
            "reward_sla_penalty": out.reward_sla_penalty,
            "reward_infeasible_penalty": out.reward_infeasible_penalty,
            "reward_reconfig_penalty": out.reward_reconfig_penalty,
            "estimated": m.estimated,
            "backend": m.backend,
            **m.extra,  # service-specific figures (LLM: TTFT/TPOT percentiles)
        }
        self._t += 1
        truncated = self._t - self._t0 >= self.steps_per_episode
        if truncated:
            self._t -= 1  # observation of the last interval; nothing follows
        obs = self._obs()
        info["action_mask"] = self.action_masks()
        return obs, reward, False, truncated, info

    def render(self) -> str | None:
        if self.render_mode == "ansi":
            return (f"t={self._t - self._t0} ci={self.intensity():.0f} g/kWh "
                    f"config={self.configuration.label()} last p95/SLA={self._last.p95_over_sla:.2f}")
        return None

    def close(self) -> None:
        self.backend.close()
