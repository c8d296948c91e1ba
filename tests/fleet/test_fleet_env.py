"""The env, the oracle and the paper's optimizer on a fleet scenario."""
from __future__ import annotations

from itertools import product

import numpy as np
import pytest

from clover_rl.agents.registry import make_policy
from clover_rl.envs.serving_env import CloverServingEnv
from clover_rl.errors import ConfigError
from clover_rl.fleet import FleetConfiguration
from clover_rl.fleet.catalog import FleetCatalog
from clover_rl.fleet.replay import FleetReplayBackend
from clover_rl.objectives import table_rate


def test_fleet_env_wires_the_fleet_catalog_and_backend(env) -> None:
    cat = env.catalog
    assert isinstance(cat, FleetCatalog) and isinstance(env.backend, FleetReplayBackend)
    assert env.backend.layout.gpus_of("b") == (1,)
    assert env.action_space.n == len(cat) == cat.n_identical + 3  # 3 pairs x the one 1+1 split
    obs, info = env.reset(seed=0, options={"start": 10})
    assert env.observation_space.contains(obs)
    mix = cat.n_identical + 1
    obs, _, _, _, info = env.step(mix)
    assert info["config"] == cat.configs[mix].label() and "+" in info["config"]
    assert env.backend.configuration == cat.configs[mix]
    with pytest.raises(ConfigError, match="fleet"):
        CloverServingEnv(env.model, backend="live")


def test_oracle_matches_brute_force_over_every_gpu_assignment(env) -> None:
    """Per interval, the oracle's fleet is the best of every GPU -> candidate assignment and every
    identical fleet, each scored on the replay model (3 intervals)."""
    cat, model = env.catalog, env.model
    oracle = make_policy("oracle", env)
    obs, info = env.reset(seed=0, options={"start": 100})
    cands = [cat.base.configs[c] for c in cat.candidates]
    for _ in range(3):
        rate = table_rate(env.rate(), env.mean_rate)
        fleets = {FleetConfiguration.of(p) for p in product(cands, repeat=2)}
        fleets |= {f for f in cat.configs[: cat.n_identical]}

        def value(f: FleetConfiguration, rate: float = rate) -> float:
            i = cat.index[f]
            if not cat.feasible[i]:
                return -np.inf
            m = model.steady_state(rate, f).interval(env.scenario.control_interval_s)
            if m.p95_ms > env.sla_ms * (1 + 1e-9):
                return -np.inf
            return env.objective.score(m.carbon_g(env.intensity(), env.scenario.carbon.pue) / m.served,
                                       m.accuracy, m.p95_ms).value

        best = max(value(f) for f in fleets)
        a = oracle.act(obs, info)
        assert value(cat.configs[a]) == pytest.approx(best, rel=1e-9, abs=1e-12)
        obs, _, _, _, info = env.step(a)


def test_paper_optimizer_and_oracle_identical_keep_one_configuration_on_every_gpu(env) -> None:
    for name in ("clover", "random", "oracle-identical"):
        pol = make_policy(name, env, seed=1)
        obs, info = env.reset(seed=0, options={"start": 200})
        pol.reset()
        for _ in range(3):
            a = pol.act(obs, info)
            assert env.configuration.is_identical and a < env.catalog.n_identical, name
            obs, _, _, _, info = env.step(a)


def test_planned_oracle_trades_changes_against_value(env) -> None:
    """Free changes: the plan's value per interval is the oracle's; prohibitive ones: it keeps
    the starting fleet (BASE) for the whole episode."""
    oracle = make_policy("oracle", env)
    free = make_policy("oracle-plan", env, switch_cost_per_gpu=0.0)
    costly = make_policy("oracle-plan", env, switch_cost_per_gpu=1e3)
    runs = {}
    for name, pol in (("oracle", oracle), ("free", free), ("costly", costly)):
        obs, info = env.reset(seed=0, options={"start": 300})
        pol.reset()
        acts = []
        for _ in range(env.steps_per_episode):
            tv = env.objective_table()
            a = pol.act(obs, info)
            acts.append((a, float(tv.value[a])))
            obs, _, _, truncated, info = env.step(a)
        runs[name] = acts
    assert [v for _, v in runs["free"]] == pytest.approx([v for _, v in runs["oracle"]])
    assert {a for a, _ in runs["costly"]} == {env.catalog.base_index}


def test_mpc_pays_for_the_gpus_a_fleet_change_moves() -> None:
    """Per-GPU switching cost: moving 1 of 8 GPUs costs an eighth of a whole-fleet change, so a
    small gain justifies it; a change of all 8 GPUs still needs the whole cost."""
    from clover_rl.agents.mpc import fleet_move
    from clover_rl.agents.planning import first_move

    changes = np.array([[0, 1, 8], [1, 0, 8], [8, 8, 0]])
    values = np.array([[0.0, 0.002, 0.004]])
    assert fleet_move(values, 0, changes, 0.005 / 8)[0] == 1
    assert first_move(values, 0, 0.005)[0] == 0  # the whole-fleet cost would keep it
    assert fleet_move(np.array([[0.0, -np.inf, 0.004]]), 0, changes, 0.005 / 8)[0] == 0
    assert fleet_move(np.array([[0.0, -np.inf, 0.006]]), 0, changes, 0.005 / 8)[0] == 2
    assert fleet_move(np.array([[-np.inf, -np.inf, -np.inf]]), 1, changes, 0.001)[0] == 1  # nothing allowed: stay


def test_fleet_catalog_changes_and_nearest(env) -> None:
    cat = env.catalog
    ch = cat.changes
    assert ch.shape == (len(cat), len(cat)) and (np.diag(ch) == 0).all()
    mix = cat.n_identical  # the first mix: 1 GPU on each of two candidates
    a, b, _ = cat.mixes[0]
    assert ch[a, mix] == 1 and ch[mix, a] == 1 and ch[a, b] == 2
    assert cat.nearest(cat.configs[mix]) == mix
