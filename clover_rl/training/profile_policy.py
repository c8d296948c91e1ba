"""``ProfileGraphPolicy``: an actor whose logits combine the state with per-configuration profile
features, so one set of weights scores any configuration at any intensity and load.

    logit[a] = sum_k w_k(s) F[level(s), a, k] + w_stay(s) [a is the current configuration]
               + <P h(s), psi(graph_a)>

where ``F`` also holds four products with the observed intensity ``x`` (now) and ``xf`` (the
forecast's mean): the objective value ``v0 + x slope`` and ``v0 + xf slope`` and the carbon
``x carbon`` and ``xf carbon`` -- so a *constant* weight on the first ranks configurations by the
profile model's value at the current intensity, whatever the grid, and PPO learns how far to
trust it against the rest (switching, forecast, budget left).

``F`` (:mod:`clover_rl.training.profile_features`: objective value on a carbon-free grid, its
slope in the intensity, carbon vs BASE, accuracy, p95/SLA, within-SLA, at the load level at or
above the observed rate) is a buffer in the state dict, computed from the profile model when
training starts. ``w(s)`` comes from the actor's latent *and* the raw observation (intensity
now and forecast, load, budget and window left, ...), through a linear path plus a small tanh
layer: the paper's score at intensity ``x`` is ``v0 + x slope``, so the myopic optimum is a
*linear* function of observation x features that the head can represent exactly; what is
learned on one grid transfers to any level of intensity. The graph term (the paper's bipartite
graph embedding, as in :mod:`clover_rl.training.policies`) is kept for what the features miss
(reconfiguration downtime). There is no per-action bias: nothing the head learns is tied to one
configuration's index.

The actor's latent is the MLP output followed by the raw observation (``ObsPassExtractor``),
which is how the head reads the load, the intensity and the current configuration.

``value_scale`` (policy kwarg, default 1: the head as first shipped) multiplies the value
features (``v0``, ``slope`` and the two value products) before the weights apply. Objective
values per interval are ~0.1 and the differences that decide a switch ~1e-3 (an LLM on H100:
three partitions of one model within 0.002 of each other), so at scale 1 the weights must reach
~1e4 to tell them apart by a logit or two; a fit of a few thousand Adam steps gets them to ~200
(measured on checkpoints/llm-h100: value weights 27-115 against a stay bonus of 2.3), and the
clone falls back on proxies (accuracy, carbon, p95) that miss close calls. Scale 100 puts those
differences in logit range from the start.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch as th
from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
from stable_baselines3.common.policies import ActorCriticPolicy
from torch import nn

from clover_rl.errors import ConfigError

PROFILE_POLICY = "ProfileGraphPolicy"


class ObsPassExtractor(nn.Module):
    """Wraps SB3's ``MlpExtractor``: the actor latent is ``[mlp(obs), obs]``, the critic's unchanged."""

    def __init__(self, inner: nn.Module, obs_dim: int) -> None:
        super().__init__()
        self.inner = inner
        self.latent_dim_pi = int(inner.latent_dim_pi) + obs_dim  # type: ignore[arg-type]
        self.latent_dim_vf = int(inner.latent_dim_vf)  # type: ignore[arg-type]

    def forward(self, features: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        pi, vf = self.inner(features)
        return th.cat([pi, features], dim=-1), vf

    def forward_actor(self, features: th.Tensor) -> th.Tensor:
        return th.cat([self.inner.forward_actor(features), features], dim=-1)

    def forward_critic(self, features: th.Tensor) -> th.Tensor:
        return self.inner.forward_critic(features)


class ProfileActionHead(nn.Module):
    """The logits of the module docstring. Shapes: ``graph`` (A, G) edge counts; ``table``
    (L, A, P); ``levels`` (L,) load ratios ascending; ``layout`` the observation indices
    ``{"rate": i, "graph": [start, stop]}``."""

    def __init__(self, hidden_dim: int, obs_dim: int, n_actions: int, n_graph: int, n_levels: int,
                 n_profile: int, layout: dict[str, Any], graph: np.ndarray | None = None,
                 table: np.ndarray | None = None, levels: np.ndarray | None = None,
                 embed_dim: int = 16, hidden: int = 32, value_scale: float = 1.0) -> None:
        super().__init__()
        if not (np.isfinite(value_scale) and value_scale > 0):
            raise ConfigError(f"{PROFILE_POLICY}: value_scale must be a positive number (got {value_scale!r})")
        self.hidden_dim, self.obs_dim = hidden_dim, obs_dim
        self.value_scale = float(value_scale)
        self.rate_index = int(layout["rate"])
        # with layout["ci"] = [now, stop]: the features at the observed intensity now and at the
        # forecast's mean (value v0 + x slope, carbon x carbon-at-1), 4 per configuration
        ci = layout.get("ci")
        self.ci = (int(ci[0]), int(ci[1])) if ci else None
        n_extra = 4 if self.ci else 0
        g0, g1 = (int(x) for x in layout["graph"])
        if g1 - g0 != n_graph:
            raise ConfigError(f"{PROFILE_POLICY}: graph block {g0}:{g1} of the observation != {n_graph} features")
        self.g0, self.g1 = g0, g1
        self.state_index = [i for i in range(obs_dim) if not g0 <= i < g1]
        self.register_buffer("graph", _buffer(graph, (n_actions, n_graph), th.uint8, "graph"))
        self.register_buffer("table", _buffer(table, (n_levels, n_actions, n_profile), th.float32, "table"))
        self.register_buffer("levels", _buffer(levels, (n_levels,), th.float32, "levels"))
        d = hidden_dim + len(self.state_index)
        self.coef_lin = nn.Linear(d, n_profile + n_extra + 1)
        self.coef_mlp = nn.Sequential(nn.Linear(d, hidden), nn.Tanh(), nn.Linear(hidden, n_profile + n_extra + 1))
        self.psi = nn.Sequential(nn.Linear(n_graph, hidden), nn.Tanh(), nn.Linear(hidden, embed_dim))
        self.proj = nn.Linear(hidden_dim, embed_dim)
        for lin in (self.coef_lin, self.coef_mlp[2], self.proj):
            nn.init.orthogonal_(lin.weight, gain=0.01)
            nn.init.zeros_(lin.bias)

    def level_index(self, rate: th.Tensor) -> th.Tensor:
        """Index of the first load level >= ``rate`` (clamped to the table)."""
        k = th.searchsorted(self.levels, rate.contiguous() - 1e-4)
        return k.clamp(0, len(self.levels) - 1)

    def forward(self, latent: th.Tensor) -> th.Tensor:
        h, obs = latent[..., : self.hidden_dim], latent[..., self.hidden_dim:]
        feats = self.table[self.level_index(obs[..., self.rate_index])]  # (B, A, P)
        if self.value_scale != 1.0:  # v0 and slope (the products below scale with them)
            feats = th.cat([feats[..., :2] * self.value_scale, feats[..., 2:]], -1)
        if self.ci is not None:
            x = obs[..., self.ci[0], None]  # (B, 1): intensity now / the reference
            xf = obs[..., self.ci[0] + 1:self.ci[1]].mean(-1, keepdim=True) if self.ci[1] > self.ci[0] + 1 else x
            v0, slope, carbon = feats[..., 0], feats[..., 1], feats[..., 2]
            feats = th.cat([feats, th.stack([v0 + x * slope, v0 + xf * slope, x * carbon, xf * carbon], -1)], -1)
        g = self.graph.float()
        current = ((g[None] / 7.0 - obs[..., None, self.g0:self.g1]).abs().amax(-1) < 1e-3).float()  # (B, A)
        x = th.cat([h, obs[..., self.state_index]], dim=-1)
        w = self.coef_lin(x) + self.coef_mlp(x)  # (B, P + 1)
        logits = (feats * w[..., None, :-1]).sum(-1) + w[..., -1:] * current
        return logits + self.proj(h) @ self.psi(g / g.max().clamp(min=1.0)).T


def _buffer(value: Any, shape: tuple[int, ...], dtype: th.dtype, name: str) -> th.Tensor:
    if value is None:
        return th.zeros(shape, dtype=dtype)
    a = np.asarray(value)
    if a.shape != shape:
        raise ConfigError(f"{PROFILE_POLICY}: {name} must have shape {shape}, got {a.shape}")
    if dtype == th.uint8:
        if a.min() < 0 or a.max() > 255:
            raise ConfigError(f"{PROFILE_POLICY}: {name} must be counts in 0..255")
        a = np.rint(a).astype(np.uint8)
    return th.as_tensor(np.ascontiguousarray(a)).to(dtype)


class _ProfileHeadMixin:
    """Shared by the PPO and MaskablePPO policies (first in the bases, so it wraps both)."""

    def __init__(self, *args: Any, profile: dict[str, Any] | None = None, action_embed_dim: int = 16,
                 action_hidden: int = 32, value_scale: float = 1.0, **kwargs: Any) -> None:
        if not profile:
            raise ConfigError(f"{PROFILE_POLICY} needs profile features (set by the training code)")
        self._profile = dict(profile)
        self._embed_dim, self._hidden, self._value_scale = action_embed_dim, action_hidden, value_scale
        super().__init__(*args, **kwargs)

    def _build_mlp_extractor(self) -> None:
        super()._build_mlp_extractor()  # type: ignore[misc]
        self.mlp_extractor = ObsPassExtractor(self.mlp_extractor, int(self.features_dim))  # type: ignore[attr-defined]

    def _build(self, lr_schedule: Any) -> None:
        super()._build(lr_schedule)  # type: ignore[misc]
        p = self._profile
        n = int(self.action_space.n)  # type: ignore[attr-defined]
        hidden_dim = self.mlp_extractor.latent_dim_pi - int(self.features_dim)  # type: ignore[attr-defined]
        self.action_net = ProfileActionHead(
            hidden_dim, int(self.features_dim), n, int(p["n_graph"]), int(p["n_levels"]),  # type: ignore[attr-defined]
            int(p["n_profile"]), p["layout"], p.get("graph"), p.get("table"), p.get("levels"),
            self._embed_dim, self._hidden, self._value_scale)
        for k in ("graph", "table", "levels"):  # they live in the state dict from now on
            p.pop(k, None)
        self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1),  # type: ignore[attr-defined]
                                              **self.optimizer_kwargs)  # type: ignore[attr-defined]


class ProfileActorCriticPolicy(_ProfileHeadMixin, ActorCriticPolicy):
    """PPO policy with the profile action head."""


class MaskableProfileActorCriticPolicy(_ProfileHeadMixin, MaskableActorCriticPolicy):
    """MaskablePPO policy with the profile action head."""


def profile_kwargs(env: Any, cache_dir: str | Path | None = None) -> dict[str, Any]:
    """The ``profile`` policy argument for ``env``: graph counts, profile features at every load
    level (:func:`~clover_rl.training.profile_features.profile_features`), observation indices.
    ``cache_dir``: keep the features there (``profile_<hash>.npz``, keyed by the scenario,
    catalog and feature definitions) so seeds and reruns of a scenario skip the minutes it costs."""
    from clover_rl.envs.randomization import load_levels
    from clover_rl.training.profile_features import FEATURES, profile_features

    u = getattr(env, "unwrapped", env)
    names = list(u.model.layout.names)
    graph_cols = [i for i, n in enumerate(names) if n.startswith("graph[")]
    prof = getattr(u.model, "profile", None)  # None for the LLM model (its physics are the catalog)
    prof_path = getattr(prof, "path", None)
    key = hashlib.sha1(json.dumps([u.scenario.model_dump(mode="json"), u.catalog.signature, FEATURES,
                                   load_levels(u.model.mean_rate).tolist(), prof_path and str(prof_path)],
                                  sort_keys=True, default=str).encode()).hexdigest()[:16]
    path = Path(cache_dir) / f"profile_{key}.npz" if cache_dir is not None else None
    if path is not None and path.is_file():
        with np.load(path) as z:
            levels, table = z["levels"], z["table"]
    else:
        levels, table = profile_features(u)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            np.savez_compressed(path, levels=levels, table=table)
    graph = np.rint(u.catalog.graphs).astype(np.uint8)
    return {"graph": graph, "table": table, "levels": levels, "n_graph": graph.shape[1],
            "n_levels": len(levels), "n_profile": table.shape[2],
            "layout": {"rate": names.index("request_rate"), "graph": [graph_cols[0], graph_cols[-1] + 1],
                       "ci": [names.index("ci_now"), names.index("ci_now") + 1 + u.scenario.carbon.forecast_hours]}}


def strip_profile(model: Any) -> None:
    """Keep the feature arrays out of the saved policy kwargs (the state dict carries them)."""
    pk = getattr(model, "policy_kwargs", None)
    if isinstance(pk, dict) and isinstance(pk.get("profile"), dict):
        pk["profile"] = {k: v for k, v in pk["profile"].items() if k not in ("graph", "table", "levels")}
