"""The env, objectives and oracle on ``llm`` scenarios (small sizes: 1 GPU, 2 variants)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import yaml

from clover_rl.envs.serving_env import CloverServingEnv
from clover_rl.errors import ConfigError
from clover_rl.llm.physics import fits
from clover_rl.llm.replay import rebind
from clover_rl.scenario import load_scenario
from clover_rl.scoring import carbon_g
from clover_rl.service_model import ServiceModel
from clover_rl.serving.metrics import IntervalMetrics, merge_metrics

TINY = {"name": "tiny-llm", "service": "llm", "gpu": "a100-40gb", "gpus": 1,
        "carbon": {"trace": "caiso_pge", "forecast_hours": 2},
        "workload": {"kind": "constant", "rate_rps": 1.5}, "sla_ms": 2000.0,
        "llm": {"variants": ["llama-3.2-1b-int8", "llama-3.1-8b-int4"], "tpot_sla_ms": 100.0,
                "steady_requests": 400},
        "episode_hours": 4}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> str:
    p = tmp_path_factory.mktemp("llm") / "tiny-llm.yaml"
    p.write_text(yaml.safe_dump(TINY))
    return str(p)


def test_reset_step_shapes_and_masks(tiny):
    env = CloverServingEnv(tiny)
    obs, info = env.reset(seed=0)
    assert obs.shape == env.observation_space.shape and env.observation_space.contains(obs)
    cat, svc = env.catalog, env.model.service
    llm = svc.llm
    # the mask is exactly the physics memory fit (weights + fit_batch x context KV) of every slice
    for i, cfg in enumerate(cat.configs):
        ok = all(fits(svc.variant(v).spec, env.model.gpu.profile(p), llm.fit_batch, llm.context_tokens)
                 for p, v in cfg.pairs)
        assert bool(info["action_mask"][i]) == ok, cfg.label()
    assert 0 < info["action_mask"].sum() < len(cat)
    a = int(np.flatnonzero(info["action_mask"])[0])
    obs, r, term, trunc, info = env.step(a)
    assert obs.shape == env.observation_space.shape and np.isfinite(r) and not term
    for k in ("ttft_p95_ms", "tpot_p95_ms"):
        assert info[k] > 0
    # a masked action is refused, the served configuration kept
    bad = int(np.flatnonzero(~info["action_mask"])[0])
    _, _, _, _, info2 = env.step(bad)
    assert info2["refused"] and info2["config"] == info["config"]
    env.close()


def _m(ttft95: float, tpot95: float) -> IntervalMetrics:
    m = IntervalMetrics(duration_s=3600, arrived=1000, served=1000, dropped=0, p50_ms=0, p95_ms=0,
                        p99_ms=0, mean_ms=0, throughput_rps=1, energy_j=3.6e6, accuracy=60.0,
                        extra={"ttft_p50_ms": ttft95 / 2, "ttft_p95_ms": ttft95, "ttft_p99_ms": ttft95 * 1.2,
                               "tpot_p50_ms": tpot95 / 2, "tpot_p95_ms": tpot95, "tpot_p99_ms": tpot95 * 1.2})
    return rebind(m, 2000.0, 100.0)


@pytest.mark.parametrize("ttft,tpot,violated", [(1500, 80, False), (2500, 80, True), (1500, 120, True),
                                                (2500, 120, True), (2000, 100, False)])
def test_sla_violated_when_either_p95_exceeds(tiny, ttft, tpot, violated):
    model = ServiceModel.from_scenario(tiny)
    m = _m(ttft, tpot)
    out = model.outcome(m, 200.0)
    assert out.sla_violated is violated
    s = model.score(m, 200.0)
    assert (s.sla_factor < 1.0) is violated
    if violated:  # the paper's factor uses the binding ratio
        assert s.sla_factor == pytest.approx(1.0 / max(ttft / 2000.0, tpot / 100.0))
    # merging windows keeps the rule (the env merges probes with the rest of the interval)
    merged = model.merge([m, m])
    assert (merged.p95_ms > model.sla_ms) is violated


def test_objectives_in_token_units(tiny):
    env = CloverServingEnv(tiny)
    env.reset(seed=0, options={"start": 5})
    base = env.catalog.base_index
    _, _, _, _, info = env.step(base)
    model = env.model
    tokens = info["served"]
    assert tokens == pytest.approx(env.rate() * 3600 * model.units_per_request, rel=1e-6)
    # carbon per token by hand, and the paper's score against BASE's carbon per token at 250 x 1.5
    cpt = info["energy_j"] / tokens / 3.6e6 * info["ci"] * 1.5
    assert info["carbon_per_request_g"] == pytest.approx(cpt)
    c_ref = model.base_metrics.energy_j / model.base_metrics.served / 3.6e6 * 250 * 1.5
    assert model.reference.c_ref_g == pytest.approx(c_ref)
    dc = (c_ref - cpt) / c_ref
    assert info["objective"] == pytest.approx(0.1 * dc - 0.9 * 0.0)  # BASE: no accuracy drop, SLA met
    env.close()
    # a carbon budget in grams per window: fraction x C_ref x tokens/s x window
    budget = CloverServingEnv(tiny, objective={"kind": "carbon_budget", "budget_fraction": 0.5,
                                               "window_hours": 2})
    obj = budget.objective
    tok_rate = 1.5 * budget.model.units_per_request
    assert obj.budget_g == pytest.approx(0.5 * budget.model.reference.c_ref_g * tok_rate * 7200)
    # the planners' table books carbon per interval in grams: per-token carbon x tokens
    budget.reset(seed=0, options={"start": 5})
    tv = budget.objective_table()
    m = budget.model.config_table(budget.rate()).energy_per_request_j[base]
    assert tv.carbon_g[base] == pytest.approx(carbon_g(m, budget.intensity(), 1.5) * tok_rate * 3600, rel=1e-6)
    budget.close()


def test_oracle_matches_brute_force(tiny):
    """Each interval, the oracle's pick scores as well as the best SLA-meeting configuration
    found by serving every feasible one (no reconfiguration cost, so intervals are independent)."""
    from clover_rl.agents.baselines import OraclePolicy

    env = CloverServingEnv(tiny, reconfiguration=False)
    obs, info = env.reset(seed=0, options={"start": 10})
    oracle = OraclePolicy(env)
    probe = CloverServingEnv(tiny, reconfiguration=False)
    feasible = np.flatnonzero(env.action_masks())
    for t in range(3):
        a = oracle.act(obs, info)
        obs, _, _, _, info = env.step(a)
        best = -math.inf
        for c in feasible:
            probe.reset(seed=0, options={"start": 10 + t})
            _, _, _, _, pi = probe.step(int(c))
            if not pi["sla_violated"]:
                best = max(best, pi["objective"])
        assert not info["sla_violated"]
        assert info["objective"] == pytest.approx(best, abs=1e-12)
    env.close()
    probe.close()


def test_llm_block_only_for_llm_services(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text(yaml.safe_dump({**TINY, "service": "efficientnet"}))
    with pytest.raises(ConfigError, match="llm: is for LLM services"):
        load_scenario(str(p))
    p.write_text(yaml.safe_dump({**TINY, "llm": {"variants": ["llama-9b-bf16"]}}))
    with pytest.raises(ConfigError, match="llama-9b-bf16"):
        load_scenario(str(p))


def test_merge_sums_counts_and_mixes_percentiles():
    a, b = _m(1000, 50), _m(3000, 50)
    a = IntervalMetrics(**{**a.__dict__, "extra": {**a.extra, "requests_served": 10.0}})
    b = IntervalMetrics(**{**b.__dict__, "extra": {**b.extra, "requests_served": 5.0}})
    m = merge_metrics([a, b])
    assert m.extra["requests_served"] == 15.0
    assert 1000 < m.extra["ttft_p95_ms"] <= 3600


def test_evaluate_cli_shows_llm_columns(tiny, capsys, tmp_path):
    from clover_rl.cli import main

    argv = ["evaluate", "--scenario", tiny, "--policy", "mpc", "--policy", "base", "--policy", "oracle",
            "--hours", "2", "--no-progress", "--out", str(tmp_path / "ev")]
    assert main(argv) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "TTFT p95 2000 ms, TPOT p95 100 ms" in out.replace("\n", " ")
    for header in ("TTFT", "TPOT", "J/1k"):
        assert header in out
    head = (tmp_path / "ev" / "summary.csv").read_text().splitlines()[0].split(",")
    assert {"ttft_p95_ms", "tpot_p95_ms", "energy_per_1k_tokens_j", "carbon_per_1k_tokens_g"} <= set(head)


def test_online_and_planning_policies_run_on_llm(tiny):
    """The paper's optimizer probes live (paying the engine restarts), MPC plans on the replay
    model; both serve feasible configurations and report TTFT/TPOT per interval."""
    from clover_rl.evaluation import evaluate_policies

    res = evaluate_policies(tiny, ["clover", "mpc"], hours=3, start=100, progress=False)
    clover = res.runs["clover"].rows
    assert sum(r["probes"] for r in clover) > 0
    for spec in ("clover", "mpc", "base", "oracle"):
        for r in res.runs[spec].rows:
            assert r["ttft_p95_ms"] > 0 and r["tpot_p95_ms"] > 0 and r["served"] > 0
    s = res.runs["mpc"].summary
    assert s["energy_per_1k_tokens_j"] == pytest.approx(
        sum(r["energy_j"] for r in res.runs["mpc"].rows) / sum(r["served"] for r in res.runs["mpc"].rows) * 1000)
    assert res.runs["oracle"].summary["objective"] >= res.runs["base"].summary["objective"] - 1e-12


@pytest.mark.parametrize("scenario", ["llm", "llm-h100"])
def test_shipped_llm_policy_loads_and_serves_feasible_configurations(scenario):
    from clover_rl.agents.registry import make_policy
    from clover_rl.paths import checkpoints_dir

    env = CloverServingEnv(scenario, episode_hours=3)
    obs, info = env.reset(seed=0)
    policy = make_policy(str(checkpoints_dir() / scenario), env, seed=0)
    for _ in range(3):
        a = int(policy.act(obs, info))
        assert info["action_mask"][a]
        obs, _, _, trunc, info = env.step(a)
        assert not info["refused"]
    assert trunc
    env.close()
