"""Online fine-tuning of a deployed MaskablePPO policy from live transitions (``deploy --learn``).

Each interval the learner samples the action from the policy's masked distribution (PPO
learns on-policy, so it must act with its own stochastic policy), and when the interval has
been served it stores ``(observation, action, reward, value, log-prob, mask)`` with the reward
computed exactly as the environment does. Every ``every`` transitions it runs one PPO update
(``model.train()`` on its own rollout buffer, bootstrapped from the next observation) and
writes a checkpoint -- a complete run folder usable as ``--policy`` -- under
``STATE/checkpoints/update_NNNN``.

Safety: a freshly updated policy is a *candidate*. If the SLA guard triggers while a candidate
is in control, its parameters are replaced by the last good checkpoint at once (the guard
has already switched the service to the safe configuration). A candidate that runs
``good_after`` intervals without a trigger becomes the last good checkpoint. Transitions
whose action the policy did not choose (guard override, refusal) are dropped: they are not
on-policy.
"""
from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from clover_rl.errors import CheckpointError, ConfigError

log = logging.getLogger("clover_rl.controller")


class OnlineLearner:
    """See the module docstring."""

    def __init__(self, policy: Any, checkpoints_dir: str | Path, env: Any, *, every: int = 8,
                 good_after: int = 4, learning_rate: float = 1e-4, seed: int = 0) -> None:
        from sb3_contrib.common.maskable.buffers import MaskableRolloutBuffer
        from stable_baselines3.common.logger import Logger

        if every < 2:
            raise ConfigError(f"--learn-every must be >= 2 transitions, got {every}")
        if good_after < 1:
            raise ConfigError(f"--learn-good-after must be >= 1 interval, got {good_after}")
        self.policy = policy
        self.model = policy.model
        self.env = env
        self.dir = Path(checkpoints_dir)
        self.every = int(every)
        self.good_after = int(good_after)
        self.active = True
        m = self.model
        m.set_logger(Logger(folder=None, output_formats=[]))
        m.lr_schedule = lambda _progress: learning_rate  # constant fine-tuning rate
        m._current_progress_remaining = 1.0
        m.set_random_seed(seed)
        self.buffer = MaskableRolloutBuffer(self.every, m.observation_space, m.action_space, m.device,
                                            gae_lambda=m.gae_lambda, gamma=m.gamma, n_envs=1)
        self.origin = Path(policy.path) if getattr(policy, "path", None) else None
        self.last_good: str | None = str(self.origin / "model.zip") if self.origin else None
        self.candidate: str | None = None
        self.updates = 0
        self.since_update = 0
        self._pending: tuple | None = None
        self._episode_start = True

    @classmethod
    def for_policy(cls, policy: Any, checkpoints_dir: str | Path, env: Any, **kw: Any) -> OnlineLearner:
        from clover_rl.agents.sb3 import SB3Policy

        if not isinstance(policy, SB3Policy) or type(policy.model).__name__ != "MaskablePPO":
            name = getattr(policy, "name", type(policy).__name__)
            raise ConfigError(f"--learn needs a MaskablePPO run folder as --policy (got {name})")
        return cls(policy, checkpoints_dir, env, **kw)

    # ------------------------------------------------------------------ acting
    def act(self, obs: np.ndarray, mask: np.ndarray) -> int:
        """Sample from the masked policy and remember what PPO needs for this step."""
        import torch as th

        o = self.policy.normalize(obs)
        pol = self.model.policy
        obs_t, _ = pol.obs_to_tensor(o)
        with th.no_grad():
            actions, values, log_probs = pol(obs_t, deterministic=False, action_masks=mask[None])
        a = int(actions.cpu().numpy().reshape(-1)[0])
        self._pending = (o, a, values, log_probs, mask.astype(np.float32))
        return a

    def before_decision(self, obs: np.ndarray) -> str | None:
        """Runs the PPO update when the buffer is full (bootstrapped from ``obs``)."""
        if not self.buffer.full:
            return None
        import torch as th

        with th.no_grad():
            last_values = self.model.policy.predict_values(self.model.policy.obs_to_tensor(self.policy.normalize(obs))[0])
        self.buffer.compute_returns_and_advantage(last_values=last_values, dones=np.array([False]))
        self.model.rollout_buffer = self.buffer
        self.model.train()
        self.model.policy.set_training_mode(False)
        self.buffer.reset()
        self.updates += 1
        self.since_update = 0
        path = self._checkpoint()
        self.candidate = path
        mean_r = float(np.mean(self._rewards)) if getattr(self, "_rewards", None) else float("nan")
        self._rewards = []
        return (f"PPO update {self.updates} from {self.every} live transitions (mean reward {mean_r:+.4f}); "
                f"checkpoint {path} (candidate until {self.good_after} intervals pass without an SLA-guard trigger)")

    def after_decision(self, executed: int, chosen: int | None, source: str) -> None:
        """Keep the step only if the service runs what the policy sampled."""
        if self._pending is not None and (source != "policy" or chosen != executed or self._pending[1] != chosen):
            self._pending = None

    def after_interval(self, reward: float, guard_triggered: bool = False) -> str | None:
        """Store the finished transition; promote a candidate that behaved."""
        note = None
        if self._pending is not None:
            o, a, values, log_probs, mask = self._pending
            r = reward
            vn = self.policy.vecnormalize
            if vn is not None and getattr(vn, "norm_reward", False):
                r = float(np.asarray(vn.normalize_reward(np.array([reward]))).reshape(-1)[0])
            self.buffer.add(o[None], np.array([[a]]), np.array([r], dtype=np.float32),
                            np.array([self._episode_start]), values, log_probs, action_masks=mask[None])
            self._episode_start = False
            self._pending = None
            self._rewards = getattr(self, "_rewards", []) + [reward]
        if self.candidate is not None:
            self.since_update += 1
            if self.since_update >= self.good_after:
                self.last_good = self.candidate
                self.candidate = None
                note = None  # promotion is recorded in the state, not as an update
        return note

    def on_guard_trigger(self) -> str | None:
        """The SLA guard fired: a candidate policy goes back to the last good checkpoint."""
        self._pending = None
        if self.candidate is None or self.last_good is None:
            return None
        bad = self.candidate
        self._load_params(self.last_good)
        self.candidate = None
        self.buffer.reset()
        self._episode_start = True
        return f"SLA guard fired under the updated policy {bad}; rolled back to {self.last_good}"

    # ------------------------------------------------------------------ persistence
    def _checkpoint(self) -> str:
        d = self.dir / f"update_{self.updates:04d}"
        d.mkdir(parents=True, exist_ok=True)
        self.model.save(str(d / "model.zip"))
        meta: dict[str, Any] = dict(getattr(self.policy, "metadata", {}) or {})
        meta.update({"algo": "maskable_ppo", "finetuned_online": True, "online_updates": self.updates,
                     "finetuned_from": str(self.origin) if self.origin else None,
                     "policy_name": f"maskable_ppo:online_update_{self.updates}"})
        if self.origin is None or "observation_shape" not in meta:
            from clover_rl.agents.sb3 import env_spaces

            meta.update(env_spaces(self.env))
        (d / "metadata.json").write_text(json.dumps(meta, indent=2, default=str) + "\n")
        if self.origin is not None and (self.origin / "vecnormalize.pkl").exists():
            shutil.copy2(self.origin / "vecnormalize.pkl", d / "vecnormalize.pkl")
        return str(d / "model.zip")

    def _load_params(self, path: str) -> None:
        try:
            self.model.set_parameters(path, exact_match=True, device=self.model.device)
        except Exception as e:
            raise CheckpointError(f"{path}: cannot restore the last good policy ({e})") from None
        self.model.policy.set_training_mode(False)

    def state(self) -> dict[str, Any]:
        return {"updates": self.updates, "last_good": self.last_good, "candidate": self.candidate,
                "since_update": self.since_update}

    def load_state(self, d: dict[str, Any]) -> None:
        """Resume: continue from the newest checkpoint (candidate if any, else last good)."""
        self.updates = int(d.get("updates", 0))
        self.since_update = int(d.get("since_update", 0))
        self.last_good = d.get("last_good") or self.last_good
        self.candidate = d.get("candidate")
        newest = self.candidate or self.last_good
        if newest and self.origin is not None and Path(newest) != self.origin / "model.zip" and Path(newest).exists():
            self._load_params(newest)


def training_penalties(policy: Any, default: Any) -> Any:
    """The reward penalties a trained policy was trained with (its run metadata), else ``default``:
    fine-tuning and the logged reward then optimise what the policy learned to optimise."""
    meta = getattr(policy, "metadata", None) or {}
    pen = (meta.get("scenario_config") or {}).get("penalties") if isinstance(meta, dict) else None
    if not isinstance(pen, dict):
        return default
    try:
        return type(default).model_validate({**default.model_dump(), **pen})
    except Exception:
        return default
