"""Stable-Baselines3 models as :class:`~clover_rl.agents.base.Policy`: load a run folder, check it
fits the environment, predict with action masks.

A run folder (``clover-rl train`` output, or a shipped ``checkpoints/<scenario>/``) holds
``model.zip``, optionally ``vecnormalize.pkl``, and ``metadata.json`` recording the spaces the
model was trained on. A policy transfers only to an environment with the same observation
layout and the same configuration catalog (``env.catalog.signature``); anything else is a
one-line :class:`~clover_rl.errors.CheckpointError` saying what differs, never a silent
mis-mapping of action indices.
"""
from __future__ import annotations

import json
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from clover_rl.contracts import ControlContext, context_of
from clover_rl.errors import CheckpointError

MODEL_FILE = "model.zip"
VECNORM_FILE = "vecnormalize.pkl"
METADATA_FILE = "metadata.json"
ALGO_CLASSES = {"maskable_ppo": ("sb3_contrib", "MaskablePPO"), "ppo": ("stable_baselines3", "PPO"),
                "dqn": ("stable_baselines3", "DQN")}


def algo_name(model: Any) -> str:
    """The config name (``maskable_ppo`` / ``ppo`` / ``dqn``) of an SB3 model instance."""
    return {"MaskablePPO": "maskable_ppo", "PPO": "ppo", "DQN": "dqn"}.get(type(model).__name__,
                                                                          type(model).__name__.lower())


class MaskedPredictor:
    """Greedy masked action selection for any supported SB3 model.

    MaskablePPO predicts with ``action_masks``; PPO takes the argmax of its masked logits and
    DQN of its masked Q-values, so neither ever picks a masked action when a mask is given.
    Other models fall back to ``model.predict`` (an infeasible action is then refused by the
    environment). Has the ``predict`` signature that ``evaluate_policy`` calls, so periodic
    evaluation during training and deployment choose actions the same way.
    """

    def __init__(self, model: Any) -> None:
        self.model = model
        self.algo = algo_name(model)

    def scores(self, obs: np.ndarray) -> np.ndarray | None:
        """Per-action logits (PPO family) or Q-values (DQN), shape (batch, n); None if unknown."""
        import torch as th

        policy = self.model.policy
        obs_t, _ = policy.obs_to_tensor(obs)
        with th.no_grad():
            if self.algo == "dqn":
                return self.model.q_net(obs_t).cpu().numpy()
            if self.algo in ("ppo", "maskable_ppo"):
                dist = policy.get_distribution(obs_t)
                return dist.distribution.logits.cpu().numpy()
        return None

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: Any = None,
        deterministic: bool = True,
        action_masks: np.ndarray | None = None,
    ) -> tuple[np.ndarray, None]:
        obs = np.asarray(observation, dtype=np.float32)
        single = obs.ndim == len(self.model.observation_space.shape)
        batch = obs[None] if single else obs
        masks = None
        if action_masks is not None:
            masks = np.asarray(action_masks, dtype=bool).reshape(len(batch), -1)
            if not masks.any(axis=1).all():
                masks = None  # nothing allowed: let the model choose; the env refuses it
        if self.algo == "maskable_ppo":
            act, _ = self.model.predict(batch, deterministic=deterministic, action_masks=masks)
        elif masks is not None and deterministic and (sc := self.scores(batch)) is not None:
            act = np.where(masks, sc, -np.inf).argmax(axis=1)
        else:
            act, _ = self.model.predict(batch, deterministic=deterministic)
        act = np.asarray(act).reshape(len(batch))
        return (act[0] if single else act), None


