"""Planning: the budget dynamic program against brute force, the carbon price over scenarios,
switching costs."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from clover_rl.agents.planning import first_move, frontier, hulls, plan_budget, robust_carbon_price


def _brute(values, carbon, budget, penalty, spent=0.0):
    best = -np.inf
    for plan in itertools.product(range(values.shape[1]), repeat=values.shape[0]):
        v = sum(values[t, a] for t, a in enumerate(plan))
        c = spent + sum(carbon[t, a] for t, a in enumerate(plan))
        if not np.isfinite(v):
            continue
        best = max(best, v - penalty * max(0.0, c - budget))
    return best


@pytest.mark.parametrize("seed", range(6))
def test_budget_plan_matches_brute_force_on_a_tiny_case(seed):
    rng = np.random.default_rng(seed)
    t_n, k_n = 4, 4
    values = rng.uniform(-0.3, 0.0, (t_n, k_n))
    carbon = rng.integers(1, 8, (t_n, k_n)).astype(float)  # integer grams: exact on a 1-g grid
    values[0, 3] = -np.inf  # a forbidden configuration
    carbon[0, 3] = np.inf
    budget = float(rng.integers(6, 20))
    penalty = float(rng.choice([0.01, 0.1, 1.0]))
    plan, total = plan_budget(values, carbon, budget, penalty, spent_g=2.0, bins=int(budget))
    assert total == pytest.approx(_brute(values, carbon, budget, penalty, spent=2.0))
    # the returned plan achieves that value
    v = values[np.arange(t_n), plan].sum() - penalty * max(0.0, 2.0 + carbon[np.arange(t_n), plan].sum() - budget)
    assert v == pytest.approx(total)


def test_budget_plan_spends_where_carbon_is_cheap():
    # two configurations: accurate (value 0, carbon = intensity) and cheap (value -1, carbon 0.2 x intensity)
    ci = np.array([1.0, 5.0, 1.0, 5.0])
    values = np.tile([0.0, -1.0], (4, 1))
    carbon = np.stack([ci, 0.2 * ci], axis=1)
    plan, _ = plan_budget(values, carbon, budget_g=4.0, penalty_per_g=10.0, bins=40)
    assert list(plan) == [0, 1, 0, 1]  # accurate when clean, cheap when dirty


def test_frontier_keeps_only_efficient_configurations():
    v = np.array([0.1, 0.05, 0.3, -np.inf, 0.3])
    c = np.array([1.0, 2.0, 3.0, 0.5, 4.0])
    assert list(frontier(v, c)) == [0, 2]


def _two_configs(ci):
    """Accurate (value 0, 1 g per g/kWh) and cheap (value -1, 0.2 g per g/kWh) in every interval."""
    values = np.tile([0.0, -1.0], (len(ci), 1))
    unit = np.tile([1.0, 0.2], (len(ci), 1))
    return values, unit


def test_carbon_price_meets_the_budget_on_a_point_forecast():
    ci = np.array([1.0, 5.0, 1.0, 5.0])
    values, unit = _two_configs(ci)
    assert robust_carbon_price(values, unit, ci, 100.0, penalty_per_g=10.0)[0] == 0.0  # fits unpriced
    mu, risk = robust_carbon_price(values, unit, ci, 4.0, penalty_per_g=10.0)
    a = np.argmax(values - mu * unit * ci[:, None], axis=1)
    assert list(a) == [0, 1, 0, 1]  # accurate when clean, cheap when dirty: 1 + 1 + 1 + 1 = 4 g
    assert risk["expected_overspend_g"] == 0.0


def test_carbon_price_hedges_against_forecast_error():
    # the point forecast fits the budget unpriced (4 x 1 g); one scenario in four is dirtier, and
    # overspending costs far more than accuracy is worth: the price saves ahead of it
    ci = np.ones(4)
    values, unit = _two_configs(ci)
    scen = np.array([ci, ci, ci, [1.0, 3.0, 3.0, 3.0]])
    assert robust_carbon_price(values, unit, scen[:1], 4.0, penalty_per_g=10.0)[0] == 0.0
    mu, risk = robust_carbon_price(values, unit, scen, 4.0, penalty_per_g=10.0)
    assert mu > 0 and risk["expected_overspend_g"] == 0.0
    # a cheap overspend is not worth hedging: the point plan stays
    assert robust_carbon_price(values, unit, scen, 4.0, penalty_per_g=0.01)[0] == 0.0


@pytest.mark.parametrize("seed", range(4))
def test_hull_choice_is_the_priced_argmax(seed):
    rng = np.random.default_rng(seed)
    values = rng.uniform(-1, 0, (3, 12))
    carbon = rng.uniform(1, 10, (3, 12))
    values[1, 4], carbon[1, 4] = -np.inf, np.inf
    for t, (idx, breaks) in enumerate(hulls(values, carbon)):
        assert np.all(np.diff(breaks) < 0)
        for mu in (0.0, 0.01, 0.05, 0.2, 1.0, 10.0):
            k = idx[int(np.sum(breaks > mu))]
            ok = np.isfinite(values[t])
            assert values[t, k] - mu * carbon[t, k] == pytest.approx(np.max(values[t, ok] - mu * carbon[t, ok]))


def test_first_move_pays_switching_costs():
    values = np.array([[0.0, 0.05], [0.0, 0.05], [0.0, 0.05]])
    assert first_move(values, current=0, switch_cost=0.2)[0] == 0  # 0.15 gain < 0.2 cost
    assert first_move(values, current=0, switch_cost=0.1)[0] == 1
    assert first_move(values, current=1, switch_cost=0.0)[0] == 1


def test_first_move_pays_what_a_switch_loses():
    values = np.array([[0.0, 0.05, 0.04]] * 3)
    assert first_move(values, current=0, switch_cost=0.01)[0] == 1
    # entering 1 loses 0.1 in its interval (e.g. an SLA-violating switch): the plan takes 2
    assert first_move(values, current=0, switch_cost=0.01, entry=np.array([0.0, 0.1, 0.0]))[0] == 2
