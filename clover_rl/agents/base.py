"""The Policy interface that evaluation and deployment use, whatever decides.

BASE, RAND, ORACLE, greedy, the paper's graph annealing and SB3 models all implement it.
Policies that explore online (the annealer, RAND) or need hindsight (the oracle) receive the
environment through ``bind`` before the first ``act``; they may call ``env.probe(action)``
(paid for in the interval's results) and, for the oracle only, ``env.config_table()``.
"""
from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Policy(Protocol):
    name: str

    def reset(self) -> None:
        """Forget per-episode state (called after env.reset)."""

    def act(self, observation: np.ndarray, info: dict[str, Any]) -> int:
        """The action (configuration index) for the coming interval; respects action masks."""


class BindablePolicy:
    """Mixin for policies that need the (unwrapped) environment."""

    env: Any = None

    def bind(self, env: Any) -> None:
        self.env = getattr(env, "unwrapped", env)
