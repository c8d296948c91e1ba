"""The env under operator objectives: budget booked per step, observation features, oracle plan."""
from __future__ import annotations

import numpy as np
import pytest

from clover_rl.agents.registry import make_policy
from clover_rl.envs.serving_env import CloverServingEnv

CONST = {"kind": "constant", "rate_rps": 2.5}


def test_budget_env_books_carbon_and_shows_budget_left():
    env = CloverServingEnv("efficientnet-budget", episode_hours=6, workload=CONST,
                           objective={"kind": "carbon_budget", "budget_fraction": 0.5, "window_hours": 3})
    obs, _ = env.reset(seed=0, options={"start": 0})
    names = env.observation_names
    assert obs[names.index("budget_left")] == 1.0 and obs[names.index("window_left")] == 1.0
    spent = 0.0
    for _ in range(3):
        obs, _, _, _, info = env.step(env.catalog.base_index)
        spent += info["carbon_g"]
        assert info["budget_spent_g"] == pytest.approx(spent)
    assert obs[names.index("budget_left")] == 1.0  # a new window started
    assert info["objective_kind"] == "carbon_budget"


def test_oracle_plans_the_budget_and_beats_base():
    kw = dict(episode_hours=4, workload=CONST,
              objective={"kind": "carbon_budget", "budget_fraction": 0.9, "window_hours": 4})
    out = {}
    for name in ("base", "oracle"):
        env = CloverServingEnv("efficientnet-budget", **kw)
        pol = make_policy(name, env)
        obs, info = env.reset(seed=0, options={"start": 0})
        total, carbon = 0.0, 0.0
        for _ in range(4):
            obs, r, _, _, info = env.step(pol.act(obs, info))
            total += info["objective"]
            carbon += info["carbon_g"]
        out[name] = (total, carbon, env.objective.budget_g)
    assert out["oracle"][1] <= out["oracle"][2] * 1.02  # within the budget (steady-state plan)
    assert out["oracle"][0] > out["base"][0]


def test_floor_oracle_keeps_accuracy_above_the_floor():
    env = CloverServingEnv("efficientnet-floor", episode_hours=2, workload=CONST)
    pol = make_policy("oracle", env)
    obs, info = env.reset(seed=0, options={"start": 0})
    obs, _, _, _, info = env.step(pol.act(obs, info))
    assert info["accuracy"] >= env.objective.floor_accuracy * 0.999
    assert info["carbon_per_request_g"] < env.base_metrics.energy_per_request_j / 3.6e6 * info["ci"] * 1.5
    assert np.isfinite(info["objective"])
