"""Arrival processes: Poisson statistics, seeded determinism, thinning follows the rate."""
from __future__ import annotations

import numpy as np
import pytest

from clover_rl.errors import ConfigError
from clover_rl.workload.arrivals import as_rng, nonhomogeneous_arrivals, poisson_arrivals


def test_poisson_count_and_gaps_match_the_rate():
    rate, dur = 2.5, 4000.0
    a = poisson_arrivals(rate, dur, np.random.default_rng(0))
    n = rate * dur
    assert abs(len(a) - n) < 4 * np.sqrt(n)  # 4 sigma
    assert np.all(np.diff(a) >= 0) and a.min() >= 0 and a.max() < dur
    gaps = np.diff(a)
    assert gaps.mean() == pytest.approx(1 / rate, rel=0.05)
    assert gaps.std() == pytest.approx(1 / rate, rel=0.08)  # exponential: std == mean


def test_poisson_counts_over_windows_have_poisson_variance():
    rng = np.random.default_rng(3)
    counts = np.array([len(poisson_arrivals(4.0, 10.0, rng)) for _ in range(2000)])
    assert counts.mean() == pytest.approx(40, rel=0.03)
    assert counts.var() == pytest.approx(40, rel=0.15)


def test_seeded_determinism():
    a = poisson_arrivals(3.0, 100.0, 42)
    b = poisson_arrivals(3.0, 100.0, np.random.default_rng(42))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, poisson_arrivals(3.0, 100.0, 43))


def test_zero_rate_or_duration_gives_no_arrivals():
    assert poisson_arrivals(0.0, 100.0, 0).size == 0
    assert poisson_arrivals(5.0, 0.0, 0).size == 0


@pytest.mark.parametrize("rate,dur,match", [
    (-1.0, 10.0, "rate_rps: expected a finite number >= 0"),
    (1.0, float("nan"), "duration_s: expected a finite number >= 0"),
    ("fast", 10.0, "rate_rps: expected a number"),
])
def test_bad_arguments(rate, dur, match):
    with pytest.raises(ConfigError, match=match):
        poisson_arrivals(rate, dur, 0)


def test_rng_must_be_a_generator_or_seed():
    with pytest.raises(ConfigError, match="rng: expected a numpy Generator"):
        as_rng(None)  # type: ignore[arg-type]


def test_thinning_follows_a_step_rate():
    def rate(t):
        return np.where(np.asarray(t) < 500.0, 1.0, 5.0)

    a = nonhomogeneous_arrivals(rate, 1000.0, 0, max_rate=5.0)
    lo, hi = (a < 500).sum(), (a >= 500).sum()
    assert abs(lo - 500) < 4 * np.sqrt(500) and abs(hi - 2500) < 4 * np.sqrt(2500)
    np.testing.assert_array_equal(a, nonhomogeneous_arrivals(rate, 1000.0, 0, max_rate=5.0))


def test_thinning_with_scalar_callable_offset_and_probed_bound():
    a = nonhomogeneous_arrivals(lambda t: 2.0 if t >= 100 else 0.0, 200.0, 1, start_s=50.0)
    assert a.min() >= 50.0  # rate is zero before absolute t = 100
    assert abs(len(a) - 300) < 4 * np.sqrt(300)


def test_thinning_bound_too_low_is_an_error():
    with pytest.raises(ConfigError, match="exceeds the thinning bound"):
        nonhomogeneous_arrivals(lambda t: np.full(np.shape(t), 3.0), 100.0, 0, max_rate=1.0)
