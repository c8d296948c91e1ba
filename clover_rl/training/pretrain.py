"""Imitation warm start before PPO: behaviour cloning (DAgger rounds) from an implementable expert.

PPO from scratch on the paper's score settles on one configuration everywhere (two runs did:
the switching that the oracle earns is rare and small per interval, so the policy gradient
barely sees it). A warm start puts the policy near a good controller first, and PPO then only
fine-tunes it. The expert is ``mpc`` (:class:`clover_rl.agents.mpc.MPCPolicy`): it plans on the
profile model with the *forecast* intensity and the current load -- what the observation holds
-- never with hindsight, so its choices are ones a policy can learn to make from what it sees.

Recipe (``pretrain:`` block of a training config,
:class:`~clover_rl.training.pretrain_config.PretrainConfig`):

1. round 0: roll the expert out on ``episodes`` training episodes (the training env's domain
   randomisation: grids, synthetic traces, loads; never a benchmark case), record (observation,
   action mask, expert action, reward);
2. fit the policy: ``epochs`` passes of masked cross-entropy ``-log pi(a_expert | s)`` (the
   policy's own masked distribution, so masked actions get no probability) plus
   ``value_coef x`` the squared error of the value head against the episodes' discounted returns
   (``gamma`` of the PPO hyperparameters), so PPO starts with a critic that matches the actor;
3. rounds 1..: DAgger (Ross et al., AISTATS 2011): roll out the *learner* (greedy, masked), mixed
   with the expert with probability ``beta^round``, label every visited state with the expert's
   action, aggregate, refit -- so the policy also learns what to do in states the expert alone
   never reaches.

TensorBoard: ``pretrain/loss``, ``pretrain/cross_entropy``, ``pretrain/value_loss``,
``pretrain/accuracy`` (fit agreement with the expert) per epoch and ``pretrain/rollout_agreement``
(how often the learner's greedy action equals the expert's on its own rollouts) per round.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from clover_rl.progress import ProgressBar
from clover_rl.training.pretrain_config import EXPERTS, PretrainConfig

__all__ = ["EXPERTS", "Dataset", "PretrainConfig", "fit", "make_expert", "pretrain", "rollout"]


@dataclass
class Dataset:
    """Aggregated DAgger data: observations (N, D), masks (N, A) bool, expert actions (N,), returns (N,)."""

    obs: list[np.ndarray] = field(default_factory=list)
    masks: list[np.ndarray] = field(default_factory=list)
    actions: list[int] = field(default_factory=list)
    returns: list[float] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.actions)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        return (np.asarray(self.obs, dtype=np.float32), np.asarray(self.masks, dtype=bool),
                np.asarray(self.actions, dtype=np.int64), np.asarray(self.returns, dtype=np.float32))


def make_expert(cfg: PretrainConfig, env: Any, seed: int = 0) -> Any:
    """The bound expert policy for ``env``."""
    from clover_rl.agents.registry import make_policy

    return make_policy(cfg.expert, env, seed=seed, **cfg.expert_kwargs)


def rollout(env: Any, expert: Any, policy: Any, data: Dataset, *, episodes: int, beta: float,
            gamma: float, rng: np.random.Generator, seed: int) -> float:
    """Run ``episodes`` episodes of ``env`` acting with the expert (probability ``beta``) or the
    learner ``policy`` (greedy, masked; ``None``: the expert always), label every state with the
    expert's action into ``data``. Returns the share of states where the learner's greedy action
    equals the expert's (NaN when the learner never acted)."""
    agree = n_learner = 0
    for ep in range(episodes):
        obs, info = env.reset(seed=seed + ep)
        expert.reset()
        rewards: list[float] = []
        done = False
        while not done:
            mask = np.asarray(env.unwrapped.action_masks(), dtype=bool)
            a_exp = int(expert.act(obs, info))
            action = a_exp
            if policy is not None and rng.random() >= beta:
                kw = {"action_masks": mask} if _maskable(policy) else {}
                a_pol, _ = policy.predict(obs, deterministic=True, **kw)
                action = int(np.asarray(a_pol).reshape(-1)[0])
                n_learner += 1
                agree += int(action == a_exp)
            data.obs.append(np.asarray(obs, dtype=np.float32))
            data.masks.append(mask)
            data.actions.append(a_exp)
            obs, reward, terminated, truncated, info = env.step(action)
            rewards.append(float(reward))
            done = bool(terminated or truncated)
        ret, out = 0.0, []
        for r in reversed(rewards):
            ret = r + gamma * ret
            out.append(ret)
        data.returns.extend(reversed(out))
    return agree / n_learner if n_learner else float("nan")


