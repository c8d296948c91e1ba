"""SB3 callbacks: the evaluation runner's figures in TensorBoard, the best model kept, hparams.

TensorBoard tags: ``charts/*`` per training episode (mean over the episodes since the last
dump), ``eval/*`` per periodic evaluation on the evaluation period (mean over its fixed
windows), SB3's own ``rollout/``, ``train/``, ``time/``, and the run's hyperparameters
(HPARAMS tab).
"""
from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from sb3_contrib.common.maskable.callbacks import MaskableEvalCallback
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import HParam
from stable_baselines3.common.vec_env import sync_envs_normalization

from clover_rl.agents.sb3 import MaskedPredictor

EVAL_METRICS = ("objective", "carbon_saving_pct", "accuracy_drop_pct", "sla_violation_pct",
                "reconfigurations", "oracle_gap_pct", "refused_pct")


class EpisodeChartsCallback(BaseCallback):
    """Training episodes' figures (``info["episode_metrics"]``) as ``charts/*`` means."""

    def _on_step(self) -> bool:
        for info in self.locals.get("infos", ()):
            m = info.get("episode_metrics")
            if m:
                for k, v in m.items():
                    if v is not None and math.isfinite(v):
                        self.logger.record_mean(f"charts/{k}", v)
        return True


class HParamCallback(BaseCallback):
    """Writes the run's hyperparameters to TensorBoard's HPARAMS tab at the start of training."""

    def __init__(self, hparams: dict[str, Any]) -> None:
        super().__init__()
        self.hparams = {k: (v if isinstance(v, (int, float, str, bool)) else str(v)) for k, v in hparams.items()}

    def _on_training_start(self) -> None:
        metrics = {"eval/mean_reward": 0.0, "eval/objective": 0.0, "eval/oracle_gap_pct": 0.0}
        self.logger.record("hparams", HParam(self.hparams, metrics), exclude=("stdout", "log", "json", "csv"))

    def _on_step(self) -> bool:
        return True


class CloverEvalCallback(MaskableEvalCallback):
    """Periodic greedy, masked evaluation on fixed windows of the evaluation period.

    Chooses actions exactly as a loaded checkpoint does (:class:`MaskedPredictor`), logs the
    mean ``eval/*`` figures of :data:`EVAL_METRICS`, saves a new best model through
    ``save_best`` (by mean reward or mean objective), and evaluates once more at the end of
    training so the final policy competes too.
    """

    def __init__(self, eval_env: Any, *, n_eval_episodes: int, eval_freq: int,
                 save_best: Callable[[Any], None], best_metric: str = "reward",
                 best_value: float = -math.inf, verbose: int = 0) -> None:
        super().__init__(eval_env, n_eval_episodes=n_eval_episodes, eval_freq=eval_freq,
                         deterministic=True, verbose=verbose, warn=False)
        self.save_best = save_best
        self.best_metric = best_metric
        self.best_value = best_value
        self.best: dict[str, Any] | None = None
        self.last: dict[str, Any] | None = None
        self.history: list[dict[str, Any]] = []
        self._episodes: list[dict[str, float]] = []
        self._last_eval_step = -1

    def _collect(self, locals_: dict[str, Any], globals_: dict[str, Any]) -> None:
        if locals_.get("done"):
            m = locals_.get("info", {}).get("episode_metrics")
            if m:
                self._episodes.append(m)

    def _on_step(self) -> bool:
        if self.eval_freq > 0 and self.n_calls % self.eval_freq == 0:
            self.evaluate()
        return True

    def _on_training_end(self) -> None:
        if self._last_eval_step != self.num_timesteps:
            # Say why the (finished) progress bar stands still: SB3 trains whole rollouts, so the
            # step count may pass the target, and the final evaluation runs after it.
            print(f"trained {self.num_timesteps:,} steps (whole rollouts, so possibly past the target); "
                  f"final evaluation: {self.n_eval_episodes} episode(s) on the evaluation windows ...",
                  file=sys.stderr, flush=True)
            t0 = time.perf_counter()
            self.evaluate()
            print(f"final evaluation done in {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)

    def evaluate(self) -> dict[str, Any]:
        from sb3_contrib.common.maskable.evaluation import evaluate_policy

        if self.model.get_vec_normalize_env() is not None:
            sync_envs_normalization(self.training_env, self.eval_env)
        self.eval_env.env_method("rewind")
        self._episodes = []
        rewards, lengths = evaluate_policy(
            MaskedPredictor(self.model), self.eval_env, n_eval_episodes=self.n_eval_episodes,  # type: ignore[arg-type]
            deterministic=True, return_episode_rewards=True, warn=False, callback=self._collect,
            use_masking=True,
        )
        self._last_eval_step = self.num_timesteps
        result: dict[str, Any] = {"timesteps": int(self.num_timesteps),
                                  "mean_reward": float(np.mean(rewards)), "std_reward": float(np.std(rewards)),
                                  "episodes": len(rewards)}
        for k in EVAL_METRICS:
            vals = [e[k] for e in self._episodes if k in e and e[k] is not None and math.isfinite(e[k])]
            if vals:
                result[k] = float(np.mean(vals))
        self.last_mean_reward = result["mean_reward"]
        self.logger.record("eval/mean_reward", result["mean_reward"])
        self.logger.record("eval/mean_ep_length", float(np.mean(lengths)))
        for k in EVAL_METRICS:
            if k in result:
                self.logger.record(f"eval/{k}", result[k])
        self.logger.record("time/total_timesteps", self.num_timesteps, exclude="tensorboard")
        self.logger.dump(self.num_timesteps)
        if self.verbose:
            print("eval at " + str(self.num_timesteps) + ": " + ", ".join(
                f"{k} {result[k]:.4g}" for k in ("mean_reward", *EVAL_METRICS) if k in result), file=sys.stderr, flush=True)
        self.history.append(result)
        self.last = result
        value = result["mean_reward"] if self.best_metric == "reward" else result.get("objective", -math.inf)
        if value > self.best_value:
            self.best_value = float(value)
            self.best_mean_reward = result["mean_reward"]
            self.best = result
            self.save_best(self.model)
            if self.verbose:
                print(f"eval at {self.num_timesteps}: new best {self.best_metric} {value:.4f}")
        return result
