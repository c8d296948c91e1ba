"""CloverServingEnv: checkers, masks, seeding, truncation, reward components."""
from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import clover_rl  # noqa: F401  (registers the env)
from clover_rl.carbon.base import CarbonTrace
from clover_rl.envs.serving_env import CloverServingEnv
from clover_rl.errors import ConfigError
from clover_rl.scoring import carbon_g


def _trace(values, name="t"):
    times = np.datetime64("2021-03-01T00:00:00") + np.arange(len(values)) * np.timedelta64(3600, "s")
    return CarbonTrace(times.astype("datetime64[s]"), np.asarray(values, dtype=float), name)


@pytest.fixture(scope="module")
def env():
    e = CloverServingEnv("efficientnet", episode_hours=6)
    yield e
    e.close()


def test_registered_make():
    e = gym.make("clover_rl/CloverServing-v0", scenario="efficientnet", episode_hours=4)
    obs, info = e.reset(seed=1)
    assert e.observation_space.contains(obs)
    assert e.action_space.n == 1282
    e.close()


def test_gymnasium_env_checker():
    e = CloverServingEnv("albert", episode_hours=4)
    gym_check_env(e, skip_render_check=True)


def test_sb3_env_checker():
    e = CloverServingEnv("yolo", episode_hours=4)
    sb3_check_env(e, warn=True)


def test_observation_layout_documented(env):
    obs, _ = env.reset(seed=0)
    assert len(env.observation_names) == obs.shape[0]
    assert env.observation_names[0] == "ci_now"


def test_masks_mark_memory_infeasible(env):
    mask = env.action_masks()
    assert mask.dtype == bool and mask.shape == (1282,)
    # b7 (6.5 GB) never fits a 1g.5gb slice
    for i, cfg in enumerate(env.catalog.configs):
        if ("1g.5gb", "b7") in cfg.pairs:
            assert not mask[i]
    assert mask[env.catalog.base_index]


def test_infeasible_action_is_refused_with_penalty(env):
    env.reset(seed=0, options={"start": 0})
    bad = int(np.flatnonzero(~env.action_masks())[0])
    _, reward, term, trunc, info = env.step(bad)
    assert info["refused"] and "1g.5gb" in info["refused_reason"]
    assert info["config"] == "7g:b7"
    assert info["reward_infeasible_penalty"] < 0
    assert not term


def test_truncation_not_termination():
    e = CloverServingEnv("efficientnet", episode_hours=3)
    e.reset(seed=0)
    flags = [e.step(e.catalog.base_index)[2:4] for _ in range(3)]
    assert flags == [(False, False), (False, False), (False, True)]


def test_seeded_determinism():
    def rollout(seed):
        e = CloverServingEnv("efficientnet", episode_hours=5)
        obs, _ = e.reset(seed=seed)
        rng = np.random.default_rng(0)
        out = [obs]
        for _ in range(5):
            a = int(rng.choice(np.flatnonzero(e.action_masks())))
            obs, r, *_ = e.step(a)
            out.append(obs)
            out.append(np.array([r]))
        return np.concatenate(out)

    np.testing.assert_array_equal(rollout(3), rollout(3))
    assert not np.array_equal(rollout(3), rollout(4))


def test_reward_components_hand_calculation():
    tr = _trace([250.0] * 10)
    e = CloverServingEnv("efficientnet", episode_hours=4, carbon_trace=tr)
    e.reset(seed=0, options={"start": 0})
    _, reward, _, _, info = e.step(e.catalog.base_index)
    # BASE at the reference intensity (250 x 1.5 == reference) scores 0.
    assert info["delta_c"] == pytest.approx(0.0, abs=1e-9)
    assert info["objective"] == pytest.approx(0.0, abs=1e-9)
    assert info["carbon_g"] == pytest.approx(carbon_g(info["energy_j"], 250.0, 1.5))
    cfg = e.catalog.lookup("4g:b5,3g:b5")
    _, reward, _, _, info = e.step(cfg)
    ref = e.reference
    cpr = info["carbon_g"] / info["served"]
    dc = (ref.c_ref_g - cpr) / ref.c_ref_g
    da = (ref.a_base - info["accuracy"]) / ref.a_base
    expected = ref.lam * dc - (1 - ref.lam) * da
    if info["p95_ms"] > ref.sla_ms:
        expected *= ref.sla_ms / info["p95_ms"]
    assert info["objective"] == pytest.approx(expected, rel=1e-6)
    total = info["reward_objective"] + info["reward_sla_penalty"] + info["reward_infeasible_penalty"] + info["reward_reconfig_penalty"]
    assert reward == pytest.approx(total)
    assert info["reconfigurations"] == 1 and info["downtime_s"] > 0


def test_sla_penalty_when_violated():
    tr = _trace([250.0] * 10)
    e = CloverServingEnv("efficientnet", episode_hours=4, carbon_trace=tr, workload={"kind": "constant", "rate_rps": 6.0})
    e.reset(seed=0, options={"start": 0})
    _, reward, _, _, info = e.step(e.catalog.lookup("7g:b7"))  # BASE saturates at 6 req/s (SLA from 6 req/s too)
    _, reward, _, _, info = e.step(e.catalog.lookup("7x1g:b5".replace("7x1g:b5", ",".join(["1g:b5"] * 7))))
    assert info["sla_violated"] == (info["p95_ms"] > info["sla_ms"])
    if info["sla_violated"]:
        assert info["reward_sla_penalty"] < 0 and info["sla_factor"] < 1


def test_probe_counts_in_next_interval():
    tr = _trace([300.0] * 10)
    e = CloverServingEnv("efficientnet", episode_hours=4, carbon_trace=tr)
    e.reset(seed=0, options={"start": 0})
    res = e.probe("4g:b5,3g:b3")
    assert res["metrics"].duration_s == pytest.approx(e.scenario.probe_s)
    _, _, _, _, info = e.step(e.catalog.base_index)
    assert info["probes"] == 1 and info["probe_s"] == pytest.approx(e.scenario.probe_s)
    assert info["reconfigurations"] == 2  # to the candidate and back to BASE
    probed = info["variant_share"].get("b5", 0) + info["variant_share"].get("b3", 0)
    assert 0 < probed < 0.2  # the 30 s window of the candidate, out of the hour


def test_episode_start_drawn_from_np_random():
    e = CloverServingEnv("efficientnet", episode_hours=4)
    starts = {e.reset(seed=s)[1]["time"] for s in range(5)}
    assert len(starts) > 1


def test_trace_too_short_is_clear_error():
    e = CloverServingEnv("efficientnet", episode_hours=24, carbon_trace=_trace([200.0] * 10))
    with pytest.raises(ConfigError, match="has 10 intervals; an episode needs 24"):
        e.reset(seed=0)


def test_config_table_scores_and_oracle_bound():
    e = CloverServingEnv("albert", episode_hours=2, carbon_trace=_trace([250.0] * 4))
    e.reset(seed=0, options={"start": 0})
    table = e.config_table()
    scores = table.scores(250.0, 1.5, e.reference)
    assert np.isneginf(scores[~e.action_masks()]).all()
    assert scores[e.catalog.base_index] == pytest.approx(0.0, abs=1e-9)
    assert scores.max() > 0
