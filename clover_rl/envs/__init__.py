"""Gymnasium environments. ``import clover_rl`` registers them."""
from __future__ import annotations

from gymnasium.envs.registration import register, registry

ENV_ID = "clover_rl/CloverServing-v0"
LIVE_ENV_ID = "clover_rl/CloverServingLive-v0"


def register_envs() -> None:
    if ENV_ID not in registry:
        register(id=ENV_ID, entry_point="clover_rl.envs.serving_env:CloverServingEnv")
    if LIVE_ENV_ID not in registry:
        register(
            id=LIVE_ENV_ID,
            entry_point="clover_rl.envs.serving_env:CloverServingEnv",
            kwargs={"backend": "live"},
            nondeterministic=True,
        )
