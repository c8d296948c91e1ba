"""The cached steady state: cheap, matches long exact simulations, monotone in load."""
from __future__ import annotations

import time

import numpy as np
import pytest

from clover_rl.serving import simulator as sim
from clover_rl.serving import steady


def test_steady_state_is_cached_cheap_and_matches_exact(mk_cfg, profile, service):
    steady.clear_steady_cache()
    c = mk_cfg(("4g", "big"), ("2g", "small"), ("1g", "small"))
    sv = sim.build_servers(c, profile, service, 1)
    rate = 0.6 * sv.capacity_rps
    st = steady.steady_state_servers(sv, rate)
    assert not st.saturated and st.trusted and st.n_requests >= 20_000
    t0 = time.perf_counter()
    for _ in range(200):
        steady.steady_state_servers(sv, rate)
    assert (time.perf_counter() - t0) / 200 < 1e-3
    ex = sim.simulate(c, profile, service, 1, rate, 200_000 / rate, seed=9)
    iv = st.interval(100.0)
    assert iv.p95_ms == pytest.approx(ex.p95_ms, rel=0.05)
    assert iv.mean_ms == pytest.approx(ex.mean_ms, rel=0.05)
    assert iv.energy_j / 100.0 == pytest.approx(ex.energy_j / ex.duration_s, rel=0.02)
    assert st.power_w == pytest.approx(iv.energy_j / 100.0, rel=1e-3)
    assert iv.accuracy == pytest.approx(ex.accuracy, abs=0.3)
    for k, u in ex.utilization.items():
        assert iv.utilization[k] == pytest.approx(u, abs=0.02)
    assert iv.arrived == round(rate * 100.0) and iv.duration_s == 100.0


def test_steady_state_monotone_and_saturation_flag(mk_cfg, profile, service):
    c = mk_cfg(("3g", "big"), ("3g", "small"))
    cap = sim.build_servers(c, profile, service, 1).capacity_rps
    sts = [steady.steady_state(c, profile, service, 1, f * cap, n_requests=20_000) for f in (0.3, 0.6, 0.9)]
    assert [s.p95_ms for s in sts] == sorted(s.p95_ms for s in sts)
    assert [s.power_w for s in sts] == sorted(s.power_w for s in sts)
    over = steady.steady_state(c, profile, service, 1, 1.5 * cap, n_requests=20_000)
    assert over.saturated and not over.trusted and over.drop_fraction > 0.1


def test_steady_latency_quantiles_match_its_percentiles(mk_cfg, profile, service):
    sv = sim.build_servers(mk_cfg(("4g", "big"), ("3g", "small")), profile, service, 1)
    st = steady.steady_state_servers(sv, 0.5 * sv.capacity_rps)
    q = st.latency_q_ms
    assert q.shape == steady.LATENCY_LEVELS.shape and np.all(np.diff(q) >= 0)
    for level, p in ((0.5, st.p50_ms), (0.95, st.p95_ms), (0.99, st.p99_ms)):
        assert np.interp(level, steady.LATENCY_LEVELS, q) == pytest.approx(p, rel=2e-3)

