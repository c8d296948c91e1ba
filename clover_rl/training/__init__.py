"""Training RL agents on trace replay: config (YAML -> dataclass), envs, callbacks, run folders."""
from __future__ import annotations

from clover_rl.training.config import TrainConfig, config_from_dict, load_train_config
from clover_rl.training.run import TrainResult, train

__all__ = ["TrainConfig", "TrainResult", "config_from_dict", "load_train_config", "train"]
