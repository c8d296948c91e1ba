"""Workloads: rates over time, arrivals, scaling, config parsing and its errors."""
from __future__ import annotations

import numpy as np
import pytest

from clover_rl.errors import CloverError
from clover_rl.workload import (
    ConstantRate,
    DiurnalRate,
    TraceRate,
    random_scale,
    workload_from_config,
)


def test_constant_from_rate_or_inter_arrival():
    w = workload_from_config({"kind": "constant", "rate_rps": 2.5})
    assert isinstance(w, ConstantRate) and w.rate_at(123.0) == 2.5
    assert workload_from_config({"kind": "constant", "inter_arrival_s": 0.4}).rate_at(0) == pytest.approx(2.5)
    assert w.mean_rate(0, 3600) == 2.5 and w.max_rate(0, 10) == 2.5


def test_constant_arrivals_count():
    a = ConstantRate(2.0).arrivals(0.0, 3600.0, np.random.default_rng(0))
    assert abs(len(a) - 7200) < 4 * np.sqrt(7200)


def test_diurnal_peaks_at_peak_hour_and_averages_to_mean():
    w = workload_from_config({"kind": "diurnal", "mean_rps": 4.0, "amplitude": 0.5, "peak_hour": 14})
    assert isinstance(w, DiurnalRate)
    assert w.rate_at(14 * 3600) == pytest.approx(6.0)
    assert w.rate_at(2 * 3600) == pytest.approx(2.0)
    assert w.mean_rate(0, 86400) == pytest.approx(4.0)
    t = np.linspace(13 * 3600, 15 * 3600, 1001)
    assert w.mean_rate(13 * 3600, 15 * 3600) == pytest.approx(w.rates(t).mean(), rel=1e-3)
    aligned = DiurnalRate(4.0, 0.5, peak_hour=14, start_hour=10)
    assert aligned.rate_at(4 * 3600) == pytest.approx(6.0)  # t=0 is 10:00


def test_diurnal_arrivals_follow_the_cycle():
    w = DiurnalRate(2.0, amplitude=0.8, peak_hour=12)
    a = w.arrivals(0.0, 86400.0, 1)
    assert abs(len(a) - 2.0 * 86400) < 4 * np.sqrt(2.0 * 86400)
    per_hour = np.histogram(a, bins=24, range=(0, 86400))[0] / 3600
    assert int(np.argmax(per_hour)) in (11, 12) and int(np.argmin(per_hour)) in (23, 0)
    np.testing.assert_array_equal(a, w.arrivals(0.0, 86400.0, 1))


def test_trace_workload_steps_wraps_and_holds(tmp_path):
    p = tmp_path / "rates.csv"
    p.write_text("timestamp,rate_rps\n2021-03-01T00:00Z,1\n2021-03-01T01:00Z,3\n")
    w = workload_from_config({"kind": "trace", "path": "rates.csv"}, base_dir=tmp_path)
    assert isinstance(w, TraceRate)
    assert [w.rate_at(t) for t in (0, 3599, 3600, 7200, 10800)] == [1, 1, 3, 1, 3]
    assert w.mean_rate(1800, 5400) == pytest.approx(2.0)
    assert w.max_rate(0, 100) == 1.0 and w.max_rate(0, 1e6) == 3.0
    held = workload_from_config({"kind": "trace", "path": str(p), "wrap": False})
    assert held.rate_at(1e6) == 3.0
    a = w.arrivals(0.0, 7200.0, 0)
    assert abs((a < 3600).sum() - 3600) < 4 * 60 and abs((a >= 3600).sum() - 10800) < 4 * 104


def test_scale_for_randomised_load_levels(tmp_path):
    assert ConstantRate(2.0).scale(1.5).rate_at(0) == 3.0
    assert DiurnalRate(2.0, 0.5, 14).scale(2).mean_rate(0, 86400) == pytest.approx(4.0)
    assert workload_from_config({"kind": "constant", "rate_rps": 2.0, "scale": 0.5}).rate_at(0) == 1.0
    p = tmp_path / "r.csv"
    p.write_text("rate\n2\n4\n")
    assert workload_from_config({"kind": "trace", "path": str(p), "scale": 2}).rate_at(3600) == 8.0
    levels = {round(random_scale(ConstantRate(1.0), s, 0.5, 1.5).rate_at(0), 6) for s in range(20)}
    assert len(levels) == 20 and min(levels) >= 0.5 and max(levels) <= 1.5
    assert random_scale(ConstantRate(1.0), 7).rate_at(0) == random_scale(ConstantRate(1.0), 7).rate_at(0)


def test_config_round_trip_and_serialised_scenario_form():
    for w in (ConstantRate(2.5), DiurnalRate(3.0, 0.25, 9.0, 1.0)):
        assert workload_from_config(w.to_config()) == w
    # a pydantic WorkloadSpec.model_dump() carries every key, irrelevant ones None / defaults
    full = {"kind": "constant", "rate_rps": 2.5, "mean_rps": None, "amplitude": 0.0,
            "peak_hour": 14.0, "path": None}
    assert workload_from_config(full) == ConstantRate(2.5)


@pytest.mark.parametrize("cfg,match", [
    ({"rate_rps": 1}, r"^workload: field kind: Field required$"),
    ({"kind": "bursty"}, r"^workload: field kind: Input should be 'constant', 'diurnal' or 'trace' \(got 'bursty'\)$"),
    ({"kind": "constant"}, r"^workload: rate_rps: required"),
    ({"kind": "constant", "rate_rps": -2}, r"^workload: field rate_rps: Input should be greater than 0 \(got -2\)$"),
    ({"kind": "constant", "rate_rps": "fast"}, r"^workload: field rate_rps: Input should be a valid number"),
    ({"kind": "constant", "rate_rps": 1, "inter_arrival_s": 1}, "not both"),
    ({"kind": "constant", "inter_arrival_s": 0}, "workload: field inter_arrival_s"),
    ({"kind": "constant", "rate_rps": 1, "rate": 2}, "^workload: field rate: unknown field$"),
    ({"kind": "diurnal", "amplitude": 0.5}, "workload: mean_rps: required"),
    ({"kind": "diurnal", "mean_rps": 1, "amplitude": 1.5}, "workload: field amplitude"),
    ({"kind": "diurnal", "mean_rps": 1, "peak_hour": 24}, "workload: field peak_hour"),
    ({"kind": "trace"}, "workload: path: required"),
    ({"kind": "trace", "path": "/nonexistent/r.csv"}, "r.csv: file not found"),
    ({"kind": "constant", "rate_rps": 1, "scale": -1}, "workload: field scale"),
    ({"kind": "trace", "rates": [1.0], "wrap": "yes"}, r"workload: field wrap: Input should be a valid boolean \(got 'yes'\)"),
    ({"kind": "trace", "rates": [1.0, float("nan")]}, r"workload: field rates\[1\]: Input should be a finite number"),
    ("constant", "workload: expected a mapping"),
])
def test_config_errors_name_the_field(cfg, match):
    with pytest.raises(CloverError, match=match):
        workload_from_config(cfg)
