"""The MPC baseline: registered, plans on the forecast (never the future), respects a budget."""
from __future__ import annotations

import numpy as np
import pytest

from clover_rl.agents.mpc import MPCPolicy, seasonal_persistence
from clover_rl.agents.registry import POLICY_NAMES, make_policy
from clover_rl.carbon.base import CarbonTrace
from clover_rl.envs.serving_env import CloverServingEnv
from clover_rl.service_model import ServiceModel

CONST = {"kind": "constant", "rate_rps": 2.5}


def _trace(values: np.ndarray) -> CarbonTrace:
    t0 = np.datetime64("2021-01-01T00:00:00", "s")
    return CarbonTrace(t0 + np.arange(len(values)).astype("timedelta64[h]"), values.astype(float), "t", "test")


def _run(env, policy, steps):
    obs, info = env.reset(seed=0, options={"start": 30})
    policy.reset()
    acts = []
    for _ in range(steps):
        a = policy.act(obs, info)
        acts.append(a)
        obs, _, _, _, info = env.step(a)
    return acts


def test_seasonal_persistence_reads_only_the_past():
    past = np.arange(30.0)
    f = seasonal_persistence(past, 29.0, 4)
    assert f[0] == 29.0 and f.shape == (4,)
    day_ago = past[len(past) - 1 - 24 + 1]  # the value 24 h before now + 1 h
    w = 2.0 ** (-1 / 3)
    assert f[1] == pytest.approx(w * 29.0 + (1 - w) * day_ago)
    assert np.all(seasonal_persistence(past[:10], 9.0, 3) == 9.0)  # under a day: persistence


def test_mpc_is_registered():
    assert "mpc" in POLICY_NAMES


def test_mpc_decisions_do_not_depend_on_the_future():
    rng = np.random.default_rng(0)
    vals = rng.uniform(50, 500, 24 * 4)
    future = vals.copy()
    future[30 + 3:] = rng.uniform(50, 500, len(vals) - 33)  # a different future after step 3
    acts = []
    model = ServiceModel.from_scenario(  # one model (and one config table) for both futures
        "efficientnet-budget", episode_hours=4, workload=CONST,
        objective={"kind": "carbon_budget", "budget_fraction": 0.7, "window_hours": 4})
    for v in (vals, future):
        env = CloverServingEnv(model, carbon_trace=_trace(v))
        acts.append(_run(env, make_policy("mpc", env), 4))
    assert acts[0][:4] == acts[1][:4]  # decisions at steps 0..3 see only intensities up to then


def test_mpc_saves_when_dirty_and_spends_when_clean():
    # alternating clean / dirty hours under a tight budget: MPC prices carbon and moves accuracy
    vals = np.tile([60.0, 600.0], 60)
    env = CloverServingEnv("efficientnet-budget", carbon_trace=_trace(vals), episode_hours=6, workload=CONST,
                           objective={"kind": "carbon_budget", "budget_fraction": 0.5, "window_hours": 6})
    pol = MPCPolicy(env, horizon=6)
    obs, info = env.reset(seed=0, options={"start": 30})
    acc = {60.0: [], 600.0: []}
    for _ in range(6):
        ci = env.intensity()
        obs, _, _, _, info = env.step(pol.act(obs, info))
        acc[ci].append(info["accuracy"])
    assert np.mean(acc[60.0]) > np.mean(acc[600.0])