class SB3Policy:
    """A trained SB3 model as a deployable Policy (greedy, masked, normalised like training)."""

    def __init__(self, model: Any, *, name: str, vecnormalize: Any = None,
                 metadata: dict | None = None, path: Path | None = None,
                 obs_index: np.ndarray | None = None) -> None:
        self.model = model
        self.obs_index = obs_index  # the env's features this model was trained on (None: all)
        self.name = name
        self.vecnormalize = vecnormalize
        self.metadata = metadata or {}
        self.path = path
        self.env: ControlContext | None = None
        self._predictor = MaskedPredictor(model)

    def bind(self, env: Any) -> None:
        """Keep the environment for its action masks (checked for fit at load time)."""
        self.env = context_of(env)

    def reset(self) -> None:
        """Stateless (MLP policies): nothing to forget."""

    def normalize(self, observation: np.ndarray) -> np.ndarray:
        obs = np.asarray(observation, dtype=np.float32)
        if self.obs_index is not None:
            obs = obs[..., self.obs_index]
        if self.vecnormalize is not None and getattr(self.vecnormalize, "norm_obs", False):
            obs = np.asarray(self.vecnormalize.normalize_obs(obs), dtype=np.float32)
        return obs

    def act(self, observation: np.ndarray, info: dict[str, Any] | None = None) -> int:
        mask = (info or {}).get("action_mask")
        if mask is None and self.env is not None:
            mask = self.env.action_masks()
        action, _ = self._predictor.predict(self.normalize(observation), deterministic=True, action_masks=mask)
        return int(action)


# ---------------------------------------------------------------------- loading
def resolve_checkpoint(path: str | Path) -> tuple[Path, Path]:
    """(run folder, model file) for a run folder or a ``.zip`` path."""
    p = Path(path).expanduser()
    if not p.exists():
        # shipped policies: ``efficientnet`` or ``checkpoints/efficientnet`` from any directory
        from clover_rl.paths import checkpoints_dir

        rel = Path(*p.parts[1:]) if len(p.parts) > 1 and p.parts[0] == "checkpoints" else p
        shipped = checkpoints_dir() / rel
        if not p.is_absolute() and shipped.exists():
            p = shipped
        else:
            raise CheckpointError(f"checkpoint not found: {path}")
    if p.is_dir():
        model = p / MODEL_FILE
        if not model.exists():
            raise CheckpointError(f"{p}: no {MODEL_FILE} in this folder (not a clover-rl run folder)")
        return p, model
    if p.suffix != ".zip":
        raise CheckpointError(f"{p}: expected a run folder or a model .zip")
    return p.parent, p


def read_metadata(run_dir: Path) -> dict:
    path = run_dir / METADATA_FILE
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: unreadable metadata ({e})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: metadata must be a JSON object")
    return data


def env_spaces(env: Any) -> dict[str, Any]:
    """The facts about an environment (or controller) that decide whether a checkpoint fits it."""
    u = context_of(env)
    return {
        "observation_shape": list(u.observation_space.shape),
        "action_count": int(u.action_space.n),
        "observation_names": list(u.model.layout.names),
        "catalog_signature": u.catalog.signature,
        "service": u.model.service.name,
        "gpu": u.scenario.gpu,
    }


def observation_index(saved: dict, env: Any) -> np.ndarray | None:
    """Where a checkpoint's observation features sit in ``env``'s observation, when the env has
    them all and more (features added after the checkpoint was trained); None otherwise."""
    names = saved.get("observation_names")
    now = env_spaces(env).get("observation_names")
    if not names or not now or list(names) == list(now) or not set(names) <= set(now):
        return None
    return np.array([list(now).index(n) for n in names], dtype=np.int64)


def mismatches(saved: dict, env: Any) -> list[str]:
    """Human-readable differences between a checkpoint's recorded spaces and ``env``'s."""
    now = env_spaces(env)
    if observation_index(saved, env) is not None:  # the checkpoint reads a subset by name
        saved = {k: v for k, v in saved.items() if k not in ("observation_shape", "observation_names")}
    out: list[str] = []
    labels = {"observation_shape": "observation shape", "action_count": "action count",
              "catalog_signature": "configuration catalog signature", "service": "scenario service",
              "gpu": "scenario gpu"}
    for key, label in labels.items():
        if key in saved and key in now and _norm(saved[key]) != _norm(now[key]):
            out.append(f"{label} {_show(saved[key])} (checkpoint) != {_show(now[key])} (env)")
    if ("observation_names" in saved and "observation_names" in now and not any("observation shape" in m for m in out)
            and list(saved["observation_names"]) != list(now["observation_names"])):
        diff = [f"{a}!={b}" for a, b in zip(saved["observation_names"], now["observation_names"]) if a != b]
        out.append(f"observation layout differs ({', '.join(diff[:3])})")
    return out


