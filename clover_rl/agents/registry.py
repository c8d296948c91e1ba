"""Policies by name or checkpoint path, so evaluation and deployment take any of them as a string."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from clover_rl.agents.annealing import CloverPolicy
from clover_rl.agents.base import BindablePolicy, Policy
from clover_rl.agents.baselines import BasePolicy, GreedyCarbonPolicy, OraclePolicy, RandomSearchPolicy
from clover_rl.errors import CheckpointError, ConfigError

_FACTORIES: dict[str, Callable[..., Policy]] = {
    "base": BasePolicy,
    "clover": CloverPolicy,
    "random": RandomSearchPolicy,
    "oracle": OraclePolicy,
    "greedy-carbon": GreedyCarbonPolicy,
}
POLICY_NAMES: tuple[str, ...] = tuple(_FACTORIES)


def _looks_like_path(spec: str) -> bool:
    return "/" in spec or "\\" in spec or spec.endswith(".zip") or spec.startswith(".") or Path(spec).exists()


def make_policy(spec: str, env: Any, seed: int = 0, **params: Any) -> Policy:
    """A bound policy for ``spec``: a name in ``POLICY_NAMES`` (``params`` go to its constructor)
    or a run folder / ``model.zip`` path, loaded by ``clover_rl.agents.sb3.load_policy``."""
    key = str(spec).strip()
    if key.lower() in _FACTORIES:
        try:
            policy = _FACTORIES[key.lower()](seed=seed, **params)
        except TypeError as e:
            raise ConfigError(f"policy {key}: bad parameter(s) {sorted(params)} ({e})") from None
        except ValueError as e:
            raise ConfigError(f"policy {key}: {e}") from None
    elif _looks_like_path(key):
        if not Path(key).exists():
            raise CheckpointError(f"policy {key!r}: no such run folder or model file")
        from clover_rl.agents.sb3 import load_policy  # lazy: pulls in torch / SB3

        policy = load_policy(key, env)
    else:
        raise ConfigError(
            f"unknown policy {key!r} (known: {', '.join(POLICY_NAMES)}; or a run folder / model.zip path)"
        )
    if isinstance(policy, BindablePolicy) or hasattr(policy, "bind"):
        policy.bind(env)
    return policy
