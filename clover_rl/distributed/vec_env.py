"""``RayVecEnv``: an SB3 ``VecEnv`` whose environments live in Ray actors (training rollouts
spread over the machines of a Ray cluster).

Same semantics as SB3's ``SubprocVecEnv`` (auto-reset with ``terminal_observation``,
``TimeLimit.truncated``, seeds and options used once, ``env_method`` / ``get_attr`` for
MaskablePPO's ``action_masks``), so a run gives the same transitions with either. On one machine
``SubprocVecEnv`` is the better choice (pipes cost microseconds per step, a Ray call about a
millisecond, and Ray's own processes take memory and CPU); Ray pays off when the envs need more
cores than one machine has. Requires the ``ray`` extra.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env.base_vec_env import (
    VecEnv,
    VecEnvIndices,
    VecEnvObs,
    VecEnvStepReturn,
)

from clover_rl.distributed.runtime import require_ray


class _EnvActor:
    """One environment in a Ray actor (the loop body of SB3's subprocess worker)."""

    def __init__(self, env_fn: Callable[[], gym.Env]) -> None:
        self.env = env_fn()

    def spaces(self) -> tuple[gym.Space, gym.Space]:
        return self.env.observation_space, self.env.action_space

    def step(self, action: Any) -> tuple[Any, float, bool, dict, dict]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        done = terminated or truncated
        info["TimeLimit.truncated"] = truncated and not terminated
        reset_info: dict = {}
        if done:
            info["terminal_observation"] = obs
            obs, reset_info = self.env.reset()
        return obs, float(reward), bool(done), info, reset_info

    def reset(self, seed: int | None, options: dict | None) -> tuple[Any, dict]:
        return self.env.reset(seed=seed, **({"options": options} if options else {}))

    def env_method(self, name: str, args: Sequence[Any], kwargs: dict[str, Any]) -> Any:
        return self.env.get_wrapper_attr(name)(*args, **kwargs)

    def get_attr(self, name: str) -> Any:
        return self.env.get_wrapper_attr(name)

    def has_attr(self, name: str) -> bool:
        try:
            self.env.get_wrapper_attr(name)
        except AttributeError:
            return False
        return True

    def set_attr(self, name: str, value: Any) -> None:
        setattr(self.env, name, value)

    def is_wrapped(self, wrapper_class: type) -> bool:
        from stable_baselines3.common.env_util import is_wrapped

        return is_wrapped(self.env, wrapper_class)

    def render(self) -> Any:
        return self.env.render()

    def close(self) -> None:
        self.env.close()


class RayVecEnv(VecEnv):
    """``env_fns`` built in one Ray actor each (``num_cpus`` per actor). Uses the Ray cluster this
    process is connected to, else joins ``RAY_ADDRESS`` or starts a local one (as ``--ray auto``);
    ConfigError without the extra."""

    def __init__(self, env_fns: list[Callable[[], gym.Env]], num_cpus: float = 1.0) -> None:
        self._ray = ray = require_ray()
        if not ray.is_initialized():
            address = os.environ.get("RAY_ADDRESS", "").strip() or "local"
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        actor = ray.remote(num_cpus=num_cpus)(_EnvActor)
        self.actors = [actor.remote(fn) for fn in env_fns]
        obs_space, act_space = ray.get(self.actors[0].spaces.remote())
        self._pending: list[Any] = []
        self.closed = False
        super().__init__(len(env_fns), obs_space, act_space)

    def _get(self, refs: list[Any]) -> list[Any]:
        return self._ray.get(refs)

    def step_async(self, actions: np.ndarray) -> None:
        self._pending = [a.step.remote(act) for a, act in zip(self.actors, actions)]

    def step_wait(self) -> VecEnvStepReturn:
        results, self._pending = self._get(self._pending), []
        obs, rews, dones, infos, self.reset_infos = zip(*results)
        return np.stack(obs), np.stack(rews), np.stack(dones), list(infos)

    def reset(self) -> VecEnvObs:
        results = self._get([a.reset.remote(self._seeds[i], self._options[i]) for i, a in enumerate(self.actors)])
        obs, self.reset_infos = zip(*results)
        self._reset_seeds()
        self._reset_options()
        return np.stack(obs)

    def close(self) -> None:
        if self.closed:
            return
        if self._pending:
            self._get(self._pending)
        self._get([a.close.remote() for a in self.actors])
        for a in self.actors:
            self._ray.kill(a)
        self.closed = True

    def _targets(self, indices: VecEnvIndices) -> list[Any]:
        return [self.actors[i] for i in self._get_indices(indices)]

    def get_images(self) -> Sequence[np.ndarray | None]:
        return self._get([a.render.remote() for a in self.actors])

    def has_attr(self, attr_name: str) -> bool:
        return all(self._get([a.has_attr.remote(attr_name) for a in self.actors]))

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        return self._get([a.get_attr.remote(attr_name) for a in self._targets(indices)])

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        self._get([a.set_attr.remote(attr_name, value) for a in self._targets(indices)])

    def env_method(self, method_name: str, *method_args: Any, indices: VecEnvIndices = None,
                   **method_kwargs: Any) -> list[Any]:
        return self._get([a.env_method.remote(method_name, method_args, method_kwargs)
                          for a in self._targets(indices)])

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        return self._get([a.is_wrapped.remote(wrapper_class) for a in self._targets(indices)])
