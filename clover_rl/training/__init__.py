"""Training RL agents on trace replay: config (YAML -> pydantic model), envs, callbacks, run folders.

``train``/``TrainResult`` load on first use, so reading a config (e.g. for ``clover-rl train
--help``) does not import torch.
"""
from __future__ import annotations

from typing import Any

from clover_rl.training.config import TrainConfig, config_from_dict, load_train_config

__all__ = ["TrainConfig", "TrainResult", "config_from_dict", "load_train_config", "train"]


def __getattr__(name: str) -> Any:
    if name in ("train", "TrainResult"):
        from clover_rl.training import run

        return getattr(run, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
