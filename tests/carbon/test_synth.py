"""Synthetic traces: seeded determinism, shapes, realistic ranges, labelling, validation."""
from __future__ import annotations

import numpy as np
import pytest

from clover_rl.carbon.synth import SHAPES, sample_synthetic, synthesize
from clover_rl.errors import ConfigError


@pytest.mark.parametrize("shape", SHAPES)
def test_same_seed_same_trace_other_seed_differs(shape):
    a, b = synthesize(shape, 3, 7), synthesize(shape, 3, 7)
    np.testing.assert_array_equal(a.values, b.values)
    np.testing.assert_array_equal(a.times, b.times)
    assert not np.array_equal(a.values, synthesize(shape, 3, 8).values)


@pytest.mark.parametrize("shape", SHAPES)
def test_hourly_labelled_and_realistic(shape):
    tr = synthesize(shape, 30, 0)
    assert len(tr) == 30 * 24 and tr.resolution_s == 3600.0
    assert tr.synthetic and "synthetic" in tr.provenance and "seed=0" in tr.provenance
    assert tr.times[0] == np.datetime64("2021-01-01T00:00:00")
    assert np.all(np.diff(tr.times) == np.timedelta64(1, "h"))
    v = tr.values
    assert np.all(np.isfinite(v)) and v.min() >= 20.0
    assert 50 <= np.percentile(v, 5) and np.percentile(v, 95) <= 650
    assert 150 <= v.mean() <= 500


def test_solar_has_a_midday_dip_and_evening_peak():
    v = synthesize("solar", 28, 1).values.reshape(28, 24).mean(axis=0)
    assert v[11:14].mean() < v.mean() - 80  # duck belly around noon
    assert v[18:22].mean() > v.mean() + 30  # evening ramp
    shifted = synthesize("solar", 28, 1, utc_offset_h=-8).values.reshape(28, 24).mean(axis=0)
    assert int(np.argmin(shifted)) in range(18, 23)  # local noon at ~20:00 UTC


def test_wind_swings_slowly_and_flat_stays_flat():
    w = synthesize("wind", 60, 2).values
    lag1 = np.corrcoef(w[:-1], w[1:])[0, 1]
    assert lag1 > 0.8 and w.std() > 50
    f = synthesize("flat", 60, 2).values
    assert f.std() < 40 and abs(f.mean() - 450) < 40


def test_parameters_are_honoured():
    tr = synthesize("flat", 10, 0, mean=100, amplitude=0, noise=0, start="2020-06-01T00:00Z")
    np.testing.assert_allclose(tr.values, 100.0)
    assert tr.times[0] == np.datetime64("2020-06-01T00:00:00")
    assert synthesize("solar", 5, 0, mean=10, amplitude=300, floor=40).values.min() >= 40


@pytest.mark.parametrize("kwargs,match", [
    (dict(shape="tidal", days=1, seed=0), "shape: expected one of solar, wind, flat, mixed"),
    (dict(shape="solar", days=0, seed=0), "days: expected an integer"),
    (dict(shape="solar", days=1.5, seed=0), "days: expected an integer"),
    (dict(shape="solar", days=1, seed=-1), "seed: expected a non-negative integer"),
    (dict(shape="solar", days=1, seed=0, mean=0), "mean: must be > 0"),
    (dict(shape="solar", days=1, seed=0, amplitude=-1), "amplitude: must be >= 0"),
    (dict(shape="solar", days=1, seed=0, noise=float("nan")), "noise: expected a number"),
    (dict(shape="solar", days=1, seed=0, start="someday"), "start: cannot parse time"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        synthesize(**kwargs)


def test_sample_synthetic_is_seeded_and_varied():
    a, b = sample_synthetic(2, 5), sample_synthetic(2, 5)
    np.testing.assert_array_equal(a.values, b.values)
    shapes = {sample_synthetic(1, s).provenance.split()[1] for s in range(40)}
    assert shapes == set(SHAPES)
