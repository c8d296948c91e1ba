"""The replay's fast paths against the computations they replace: the cached common random
numbers and the scan kernel give bit-identical steady states; the compiled head summary and
mixture give the numpy figures; steady mode matches long exact simulations on a sample of
configurations and loads (the tolerance documented in clover_rl.serving.steady)."""
from __future__ import annotations

import numpy as np
import pytest

from clover_rl.errors import ConfigError
from clover_rl.mig.catalog import get_gpu
from clover_rl.mig.config import enumerate_configurations
from clover_rl.services import load_service
from clover_rl.serving import disturbed, steady
from clover_rl.serving.profile import load_default_profile
from clover_rl.serving.replay import ReplayBackend
from clover_rl.serving.simulator import simulate, simulate_arrays, sorted_quantiles
from clover_rl.workload.arrivals import poisson_arrivals


def _sample_servers(service: str, n: int, seed: int):  # type: ignore[no-untyped-def]
    svc = load_service(service)
    gpu = get_gpu("a100-40gb")
    be = ReplayBackend(svc, load_default_profile(service, "a100-40gb"), gpu, 2)
    cfgs = []
    for c in enumerate_configurations(gpu, tuple(svc.variant_names)):
        try:
            cfgs.append((c, be.servers(c)))
        except ConfigError:  # (slice, variant) pair the profile does not cover: infeasible
            continue
    rng = np.random.default_rng(seed)
    return be, [cfgs[i] for i in rng.choice(len(cfgs), n, replace=False)]


@pytest.mark.parametrize("service", ["efficientnet", "albert"])
def test_steady_state_is_bit_identical_to_a_fresh_simulation(service: str) -> None:
    be, sample = _sample_servers(service, 6, 1)
    steady.clear_steady_cache()
    for _, sv in sample:
        rate = 0.37 * sv.capacity_rps
        lo, r_lo, _, _ = steady.rate_grid(rate)
        st = steady._steady_at(sv, r_lo, be.timeout_s, steady.STEADY_REQUESTS, steady.STEADY_SEED, lo)
        rng = steady.grid_rng(steady.STEADY_SEED, lo)  # the computation before the caches
        horizon = steady.STEADY_REQUESTS / r_lo
        arr = poisson_arrivals(r_lo, horizon, rng)
        res = simulate_arrays(sv, arr, rng.random(arr.shape[0]), horizon, timeout_s=be.timeout_s)
        m = res.metrics(skip=int(arr.shape[0] * steady.STEADY_WARMUP))
        assert (st.p50_ms, st.p95_ms, st.p99_ms, st.mean_ms) == (m.p50_ms, m.p95_ms, m.p99_ms, m.mean_ms)
        assert st.accuracy == m.accuracy and st.n_requests == arr.shape[0]


def test_compiled_head_summary_and_mixture_match_numpy() -> None:
    rng = np.random.default_rng(4)
    lat = rng.exponential(0.2, 700)
    server = np.where(rng.random(700) < 0.1, -1, rng.integers(0, 5, 700))
    q, mean, n = disturbed._served_quantiles_ms(lat, server, 0.003, steady.LATENCY_LEVELS)
    ref = np.sort(lat[server >= 0]) + 0.003
    np.testing.assert_array_equal(q, (sorted_quantiles(ref, steady.LATENCY_LEVELS) * 1e3).astype(np.float32))
    assert n == ref.size and mean == pytest.approx(ref.mean() * 1e3, rel=1e-12)
    levels = np.array([0.0, 0.5, 0.95, 0.99, 1.0])
    for _ in range(50):
        a = np.sort(rng.gamma(2, 10, steady.LATENCY_LEVELS.size)).astype(np.float32)
        b = np.sort(rng.gamma(2, 30, steady.LATENCY_LEVELS.size)).astype(np.float32)
        a[10:20] = a[10]  # repeated quantiles
        w1, w2 = rng.uniform(1, 500, 2)
        x = np.sort(np.concatenate([a, b]).astype(np.float64))
        cdf = (w1 * np.interp(x, a, steady.LATENCY_LEVELS) + w2 * np.interp(x, b, steady.LATENCY_LEVELS)) / (w1 + w2)
        np.testing.assert_allclose(disturbed.mixture_quantiles([(w1, a), (w2, b)], levels),
                                   np.interp(levels, cdf, x), rtol=1e-12)


@pytest.mark.parametrize("service,rho", [("efficientnet", 0.2), ("efficientnet", 0.6), ("albert", 0.4)])
def test_steady_mode_matches_exact_simulation_on_sampled_configurations(service: str, rho: float) -> None:
    """Steady state (cached, interpolated between grid points) vs one long exact simulation."""
    be, sample = _sample_servers(service, 4, 7)
    for cfg, sv in sample:
        rate = rho * sv.capacity_rps
        st = be.steady_state(rate, cfg).interval(3600.0)
        ex = simulate(cfg, be.profile, be.service, 2, rate, 150_000 / rate, seed=11, servers=sv)
        assert st.p50_ms == pytest.approx(ex.p50_ms, rel=0.03), cfg.label()
        assert st.p95_ms == pytest.approx(ex.p95_ms, rel=0.05), cfg.label()
        assert st.energy_j / 3600.0 == pytest.approx(ex.energy_j / ex.duration_s, rel=0.02), cfg.label()
        assert st.accuracy == pytest.approx(ex.accuracy, abs=0.1), cfg.label()
