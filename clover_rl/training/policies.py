"""Actor-critic policies whose action head scores configurations by their graph.

A plain SB3 head learns one independent logit row per action: with ~1300 configurations, a
configuration is only learned about when it is sampled, and PPO settles on the single best
configuration on average long before it has tried the alternatives in every carbon regime.
Configurations are not arbitrary labels, though: each is the paper's bipartite graph (edge
counts per variant x slice type). This head embeds that graph and scores

    logit[a] = <W h(s), psi(graph_a)> + b_a

so what is learned about "more large-variant slices when carbon is low" transfers to every
configuration with that structure, and the optimum can move with the carbon intensity. It
also has far fewer weights than a ``latent x n_actions`` matrix (small model files).

``action_features`` (the catalog's graph edge counts, one row per action) is injected by the
training code and saved in the model's state dict; it must match the environment's catalog,
which ``load_policy`` checks through the catalog signature.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch as th
from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
from stable_baselines3.common.policies import ActorCriticPolicy
from torch import nn

from clover_rl.errors import ConfigError

GRAPH_POLICY = "GraphMlpPolicy"
PROFILE_POLICY = "ProfileGraphPolicy"  # clover_rl.training.profile_policy


class GraphActionHead(nn.Module):
    """logits = proj(latent) @ psi(features / max)^T + bias.

    ``features`` (edge counts, small ints) is a persistent uint8 buffer: saved in the model's
    state dict (compact) rather than in its JSON policy kwargs.
    """

    def __init__(self, latent_dim: int, n_actions: int, n_features: int, features: np.ndarray | None = None,
                 embed_dim: int = 16, hidden: int = 32) -> None:
        super().__init__()
        buf = th.zeros((n_actions, n_features), dtype=th.uint8)
        if features is not None:
            f = np.asarray(features)
            if f.shape != (n_actions, n_features) or f.min() < 0 or f.max() > 255:
                raise ConfigError(f"{GRAPH_POLICY}: action_features must be ({n_actions}, {n_features}) "
                                  f"counts in 0..255, got shape {f.shape}")
            buf = th.as_tensor(np.rint(f).astype(np.uint8))
        self.register_buffer("features", buf)
        self.psi = nn.Sequential(nn.Linear(n_features, hidden), nn.Tanh(), nn.Linear(hidden, embed_dim))
        self.proj = nn.Linear(latent_dim, embed_dim)
        self.bias = nn.Parameter(th.zeros(n_actions))
        nn.init.orthogonal_(self.proj.weight, gain=0.01)
        nn.init.zeros_(self.proj.bias)

    def forward(self, latent: th.Tensor) -> th.Tensor:
        f = self.features.float()
        f = f / f.max().clamp(min=1.0)
        return self.proj(latent) @ self.psi(f).T + self.bias


class _GraphHeadMixin:
    """Shared by the PPO and MaskablePPO policies: put first in the bases so it wraps both."""

    def __init__(self, *args: Any, action_features: Any = None, n_action_features: int | None = None,
                 action_embed_dim: int = 16, action_hidden: int = 32, **kwargs: Any) -> None:
        self._init_graph(action_features, n_action_features, action_embed_dim, action_hidden)
        super().__init__(*args, **kwargs)

    def _build(self, lr_schedule: Any) -> None:
        super()._build(lr_schedule)  # type: ignore[misc]
        self._install_graph_head(lr_schedule)

    def _init_graph(self, action_features: Any, n_action_features: int | None, embed_dim: int, hidden: int) -> None:
        if action_features is None and n_action_features is None:
            raise ConfigError(f"{GRAPH_POLICY} needs action_features (set by the training code)")
        self._action_features = action_features
        self._n_features = int(n_action_features if n_action_features is not None
                               else np.asarray(action_features).shape[1])
        self._embed_dim, self._hidden = embed_dim, hidden

    def _install_graph_head(self, lr_schedule: Any) -> None:
        n = int(self.action_space.n)  # type: ignore[attr-defined]
        self.action_net = GraphActionHead(self.mlp_extractor.latent_dim_pi, n,  # type: ignore[attr-defined]
                                          self._n_features, self._action_features, self._embed_dim, self._hidden)
        self._action_features = None  # lives in the state dict from now on
        self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1),  # type: ignore[attr-defined]
                                              **self.optimizer_kwargs)  # type: ignore[attr-defined]


class GraphActorCriticPolicy(_GraphHeadMixin, ActorCriticPolicy):
    """PPO policy with the graph action head."""


class MaskableGraphActorCriticPolicy(_GraphHeadMixin, MaskableActorCriticPolicy):
    """MaskablePPO policy with the graph action head."""


def resolve_policy(name: str, algo: str) -> Any:
    """The policy argument for SB3: our class for ``GraphMlpPolicy``, else the name itself."""
    if name == PROFILE_POLICY:
        from clover_rl.training.profile_policy import (
            MaskableProfileActorCriticPolicy,
            ProfileActorCriticPolicy,
        )

        if algo in ("maskable_ppo", "ppo"):
            return MaskableProfileActorCriticPolicy if algo == "maskable_ppo" else ProfileActorCriticPolicy
        raise ConfigError(f"policy {PROFILE_POLICY} is for maskable_ppo and ppo, not {algo}")
    if name != GRAPH_POLICY:
        return name
    if algo == "maskable_ppo":
        return MaskableGraphActorCriticPolicy
    if algo == "ppo":
        return GraphActorCriticPolicy
    raise ConfigError(f"policy {GRAPH_POLICY} is for maskable_ppo and ppo, not {algo}")


def graph_features(env: Any) -> np.ndarray:
    """The catalog's graph edge counts, one row per action."""
    u = getattr(env, "unwrapped", env)
    return np.rint(u.catalog.graphs).astype(np.uint8)


def strip_features(model: Any) -> None:
    """Keep the (large) feature matrix out of the saved JSON policy kwargs: the head's state
    dict carries it, and loading rebuilds the head from ``n_action_features``."""
    pk = getattr(model, "policy_kwargs", None)
    if isinstance(pk, dict) and pk.get("action_features") is not None:
        pk["n_action_features"] = int(np.asarray(pk.pop("action_features")).shape[1])
