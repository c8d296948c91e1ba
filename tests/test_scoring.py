"""The paper's score against hand calculations."""
from __future__ import annotations

import pytest

from clover_rl.scoring import ObjectiveReference, carbon_g, score


def test_carbon_is_energy_times_intensity_times_pue():
    # 3.6 MJ = 1 kWh; at 200 g/kWh and PUE 1.5 -> 300 g
    assert carbon_g(3.6e6, 200.0, 1.5) == pytest.approx(300.0)


def test_reference_from_base_uses_250_g_and_pue_1_5():
    ref = ObjectiveReference.from_base(72.0, 84.58, 900.0)
    assert ref.c_ref_g == pytest.approx(72.0 / 3.6e6 * 250 * 1.5)
    assert ref.lam == 0.1


def test_score_hand_calculation():
    ref = ObjectiveReference(c_ref_g=0.010, a_base=84.58, sla_ms=900.0, lam=0.1)
    s = score(0.004, 81.53, 500.0, ref)
    dc = (0.010 - 0.004) / 0.010
    da = (84.58 - 81.53) / 84.58
    assert s.delta_c == pytest.approx(dc)
    assert s.delta_a == pytest.approx(da)
    assert s.value == pytest.approx(0.1 * dc - 0.9 * da)
    assert s.sla_factor == 1.0


def test_sla_violation_scales_score():
    ref = ObjectiveReference(c_ref_g=0.010, a_base=80.0, sla_ms=100.0, lam=0.5)
    s = score(0.005, 80.0, 200.0, ref)
    assert s.raw == pytest.approx(0.25)
    assert s.sla_factor == pytest.approx(0.5)
    assert s.value == pytest.approx(0.125)


def test_base_at_reference_scores_zero():
    ref = ObjectiveReference.from_base(50.0, 89.1, 165.0)
    assert score(ref.c_ref_g, 89.1, 160.0, ref).value == pytest.approx(0.0)


def test_sla_penalty_has_a_fixed_and_a_proportional_part():
    from clover_rl.scoring import sla_penalty

    assert sla_penalty(100.0, 100.0, 0.05) == 0.0
    assert sla_penalty(101.0, 100.0, 0.05) == pytest.approx(0.05 * 1.01)
    assert sla_penalty(300.0, 100.0, 0.05) == pytest.approx(0.05 * 3.0)
    assert sla_penalty(5000.0, 100.0, 0.05) == pytest.approx(0.05 * 11.0)


def test_scalar_score_equals_the_vectorised_formula_bit_for_bit():
    import numpy as np

    from clover_rl.scoring import scores

    rng = np.random.default_rng(0)
    ref = ObjectiveReference(c_ref_g=0.01, a_base=0.84, sla_ms=120.0, lam=0.1)
    cpr, acc = rng.random(400) * 0.02, 0.6 + rng.random(400) * 0.3
    p95 = np.concatenate([rng.random(200) * 240.0, [120.0, 0.0, 1e-15, 1e9], rng.random(196) * 130.0])
    vec = scores(cpr, acc, p95, ref)
    one = [score(float(c), float(a), float(p), ref).value for c, a, p in zip(cpr, acc, p95)]
    assert np.array_equal(vec, np.array(one))
