"""The paper's optimizer on a scripted env: schedule, budgets, re-optimisation, history reuse."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from clover_rl.agents.annealing import Annealer, CloverPolicy, Measurement, candidate_weights
from clover_rl.agents.baselines import RandomSearchPolicy
from clover_rl.scoring import score
from tests.support.agents import CATALOG as catalog
from tests.support.agents import ScriptedEnv as scripted
from tests.support.agents import smooth_figures

REF_CI_PUE = 250.0 * 1.5


def test_temperature_schedule_and_acceptance() -> None:
    rng = np.random.default_rng(0)
    sa = Annealer()
    sa.initialize()
    temps = []
    for _ in range(22):
        temps.append(sa.temperature)
        sa.step(-1.0, rng)
    assert temps[:3] == [100.0, 95.0, 90.0]
    assert temps[18:] == [10.0, 10.0, 10.0, 10.0]  # 100 - 5*18 = 10, then the floor
    assert min(temps) == 10.0
    sa.initialize(center_score=0.02)
    assert sa.temperature == 100.0
    assert sa.acceptance(0.03) == 1.0 and sa.acceptance(0.02) == 1.0  # better or equal: always
    assert sa.acceptance(0.01) == pytest.approx(math.exp(-0.01 / (1e-4 * 100)))
    sa.temperature = 10.0
    assert sa.acceptance(0.01) == pytest.approx(math.exp(-0.01 / (1e-4 * 10)))


def test_unset_centre_accepts_first_evaluation() -> None:
    sa = Annealer()
    sa.initialize()
    assert sa.step(-5.0, np.random.default_rng(0)) and sa.center_score == -5.0


def test_candidate_distribution_is_partition_then_variants() -> None:
    w = candidate_weights(catalog.graphs, len(catalog.profiles))
    assert w.sum() == pytest.approx(1.0)
    parts: dict[tuple, float] = {}
    for i, c in enumerate(catalog.configs):
        parts[c.profiles] = parts.get(c.profiles, 0.0) + w[i]
    assert np.allclose(list(parts.values()), 1.0 / len(parts))  # each partition equally likely
    # 4g+3g: 4 variants per slot, every (v4, v3) pair is its own graph -> 1/16 of the partition
    i = catalog.lookup("4g:b7,3g:b5")
    assert w[i] == pytest.approx(1.0 / len(parts) / 16)
    # 3g+3g with two different variants: two slot orders map to one graph -> 2/16
    j = catalog.lookup("3g:b7,3g:b5")
    assert w[j] == pytest.approx(1.0 / len(parts) * 2 / 16)


def test_measurement_scales_with_ci_ratio() -> None:
    m = Measurement(carbon_per_request_g=0.004, accuracy=83.0, p95_ms=300.0, ci_pue=300.0)
    assert m.carbon_at(450.0) == pytest.approx(0.006)
    assert m.carbon_at(150.0) == pytest.approx(0.002)


def _run(policy, env, intensities):
    decisions = []
    for ci in intensities:
        env.ci = ci
        a = policy.act(None, {})
        n = env.serve(a)
        assert n == policy.last_decision["probes"]  # probe accounting
        decisions.append((a, dict(policy.last_decision), [dict(r) for r in policy.last_steps]))
    return decisions


def _swinging(n: int) -> list[float]:
    return [200.0 + 150.0 * (i % 2) + 7.0 * i for i in range(n)]  # moves far every interval


@pytest.mark.parametrize("cls", [CloverPolicy, RandomSearchPolicy])
def test_budget_and_stopping_rule(cls) -> None:
    env = scripted(smooth_figures)
    pol = cls(env, seed=3)
    for a, d, steps in _run(pol, env, _swinging(16)):
        assert d["reoptimized"]
        assert d["probes"] <= 10
        assert d["probes"] == sum(r["probed"] for r in steps)
        assert env.catalog.feasible[a]
        # the run of non-improving evaluations never exceeds 5, and the search stops at 5
        run = best = 0
        best_score = -np.inf
        for r in steps:
            if r["meets_sla"] and r["score"] > best_score:
                best_score, run = r["score"], 0
            else:
                run += 1
            assert run <= 5
        if d["stop"] == "no improvement":
            assert run == 5
        elif d["stop"] == "explored limit":
            assert d["probes"] == 10
        # the served configuration is the best SLA-meeting one evaluated
        ok = [r for r in steps if r["meets_sla"]]
        if ok:
            best = max(ok, key=lambda r: r["score"])
            assert d["best_score"] == pytest.approx(best["score"])
            assert env.catalog.configs[a].label() == d["config"]


@pytest.mark.parametrize("cls", [CloverPolicy, RandomSearchPolicy])
def test_stops_after_five_without_improvement(cls) -> None:
    base = catalog.base_index

    def figures(i: int):  # BASE is the best there is; everything else is worse
        return (10.0, 84.5, 300.0) if i == base else (12.0, 80.0, 290.0)

    env = scripted(figures)
    pol = cls(env, seed=0)
    pol.act(None, {})
    d = pol.last_decision
    assert d["stop"] == "no improvement" and d["evaluations"] == 6 and d["probes"] == 6
    assert d["config"] == catalog.configs[base].label()


def test_explored_limit_caps_probes() -> None:
    # every new candidate improves a little -> only the 10-probe limit stops the search
    order: dict[int, int] = {}

    def figures(i: int):
        k = order.setdefault(i, len(order))
        return 10.0 - 0.1 * k, 84.5, 300.0

    env = scripted(figures)
    pol = CloverPolicy(env, seed=1)
    pol.act(None, {})
    assert pol.last_decision["stop"] == "explored limit"
    assert pol.last_decision["probes"] == 10
    pol2 = CloverPolicy(env, seed=1, max_explored=4)
    env.ci = 100.0
    pol2.act(None, {})
    assert pol2.last_decision["probes"] <= 4


def test_hard_budget_when_nothing_meets_sla() -> None:
    env = scripted(lambda i: (10.0, 84.5, 1000.0 if i != catalog.base_index else 300.0))
    env.reference = env.reference.__class__(env.reference.c_ref_g, env.reference.a_base, 100.0, 0.1)
    pol = CloverPolicy(env, seed=0)
    a = pol.act(None, {})
    d = pol.last_decision
    assert d["probes"] == 10 and d["stop"] == "probe budget" and not d["meets_sla"]
    assert env.catalog.feasible[a]
    extra = CloverPolicy(env, seed=0, max_extra_probes=3)
    env.ci = 50.0
    extra.act(None, {})
    assert extra.last_decision["probes"] == 13


def test_reoptimisation_threshold() -> None:
    env = scripted(smooth_figures)
    pol = CloverPolicy(env, seed=0)
    # 5% of 250 x 1.5 = 18.75 g/kWh of CI x PUE = 12.5 g/kWh of CI at PUE 1.5
    cis = [300.0, 305.0, 312.0, 313.0, 300.5, 326.0, 326.0, 313.0, 312.0]
    want = [True, False, False, True, False, True, False, True, False]
    #            +5     +12    +13 (vs 300)  vs 313  vs 313  vs 326  +13 vs 313, vs 313 -1
    got = []
    for ci, _w in zip(cis, want):
        env.ci = ci
        before = list(env.probes)
        a = pol.act(None, {})
        n = env.serve(a)
        d = pol.last_decision
        got.append(d["reoptimized"])
        if not d["reoptimized"]:
            assert n == 0 and env.probes == before
            assert a == env.current
    assert got == want


def test_history_reuse_scaled_by_ci_ratio() -> None:
    env = scripted(smooth_figures)
    pol = CloverPolicy(env, seed=5)
    for _a, d, steps in _run(pol, env, _swinging(12)):
        ci_pue = d["ci_pue"]
        for r in steps:
            if not r["probed"]:
                m = pol.history[r["action"]]
                expect = score(m.carbon_at(ci_pue), m.accuracy, m.p95_ms, env.reference).value
                assert r["score"] == pytest.approx(expect)
    assert len(env.probes) == len(set(env.probes)), "a measured configuration was probed again"
    assert set(env.probes) == set(pol.history)
    # a reused measurement scores like a fresh one would at the new intensity (same figures)
    i = env.probes[0]
    m = pol.history[i]
    e = smooth_figures(i)[0]
    assert m.carbon_at(400.0 * 1.5) == pytest.approx(e / 3.6e6 * 400.0 * 1.5)


def test_neighbours_within_manhattan_distance() -> None:
    env = scripted(smooth_figures)
    pol = CloverPolicy(env, seed=11)
    checked = 0
    for _a, _d, steps in _run(pol, env, _swinging(20)):
        for prev, r in itertools.pairwise(steps):
            assert r["action"] == prev["next"]
            if not prev["exhausted"]:
                assert pol.distance(prev["center"], r["action"]) <= 4
                checked += 1
        evaluated = [r["action"] for r in steps]
        assert len(evaluated) == len(set(evaluated))  # never twice within one optimisation
    assert checked > 20


def test_neighbour_distance_parameter() -> None:
    env = scripted(smooth_figures)
    pol = CloverPolicy(env, seed=2, neighbour_distance=2)
    for _a, _d, steps in _run(pol, env, _swinging(8)):
        for prev, r in itertools.pairwise(steps):
            if not prev["exhausted"]:
                assert pol.distance(prev["center"], r["action"]) <= 2


def test_centre_moves_follow_annealing() -> None:
    env = scripted(smooth_figures)
    pol = CloverPolicy(env, seed=4)
    _, _, steps = _run(pol, env, [300.0])[0]
    assert steps[0]["temperature"] == 100.0 and steps[0]["moved_center"]
    assert [r["temperature"] for r in steps] == [max(100.0 - 5 * k, 10.0) for k in range(len(steps))]
    for r in steps:
        if r["moved_center"]:
            assert r["center"] == r["action"]


@pytest.mark.parametrize("cls", [CloverPolicy, RandomSearchPolicy])
def test_seeded_and_reset_deterministic(cls) -> None:
    def trace(seed: int, pol=None):
        env = scripted(smooth_figures)
        pol = cls(env, seed=seed)
        first = [a for a, _, _ in _run(pol, env, _swinging(6))]
        probes1 = list(env.probes)
        env2 = scripted(smooth_figures)
        pol.bind(env2)
        pol.reset()
        second = [a for a, _, _ in _run(pol, env2, _swinging(6))]
        assert second == first and env2.probes == probes1
        return first, probes1

    assert trace(7) == trace(7)
    assert trace(7)[1] != trace(8)[1]


def test_only_allowed_candidates() -> None:
    env = scripted(smooth_figures)
    mask = catalog.feasible.copy()
    allowed = np.flatnonzero(mask)[::3]
    narrow = np.zeros_like(mask)
    narrow[allowed] = True
    narrow[catalog.base_index] = True
    env.action_masks = lambda: narrow.copy()
    for cls in (CloverPolicy, RandomSearchPolicy):
        env.probes.clear()
        pol = cls(env, seed=0)
        _run(pol, env, _swinging(6))
        assert all(narrow[i] for i in env.probes)


def test_failed_probe_is_not_remembered() -> None:
    env = scripted(smooth_figures)
    env.fail = {env.catalog.base_index}
    pol = CloverPolicy(env, seed=0)
    a = pol.act(None, {})
    env.serve(a)
    assert env.catalog.base_index not in pol.history
    assert pol.last_steps[0]["probed"] and not pol.last_steps[0]["meets_sla"]
    assert a != env.catalog.base_index


@pytest.mark.parametrize("cls", [CloverPolicy, RandomSearchPolicy])
def test_masked_current_configuration_is_not_probed(cls) -> None:
    env = scripted(smooth_figures)
    mask = catalog.feasible.copy()
    mask[catalog.base_index] = False
    env.action_masks = lambda: mask.copy()
    pol = cls(env, seed=0)
    a = pol.act(None, {})
    assert catalog.base_index not in env.probes and mask[a] and env.probes


def test_measurement_at_zero_intensity_uses_energy() -> None:
    # CAISO marginal intensity is 0 g/kWh in curtailment hours: no ratio to scale by.
    m = Measurement(carbon_per_request_g=0.0, accuracy=83.0, p95_ms=300.0, ci_pue=0.0,
                    energy_per_request_j=36.0)
    assert m.carbon_at(0.0) == 0.0
    assert m.carbon_at(500.0) == pytest.approx(36.0 / 3.6e6 * 500.0)
