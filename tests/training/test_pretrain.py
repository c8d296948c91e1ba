"""Imitation warm start (clover_rl.training.pretrain): config checks, behaviour cloning lowers the
cross-entropy to the expert on a tiny case, masked actions are never chosen, and `train` with a
``pretrain:`` block logs ``pretrain/*`` and records the warm start in the run's metadata."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch as th
import yaml

from clover_rl.errors import ConfigError
from clover_rl.paths import configs_dir
from clover_rl.training import config_from_dict
from clover_rl.training.pretrain import Dataset, PretrainConfig, fit, make_expert, rollout

SMOKE = configs_dir() / "train" / "smoke.yaml"


@pytest.mark.parametrize("block, needle", [
    ({"expert": "oracle"}, "pretrain.expert"),  # hindsight is not imitable
    ({"episodes": 0}, "pretrain.episodes"),
    ({"beta": 1.5}, "pretrain.beta"),
    ({"epoch": 3}, "epoch"),
    ([1, 2], "pretrain"),
])
def test_bad_pretrain_blocks_are_one_line_errors(block: object, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle) as e:
        config_from_dict({**yaml.safe_load(SMOKE.read_text()), "pretrain": block}, "bc.yaml")
    assert "\n" not in str(e.value)


def test_absent_block_means_no_warm_start_and_dqn_refuses_one() -> None:
    base = yaml.safe_load(SMOKE.read_text())
    assert config_from_dict(base).pretrain is None
    assert config_from_dict({**base, "pretrain": None}).pretrain is None
    cfg = config_from_dict({**base, "pretrain": {"episodes": 2}})
    assert cfg.pretrain.expert == "mpc" and cfg.pretrain.episodes == 2
    assert config_from_dict(yaml.safe_load(cfg.to_yaml())).pretrain == cfg.pretrain  # config.yml round trip
    with pytest.raises(ConfigError, match="dqn"):
        config_from_dict({**base, "algo": "dqn", "hyperparams": {}, "pretrain": {"episodes": 2}})


@pytest.fixture(scope="module")
def cloned() -> tuple:
    """A MaskablePPO MlpPolicy on 6-hour yolo episodes, and mpc's labels on 2 training episodes."""
    from sb3_contrib import MaskablePPO

    from clover_rl.training.envs import build_env

    env = build_env("yolo", {"episode_hours": 6, "randomization": {"traces": ["caiso_pge"], "period": "train",
                                                                  "synthetic_prob": 0.5, "synthetic_levels": [20, 900]}})
    model = MaskablePPO("MlpPolicy", env, seed=0, policy_kwargs={"net_arch": [32]}, n_steps=64, batch_size=32)
    expert = make_expert(PretrainConfig(), env)
    data = Dataset()
    rng = np.random.default_rng(0)
    rollout(env, expert, None, data, episodes=2, beta=1.0, gamma=0.5, rng=rng, seed=0)
    yield model, data, env
    env.close()


def _cross_entropy(policy, data: Dataset) -> float:
    obs, masks, acts, _ = data.arrays()
    with th.no_grad():
        _, logp, _ = policy.evaluate_actions(th.as_tensor(obs), th.as_tensor(acts), action_masks=masks)
    return float(-logp.mean())


def test_cloning_lowers_cross_entropy_and_never_picks_masked_actions(cloned: tuple) -> None:
    model, data, env = cloned
    assert len(data) == 2 * env.unwrapped.steps_per_episode and len(data.returns) == len(data)
    before = _cross_entropy(model.policy, data)
    opt = th.optim.Adam(model.policy.parameters(), lr=3e-3)
    last = fit(model.policy, data, epochs=40, batch_size=32, optimizer=opt, value_coef=0.5,
               rng=np.random.default_rng(1))
    after = _cross_entropy(model.policy, data)
    assert after < 0.5 * before, (before, after)
    assert last["accuracy"] > 0.8 and abs(last["cross_entropy"] - after) < 0.5
    obs, masks, acts, _ = data.arrays()
    for o, m, a in zip(obs[:10], masks[:10], acts[:10]):
        assert m[a]  # the expert respects the mask
        m2 = m.copy()
        m2[a] = False  # forbid what the policy has learned to prefer: it picks another allowed action
        pick, _ = model.policy.predict(o, deterministic=True, action_masks=m2)
        assert m2[int(pick)]
        with th.no_grad():
            dist = model.policy.get_distribution(th.as_tensor(o[None]), action_masks=m2[None])
        assert float(dist.distribution.probs[0, ~m2].sum()) == 0.0


def test_dagger_round_labels_learner_states(cloned: tuple) -> None:
    model, _, env = cloned
    data = Dataset()
    expert = make_expert(PretrainConfig(), env)
    agreement = rollout(env, expert, model.policy, data, episodes=1, beta=0.0, gamma=0.5,
                        rng=np.random.default_rng(2), seed=5)
    assert 0.0 <= agreement <= 1.0 and len(data) == env.unwrapped.steps_per_episode
    assert all(m[a] for m, a in zip(data.masks, data.actions))


def test_train_with_pretrain_block(tmp_path: Path) -> None:
    from clover_rl.cli import main
    from tests.training.test_training_run import _events

    cfg = yaml.safe_load(SMOKE.read_text())
    cfg["pretrain"] = {"rounds": 2, "episodes": 1, "epochs": 2, "batch_size": 32}
    path = tmp_path / "bc.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["train", "--config", str(path), "--out", str(tmp_path / "runs"), "--timesteps", "64",
                 "--no-progress"]) == 0
    (run,) = list((tmp_path / "runs").iterdir())
    meta = json.loads((run / "metadata.json").read_text())
    pre = meta["pretrain"]
    assert pre["expert"] == "mpc" and pre["samples"] == 2 * 24 and len(pre["rounds_agreement"]) == 1
    assert meta["evaluation"]["history"][0]["timesteps"] == 0  # the cloned policy was evaluated before PPO
    ev = _events(run)
    assert {"pretrain/cross_entropy", "pretrain/accuracy", "pretrain/rollout_agreement"} <= set(ev), sorted(ev)
    assert len(ev["pretrain/cross_entropy"]) == 4  # 2 rounds x 2 epochs
