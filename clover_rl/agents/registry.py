"""Policies by name or checkpoint path, so evaluation and deployment take any of them as a string."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from clover_rl.agents.annealing import CloverPolicy
from clover_rl.agents.base import Policy
from clover_rl.agents.baselines import (
    BasePolicy,
    GreedyCarbonPolicy,
    IdenticalOraclePolicy,
    OraclePolicy,
    RandomSearchPolicy,
)
from clover_rl.agents.mpc import MPCPolicy
from clover_rl.errors import CheckpointError, ConfigError
from clover_rl.fleet.policies import PlannedOraclePolicy

_FACTORIES: dict[str, Callable[..., Policy]] = {
    "base": BasePolicy,
    "clover": CloverPolicy,
    "random": RandomSearchPolicy,
    "oracle": OraclePolicy,
    "oracle-identical": IdenticalOraclePolicy,
    "oracle-plan": PlannedOraclePolicy,
    "greedy-carbon": GreedyCarbonPolicy,
    "mpc": MPCPolicy,
}
POLICY_NAMES: tuple[str, ...] = tuple(_FACTORIES)


def builtin_policies() -> dict[str, Callable[..., Policy]]:
    """The built-in policies by ``--policy`` name (a copy; `clover-rl list policies`)."""
    return dict(_FACTORIES)


def _looks_like_path(spec: str) -> bool:
    return "/" in spec or "\\" in spec or spec.endswith(".zip") or spec.startswith(".")


def _shipped_path(key: str) -> bool:
    """``checkpoints/<name>`` names a shipped run folder from any working directory."""
    parts = Path(key).parts
    return len(parts) == 2 and parts[0] == "checkpoints" and parts[1] in _shipped_checkpoints()


def _shipped_checkpoints() -> list[str]:
    from clover_rl.paths import checkpoints_dir

    d = checkpoints_dir()
    return sorted(p.name for p in d.iterdir() if p.is_dir()) if d.is_dir() else []


def make_policy(spec: str, env: Any, seed: int = 0, **params: Any) -> Policy:
    """A bound policy for ``spec``: a name in ``POLICY_NAMES`` (``params`` go to its constructor),
    a run folder / ``model.zip`` path, or a shipped checkpoint name (``checkpoints/<name>/``);
    checkpoints load through ``clover_rl.agents.sb3.load_policy`` (imported only then)."""
    key = str(spec).strip()
    if key.lower() in _FACTORIES:
        try:
            policy = _FACTORIES[key.lower()](seed=seed, **params)
        except TypeError as e:
            raise ConfigError(f"policy {key}: bad parameter(s) {sorted(params)} ({e})") from None
        except ValueError as e:
            raise ConfigError(f"policy {key}: {e}") from None
    elif Path(key).expanduser().exists() or key in _shipped_checkpoints() or _shipped_path(key):
        if params:
            raise ConfigError(f"policy {key}: a checkpoint takes no parameters (got {sorted(params)})")
        from clover_rl.agents.sb3 import load_policy  # lazy: pulls in torch / SB3

        policy = load_policy(key, env)
    elif _looks_like_path(key):
        raise CheckpointError(f"policy {key!r}: no such run folder or model file")
    else:
        shipped = _shipped_checkpoints()
        extra = f"; shipped checkpoints: {', '.join(shipped)}" if shipped else ""
        raise ConfigError(
            f"unknown policy {key!r} (known: {', '.join(POLICY_NAMES)}; or a run folder / model.zip path{extra})"
        )
    if hasattr(policy, "bind"):
        policy.bind(env)
    return policy