def fit(policy: Any, data: Dataset, *, epochs: int, batch_size: int, optimizer: Any, value_coef: float,
        rng: np.random.Generator, logger: Any = None, step0: int = 0, on_epoch: Any = None) -> dict[str, float]:
    """``epochs`` passes of masked cross-entropy (+ value regression) over ``data``; returns the
    last epoch's means (``cross_entropy``, ``value_loss``, ``accuracy``)."""
    import torch as th

    obs, masks, acts, rets = data.arrays()
    n = len(acts)
    policy.set_training_mode(True)
    last: dict[str, float] = {}
    for epoch in range(epochs):
        order = rng.permutation(n)
        sums = np.zeros(3)
        for i in range(0, n, batch_size):
            idx = order[i:i + batch_size]
            o, m = th.as_tensor(obs[idx]), masks[idx]
            a, r = th.as_tensor(acts[idx]), th.as_tensor(rets[idx])
            kw = {"action_masks": m} if _maskable(policy) else {}
            dist = policy.get_distribution(o, **kw)  # masked: masked actions have probability 0
            ce = -dist.log_prob(a).mean()
            vloss = ((policy.predict_values(o).flatten() - r) ** 2).mean()
            loss = ce + value_coef * vloss
            optimizer.zero_grad()
            loss.backward()
            th.nn.utils.clip_grad_norm_(policy.parameters(), 0.5)
            optimizer.step()
            hit = (dist.distribution.probs.detach().argmax(-1) == a).float().mean()
            sums += np.array([ce.item(), vloss.item(), hit.item()]) * len(idx)
        ce_m, v_m, acc_m = sums / n
        last = {"cross_entropy": ce_m, "value_loss": v_m, "accuracy": acc_m}
        if logger is not None:
            logger.record("pretrain/loss", ce_m + value_coef * v_m)
            for k, v in last.items():
                logger.record(f"pretrain/{k}", v)
            logger.record("pretrain/samples", n)
            logger.dump(step0 + epoch)
        if on_epoch is not None:
            on_epoch()
    policy.set_training_mode(False)
    return last


def pretrain(model: Any, train_cfg: Any, cfg: PretrainConfig, *, progress: bool = True) -> dict[str, Any]:
    """Warm-start ``model.policy`` (an SB3 PPO-family model) by imitation of ``cfg.expert`` on
    ``train_cfg``'s training environment; logs ``pretrain/*`` to the model's logger. Returns a
    summary for the run's metadata (samples, final fit figures, agreement per round, seconds)."""
    import torch as th

    from clover_rl.training.envs import build_env

    t0 = time.perf_counter()
    env = build_env(train_cfg.scenario, dict(train_cfg.env_kwargs))
    rng = np.random.default_rng(train_cfg.seed + 7919)
    gamma = float(train_cfg.hyperparams.get("gamma", 0.99))
    optimizer = th.optim.Adam(model.policy.parameters(), lr=cfg.learning_rate)
    logger = getattr(model, "_logger", None)
    data = Dataset()
    summary: dict[str, Any] = {**cfg.to_dict(), "rounds_agreement": []}
    try:
        expert = make_expert(cfg, env, seed=train_cfg.seed)
        total = cfg.rounds * (cfg.episodes + cfg.epochs)
        with ProgressBar(progress, "pretrain (episodes + epochs)", total=total) as bar:
            for k in range(cfg.rounds):
                beta = cfg.beta ** k
                agreement = rollout(env, expert, None if k == 0 else model.policy, data, episodes=cfg.episodes,
                                    beta=beta, gamma=gamma, rng=rng,
                                    seed=train_cfg.seed * 1_000_003 + 2**20 + k * cfg.episodes)
                bar.advance(cfg.episodes)
                if k > 0:
                    summary["rounds_agreement"].append(round(agreement, 4))
                    if logger is not None:
                        logger.record("pretrain/rollout_agreement", agreement)
                last = fit(model.policy, data, epochs=cfg.epochs, batch_size=cfg.batch_size, optimizer=optimizer,
                           value_coef=cfg.value_coef, rng=rng, logger=logger, step0=k * cfg.epochs,
                           on_epoch=bar.advance)
    finally:
        env.close()
    summary.update({"samples": len(data), **{k: round(float(v), 5) for k, v in last.items()},
                    "wall_s": round(time.perf_counter() - t0, 1)})
    return summary


def _maskable(policy: Any) -> bool:
    from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy

    return isinstance(policy, MaskableActorCriticPolicy)
