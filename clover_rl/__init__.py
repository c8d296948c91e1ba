"""clover-rl: carbon-aware control of ML inference services on NVIDIA MIG GPUs."""
from __future__ import annotations

__version__ = "0.1.0"

from clover_rl.envs import ENV_ID, LIVE_ENV_ID, register_envs

register_envs()

__all__ = ["ENV_ID", "LIVE_ENV_ID", "__version__"]
