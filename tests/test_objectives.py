"""Operator objectives: paper score unchanged, budget accounting, accuracy floor, scenario YAML."""
from __future__ import annotations

import numpy as np
import pytest

from clover_rl.errors import ConfigError
from clover_rl.objectives import make_objective
from clover_rl.scenario import ObjectiveSpec, load_scenario
from clover_rl.scoring import ObjectiveReference, score

REF = ObjectiveReference(c_ref_g=0.01, a_base=0.84, sla_ms=700.0, lam=0.1)


def _budget(**kw):
    spec = ObjectiveSpec(kind="carbon_budget", window_hours=4, **kw)
    return make_objective(spec, REF, interval_s=3600.0, nominal_rate_rps=2.0)


def test_paper_objective_is_the_paper_score():
    obj = make_objective(ObjectiveSpec(), REF, interval_s=3600.0, nominal_rate_rps=2.0)
    assert obj.score(0.008, 0.83, 800.0) == score(0.008, 0.83, 800.0, REF)
    tv = obj.table(np.array([0.008 / 250 / 1.5 * 3.6e6]), np.array([0.83]), np.array([800.0]),
                   np.array([True]), 250.0, 1.5, 2.0)
    assert tv.value[0] == pytest.approx(score(0.008, 0.83, 800.0, REF).value)
    assert not tv.meets_sla[0]


def test_budget_fraction_is_base_carbon_at_the_reference():
    obj = _budget(budget_fraction=0.5)
    assert obj.budget_g == pytest.approx(0.5 * 0.01 * 2.0 * 4 * 3600)
    assert obj.allowance_g == pytest.approx(obj.budget_g / 4)


def test_budget_accounting_books_overspend_once_and_resets_per_window():
    obj = _budget(budget_g=100.0, overspend_penalty=2.0)
    s = obj.score(0.01, 0.84, 100.0)
    assert s.value == 0.0  # BASE's accuracy: -dA = 0
    v0, p0 = obj.book(0, 60.0, s.value)
    assert v0 == 0.0 and p0["budget_left_frac"] == pytest.approx(0.4)
    assert obj.features(1) == (pytest.approx(0.4), 0.75)
    v1, p1 = obj.book(1, 60.0, s.value)  # 20 g over: 2 x 20 / 25
    assert p1["overspend_g"] == pytest.approx(20.0) and v1 == pytest.approx(-1.6)
    v2, p2 = obj.book(2, 10.0, s.value)  # everything further is overspend
    assert p2["overspend_g"] == pytest.approx(10.0) and v2 == pytest.approx(-0.8)
    v3, _ = obj.book(3, 0.0, s.value)
    assert v3 == 0.0
    # window 2 (steps 4..7) starts afresh
    assert obj.features(4) == (1.0, 1.0)
    v4, p4 = obj.book(4, 50.0, s.value)
    assert v4 == 0.0 and p4["budget_spent_g"] == 50.0
    # the mean value telescopes to the window's total overspend
    assert (v0 + v1 + v2 + v3) == pytest.approx(-2.0 * (130.0 - 100.0) / 25.0)
    obj.reset()
    assert obj.features(0) == (1.0, 1.0)


def test_accuracy_floor_penalises_shortfall_only():
    spec = ObjectiveSpec(kind="accuracy_floor", floor=0.95, shortfall_penalty=10.0)
    obj = make_objective(spec, REF, interval_s=3600.0, nominal_rate_rps=2.0)
    above = obj.score(0.005, 0.84 * 0.96, 900.0)
    assert above.value == pytest.approx(0.5) and above.sla_factor == 1.0  # dC only, no SLA factor
    below = obj.score(0.005, 0.84 * 0.90, 100.0)
    assert below.value == pytest.approx(0.5 - 10.0 * 0.05)


@pytest.mark.parametrize("fields,match", [
    ({"kind": "carbon_budget"}, "exactly one of budget_g, budget_fraction"),
    ({"kind": "carbon_budget", "budget_g": 1, "budget_fraction": 0.5}, "exactly one"),
    ({"kind": "accuracy_floor"}, "objective.floor: required"),
])
def test_objective_fields_are_checked(tmp_path, fields, match):
    import yaml

    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump({"service": "efficientnet", "workload": {"kind": "constant", "rate_rps": 2.5},
                                 "objective": fields}))
    with pytest.raises(ConfigError, match=match):
        load_scenario(p)


def test_shipped_objective_scenarios_load():
    b = load_scenario("efficientnet-budget")
    f = load_scenario("efficientnet-floor")
    assert b.objective.kind == "carbon_budget" and f.objective.kind == "accuracy_floor"
