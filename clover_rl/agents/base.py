"""The Policy interface that evaluation and deployment use, whatever decides.

BASE, RAND, ORACLE, greedy, the paper's graph annealing and SB3 models all implement it.
Policies that explore online (the annealer, RAND) or need hindsight (the oracle) receive a
:class:`~clover_rl.contracts.ControlContext` (the env, or the live controller) through ``bind``
before the first ``act``; they may call ``env.probe(action)`` (paid for in the interval's
results) and, for the hindsight baselines only, ``env.config_table()``.
"""
from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from clover_rl.contracts import ControlContext, context_of


@runtime_checkable
class Policy(Protocol):
    name: str

    def reset(self) -> None:
        """Forget per-episode state (called after env.reset)."""

    def act(self, observation: np.ndarray, info: dict[str, Any]) -> int:
        """The action (configuration index) for the coming interval; respects action masks."""


class BindablePolicy:
    """Mixin for policies that need what they control (a ``ControlContext``)."""

    env: ControlContext | None = None

    def bind(self, env: Any) -> None:
        """``env``: a ``ControlContext`` or a gymnasium wrapper around one (``TypeError`` else)."""
        self.env = context_of(env)