def _norm(v: Any) -> Any:
    return tuple(v) if isinstance(v, (list, tuple)) else v


def _show(v: Any) -> str:
    return "x".join(str(x) for x in v) if isinstance(v, (list, tuple)) else str(v)


def _algo_class(algo: str) -> type:
    import importlib

    if algo not in ALGO_CLASSES:
        raise CheckpointError(f"unknown algorithm {algo!r} in checkpoint metadata (known: {', '.join(ALGO_CLASSES)})")
    mod, cls = ALGO_CLASSES[algo]
    return getattr(importlib.import_module(mod), cls)


def _detect_algo(model_path: Path) -> str:
    """The algorithm of a bare model.zip (no metadata), from the policy class it recorded."""
    try:
        with zipfile.ZipFile(model_path) as zf:
            data = json.loads(zf.read("data").decode())
    except (OSError, KeyError, zipfile.BadZipFile, json.JSONDecodeError) as e:
        raise CheckpointError(f"{model_path}: not an SB3 model file ({e})") from None
    text = json.dumps(data.get("policy_class", ""))
    if "sb3_contrib.common.maskable" in text:
        return "maskable_ppo"
    if "dqn" in text.lower():
        return "dqn"
    return "ppo"


def vecnormalize_path(model_path: Path) -> Path:
    """``model.zip`` -> ``vecnormalize.pkl``, ``last_model.zip`` -> ``last_vecnormalize.pkl``."""
    return model_path.with_name(model_path.stem.replace("model", "vecnormalize") + ".pkl")


def load_model(model_path: Path, algo: str, device: str = "cpu") -> Any:
    """Load an SB3 zip with one-line errors."""
    cls = _algo_class(algo)
    try:
        return cls.load(str(model_path), device=device)
    except CheckpointError:
        raise
    except Exception as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CheckpointError(f"{model_path}: cannot load {algo} model ({msg})") from None


def load_vecnormalize(path: Path) -> Any:
    """VecNormalize statistics saved next to a model (usable without an attached VecEnv)."""
    try:
        with open(path, "rb") as f:
            vn = pickle.load(f)
    except Exception as e:
        raise CheckpointError(f"{path}: cannot load normalisation statistics ({e})") from None
    vn.training = False
    return vn


def load_policy(path: str | Path, env: Any, *, device: str = "cpu") -> SB3Policy:
    """Load a run folder (or ``model.zip``) as a Policy bound to ``env``.

    Raises CheckpointError when the checkpoint is missing/corrupt or its spaces differ from
    the environment's (observation shape, action count, catalog signature, service/GPU).
    """
    run_dir, model_path = resolve_checkpoint(path)
    meta = read_metadata(run_dir)
    problems = mismatches(meta, env)
    if problems:
        raise CheckpointError(f"checkpoint {run_dir} does not fit this environment: {'; '.join(problems)}")
    algo = meta.get("algo") or _detect_algo(model_path)
    model = load_model(model_path, algo, device)
    # the model's own spaces (also covers bare zips without metadata)
    u = context_of(env)
    problems = []
    index = observation_index(meta, env)
    env_shape = (len(index),) if index is not None else tuple(u.observation_space.shape)
    if tuple(model.observation_space.shape) != env_shape:
        problems.append(f"observation shape {_show(model.observation_space.shape)} (checkpoint) != "
                        f"{_show(u.observation_space.shape)} (env)")
    if getattr(model.action_space, "n", None) != getattr(u.action_space, "n", None):
        problems.append(f"action count {getattr(model.action_space, 'n', '?')} (checkpoint) != "
                        f"{getattr(u.action_space, 'n', '?')} (env)")
    if problems:
        raise CheckpointError(f"checkpoint {model_path} does not fit this environment: {'; '.join(problems)}")
    vn_path = vecnormalize_path(model_path)
    vn = load_vecnormalize(vn_path) if vn_path.exists() else None
    name = meta.get("policy_name") or f"{algo}:{run_dir.name}"
    policy = SB3Policy(model, name=name, vecnormalize=vn, metadata=meta, path=run_dir, obs_index=index)
    policy.bind(env)
    return policy
