"""Vectorised training and evaluation environments for a TrainConfig.

Training envs draw windows from the shipped traces' training period (plus synthetic traces)
at randomised load levels; evaluation envs replay fixed, evenly spread windows of the
evaluation period at the scenario's load, so successive evaluations are comparable and the
best model is chosen on equal terms.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from clover_rl.objectives import table_rate
from clover_rl.training.config import TrainConfig

#: Keys of ``env_kwargs`` that only make sense for training episodes.
TRAIN_ONLY = ("randomization", "trace_period", "carbon_trace")


class EpisodeMetrics(gym.Wrapper):
    """Adds ``info["episode_metrics"]`` at the end of an episode: the evaluation runner's
    figures (objective, carbon saving / accuracy drop vs BASE, SLA violations,
    reconfigurations, refusals; with ``oracle=True`` also the oracle gap), so TensorBoard's
    ``charts/`` and ``eval/`` curves read like ``clover-rl evaluate`` tables.

    The oracle (hindsight argmax of the score per interval) needs the replay model's table of
    every configuration at the episode's load: costly once per load level, so it is meant
    for evaluation envs, whose load is fixed.
    """

    def __init__(self, env: gym.Env, oracle: bool = False) -> None:
        super().__init__(env)
        self.oracle = oracle
        self._rows: list[tuple[float, ...]] = []
        self._base_epr = math.nan

    def reset(self, **kwargs: Any) -> tuple[Any, dict]:
        obs, info = self.env.reset(**kwargs)
        self._rows = []
        u = self.env.unwrapped
        base_cfg = u.catalog.configs[u.catalog.base_index]
        try:
            st = u.model.steady_state(u.rate(), base_cfg).interval(u.scenario.control_interval_s)
            self._base_epr = st.energy_per_request_j
        except Exception:
            self._base_epr = u.base_metrics.energy_per_request_j
        return obs, info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        u = self.env.unwrapped
        j_oracle = j_base = math.nan
        if self.oracle:
            rate = table_rate(float(info["rate_rps"]), u.mean_rate)  # shared tables 10% apart
            scores = u.config_table(rate).scores(info["ci"], info["pue"], u.reference)
            j_oracle = float(np.max(np.where(u.action_masks(), scores, -np.inf)))
            j_base = float(scores[u.catalog.base_index])
        self._rows.append((
            float(info["objective"]), float(info["carbon_g"]), float(info["served"]),
            float(info["accuracy"]) * float(info["served"]), float(bool(info["sla_violated"])),
            float(info["reconfigurations"]), float(bool(info["refused"])),
            float(info["ci"]) * float(info["pue"]) * float(info["served"]), j_oracle, j_base, float(reward),
        ))
        if terminated or truncated:
            info = {**info, "episode_metrics": self.summary()}
        return obs, reward, terminated, truncated, info

    def summary(self) -> dict[str, float]:
        """This episode's figures so far (see the class docstring)."""
        r = np.array(self._rows, dtype=float).reshape(-1, 11)
        u = self.env.unwrapped
        served = r[:, 2].sum()
        carbon_pr = r[:, 1].sum() / served if served else math.nan
        base_pr = self._base_epr / 3.6e6 * r[:, 7].sum() / served if served else math.nan
        acc = r[:, 3].sum() / served if served else math.nan
        a_base = u.reference.a_base
        out = {
            "objective": float(r[:, 0].mean()),
            "carbon_saving_pct": _pct(base_pr - carbon_pr, base_pr),
            "accuracy_drop_pct": _pct(a_base - acc, a_base),
            "sla_violation_pct": float(100.0 * r[:, 4].mean()),
            "reconfigurations": float(r[:, 5].sum()),
            "refused_pct": float(100.0 * r[:, 6].mean()),
            "episode_reward": float(r[:, 10].sum()),
        }
        if self.oracle:
            j, jo, jb = r[:, 0].mean(), r[:, 8].mean(), r[:, 9].mean()
            out["oracle_objective"] = float(jo)
            out["oracle_gap_pct"] = _pct(jo - j, jo - jb)
        return out


def _pct(num: float, den: float) -> float:
    if not (math.isfinite(num) and math.isfinite(den)) or abs(den) < 1e-12:
        return math.nan
    return float(100.0 * num / den)


class FixedWindows(gym.Wrapper):
    """Resets cycle through ``n`` windows spread evenly over the trace (``rewind()`` restarts
    the cycle), so every evaluation replays the same hours."""

    def __init__(self, env: gym.Env, n: int) -> None:
        super().__init__(env)
        u = env.unwrapped
        last = max(len(u.trace) - u.steps_per_episode, 0)
        self.starts = [round(x) for x in np.linspace(0, last, max(n, 1))]
        self._k = 0

    def rewind(self) -> None:
        self._k = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]:
        opts = {"start": self.starts[self._k % len(self.starts)], **dict(options or {})}
        self._k += 1
        return self.env.reset(seed=seed, options=opts)


class ValidationWindows(gym.Wrapper):
    """Resets cycle through fixed validation episodes -- (trace, start, load pattern) -- over
    several grids (see :func:`validation_episodes`); ``rewind()`` restarts the cycle."""

    def __init__(self, env: gym.Env, episodes: list[dict[str, Any]]) -> None:
        super().__init__(env)
        self.episodes = episodes
        self._k = 0

    def rewind(self) -> None:
        self._k = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]:
        opts = {**self.episodes[self._k % len(self.episodes)], **dict(options or {})}
        self._k += 1
        return self.env.reset(seed=seed, options=opts)


