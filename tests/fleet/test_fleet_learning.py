"""A learned fleet policy: profile features cover every fleet action (mixes included, from the
fleet's own steady-state table) and a ProfileGraphPolicy clones mpc on a fleet env."""
from __future__ import annotations

import numpy as np
import pytest
import torch as th

from clover_rl.training.pretrain import Dataset, PretrainConfig, fit, make_expert, rollout
from clover_rl.training.profile_features import FEATURES, profile_features
from clover_rl.training.profile_policy import profile_kwargs

LEVELS = np.array([1.0])


def test_profile_features_score_mixes_from_the_fleet_table(env) -> None:
    cat, model = env.catalog, env.model
    lv, tab = profile_features(env, LEVELS)
    assert tab.shape == (1, len(cat), len(FEATURES))
    t = model.config_table(model.mean_rate)
    ok = t.feasible & cat.feasible & np.isfinite(t.energy_per_request_j) & np.isfinite(t.p95_ms)
    acc = 10.0 * (t.accuracy - model.reference.a_base) / model.reference.a_base
    np.testing.assert_allclose(tab[0, :, FEATURES.index("accuracy")], np.where(ok, acc, 0.0), rtol=1e-5, atol=1e-6)
    mixes = np.arange(cat.n_identical, len(cat))
    assert ok[mixes].any()  # some mix is scored, and differs from both of its parts
    for i in mixes[ok[mixes]]:
        a, b, _ = cat.mixes[i - cat.n_identical]
        c = FEATURES.index("carbon")
        assert tab[0, i, c] not in (tab[0, a, c], tab[0, b, c])


def test_profile_policy_clones_mpc_on_a_fleet(env, tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    import clover_rl.envs.randomization as rnd
    from clover_rl.training.config import algo_class
    from clover_rl.training.policies import resolve_policy

    monkeypatch.setattr(rnd, "load_levels", lambda nominal, k_range=rnd.LEVEL_RANGE: LEVELS * nominal)
    prof = profile_kwargs(env, tmp_path)
    model = algo_class("maskable_ppo")(resolve_policy("ProfileGraphPolicy", "maskable_ppo"), env, seed=0,
                                       n_steps=16, batch_size=16, device="cpu",
                                       policy_kwargs={"net_arch": [16], "profile": prof, "action_hidden": 8})
    data = Dataset()
    rollout(env, make_expert(PretrainConfig(), env), None, data, episodes=3, beta=1.0, gamma=0.5,
            rng=np.random.default_rng(0), seed=0)
    obs, masks, acts, _ = data.arrays()

    def cross_entropy() -> float:
        with th.no_grad():
            _, logp, _ = model.policy.evaluate_actions(th.as_tensor(obs), th.as_tensor(acts), action_masks=masks)
        return float(-logp.mean())

    before = cross_entropy()
    opt = th.optim.Adam(model.policy.parameters(), lr=3e-3)
    last = fit(model.policy, data, epochs=60, batch_size=16, optimizer=opt, value_coef=0.5,
               rng=np.random.default_rng(1))
    assert cross_entropy() < 0.5 * before and last["accuracy"] >= 0.7, (before, last)
    for o, m in zip(obs, masks):
        assert m[int(model.predict(o, deterministic=True, action_masks=m)[0])]