def validation_episodes(spec: dict[str, Any], steps: int, nominal_rps: float) -> list[dict[str, Any]]:
    """Reset options of the validation set ``spec`` = ``{traces: [shipped training grids],
    windows: per trace, synthetic: [[shape, mean g/kWh], ...], loads: [scenario | constant | diurnal
    | a rate scale, ...]}`` (``scenario``: the scenario's own workload; ``diurnal``: +-30%, peak 14:00): ``windows`` windows evenly spread over each grid's *eval* period, plus
    one window of each synthetic shape (seeds above 2^32: neither training, which draws below
    2^31, nor the benchmark suite, which uses 2^31 + 1000.., ever sees them); episode ``i`` gets
    load ``loads[i % len(loads)]``. Model selection only: the suite's cases are never in it."""
    from clover_rl.carbon.shipped import GRIDS, load_shipped
    from clover_rl.carbon.synth import synthesize
    from clover_rl.errors import ConfigError

    bad = set(spec) - {"traces", "windows", "synthetic", "loads"}
    if bad:
        raise ConfigError(f"eval_env_kwargs.validation: unknown field(s) {sorted(bad)}")
    out: list[dict[str, Any]] = []
    n = int(spec.get("windows", 2))
    for name in spec.get("traces", ()):
        if name in GRIDS and GRIDS[name].role != "train":
            raise ConfigError(f"eval_env_kwargs.validation.traces: {name} is a held-out grid (benchmark only)")
        tr = load_shipped(str(name), "eval")
        last = len(tr) - steps
        for start in np.linspace(0, max(last, 0), n):
            out.append({"trace": tr, "start": int(round(start))})
    for i, (shape, mean) in enumerate(spec.get("synthetic", ())):
        tr = synthesize(str(shape), steps // 24 + 2, 2**32 + i, mean=float(mean),  # type: ignore[arg-type]
                        floor=min(20.0, 0.5 * float(mean)))
        out.append({"trace": tr, "start": 0})
    loads = list(spec.get("loads", ["constant"]))
    for i, ep in enumerate(out):
        load = loads[i % len(loads)]
        if load == "diurnal":
            ep["workload"] = {"kind": "diurnal", "mean_rps": nominal_rps, "amplitude": 0.3, "peak_hour": 14.0}
        elif load == "constant":
            ep["workload"] = {"kind": "constant", "rate_rps": nominal_rps}
        elif load != "scenario":
            try:
                ep["rate_scale"] = float(load)
            except (TypeError, ValueError):
                raise ConfigError(f"eval_env_kwargs.validation.loads: expected scenario, constant, diurnal or a "
                                  f"rate scale (got {load!r})") from None
    if not out:
        raise ConfigError("eval_env_kwargs.validation: no episodes (give traces or synthetic)")
    return out


def build_env(scenario: str, env_kwargs: dict[str, Any], *, oracle: bool = False,
              windows: int | None = None) -> gym.Env:
    """One monitored CloverServingEnv (a top-level function: picklable for SubprocVecEnv).
    ``env_kwargs["validation"]`` (evaluation envs): fixed validation episodes instead of
    ``windows`` of one trace (:func:`validation_episodes`)."""
    from stable_baselines3.common.monitor import Monitor

    import clover_rl  # noqa: F401  (registers the env ids in worker processes)
    from clover_rl.envs.serving_env import CloverServingEnv

    kw = dict(env_kwargs)
    validation = kw.pop("validation", None)
    env: gym.Env = CloverServingEnv(scenario, **kw)
    env = EpisodeMetrics(env, oracle=oracle)
    if validation:
        u = env.unwrapped
        env = ValidationWindows(env, validation_episodes(validation, u.steps_per_episode, u.mean_rate))
    elif windows:
        env = FixedWindows(env, windows)
    return Monitor(env)


def eval_env_kwargs(cfg: TrainConfig) -> dict[str, Any]:
    """Evaluation env kwargs: the training scenario overrides, minus training-only keys, plus
    ``eval_env_kwargs``."""
    kw = {k: v for k, v in cfg.env_kwargs.items() if k not in TRAIN_ONLY}
    kw.update(cfg.eval_env_kwargs)
    return kw


def make_vec_env(cfg: TrainConfig, n_envs: int | None = None) -> Any:
    """The training VecEnv (Subproc for n_envs > 1 unless ``vec_env: dummy``), not yet seeded."""
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    n = n_envs or cfg.n_envs
    fns: list[Callable[[], gym.Env]] = [functools.partial(build_env, cfg.scenario, dict(cfg.env_kwargs))
                                        for _ in range(n)]
    if cfg.vec_env == "ray":  # rollouts on Ray actors (the ray extra)
        from clover_rl.distributed.vec_env import RayVecEnv

        return RayVecEnv(fns)
    use_subproc = cfg.vec_env == "subproc" or (cfg.vec_env == "auto" and n > 1)
    return SubprocVecEnv(fns) if use_subproc else DummyVecEnv(fns)


def make_eval_env(cfg: TrainConfig, oracle: bool = True) -> Any:
    """The evaluation VecEnv: one in-process env over fixed windows of the evaluation period."""
    from stable_baselines3.common.vec_env import DummyVecEnv

    fn = functools.partial(build_env, cfg.scenario, eval_env_kwargs(cfg), oracle=oracle,
                           windows=cfg.n_eval_episodes)
    return DummyVecEnv([fn])
