"""The replay's caches against fresh computation, bit for bit: switches served with every cache
warm (transitions, servers and their row memo, steady states by shape, workloads with their
service draws, disturbed heads and results) give the IntervalMetrics and ReconfigReports of the
same switches served with every cache cleared before each step and the store off."""
from __future__ import annotations

import numpy as np
import pytest

from clover_rl.serving import disturbed, steady
from clover_rl.serving import simulator as sim
from clover_rl.serving.replay import ReplayBackend
from clover_rl.serving.steady_store import SteadyStore

PAIRS = [  # same-profile slices holding different variants: placements and shapes repeat
    (("3g", "big"), ("3g", "small")),
    (("3g", "small"), ("3g", "big")),
    (("4g", "big"), ("2g", "small"), ("1g", "small")),
    (("4g", "small"), ("2g", "big"), ("1g", "big")),
    (("2g", "big"), ("2g", "small"), ("2g", "small"), ("1g", "big")),
    (("7g", "big"),),
]


def _serve(profile, service, configs, plan, clear: bool) -> list:  # type: ignore[no-untyped-def]
    be = ReplayBackend(service, profile, "a100-40gb", 2, steady_requests=4000)
    out = []
    for i, rho in plan:
        if clear:
            steady.clear_steady_cache()
            disturbed.clear_disturbed_cache()
            be._transitions.clear()
            be._servers_cache.clear()
            be._rows.clear()
            be._steady_runs.clear()
        rate = rho * be.capacity_rps(configs[0])
        out.append(be.apply(configs[i]))
        out.append(be.run(900.0, rate))
    return out


@pytest.mark.parametrize("seed", [0, 1])
def test_cached_switches_equal_fresh_computation(monkeypatch, tmp_path, mk_cfg, profile, service, seed) -> None:
    off = SteadyStore(tmp_path / "unused.sqlite")
    off.disabled = True
    monkeypatch.setattr(steady, "STORE", off)
    configs = [mk_cfg(*p) for p in PAIRS]
    rng = np.random.default_rng(seed)
    # loads from light to near saturation (whole exact intervals); configurations revisited
    # from different predecessors, so cached entries are reused across placements
    plan = [(int(rng.integers(len(configs))), float(rng.choice([0.2, 0.45, 0.7, 0.97]))) for _ in range(30)]
    steady.clear_steady_cache()
    disturbed.clear_disturbed_cache()
    warm = _serve(profile, service, configs, plan, clear=False)
    warm_again = _serve(profile, service, configs, plan, clear=False)  # every step a cache hit
    fresh = _serve(profile, service, configs, plan, clear=True)
    assert warm == fresh
    assert warm_again == fresh


def test_servers_built_with_the_row_memo_equal_servers_built_without(mk_cfg, profile, service) -> None:
    memo: dict = {}
    for pairs in PAIRS:
        cfg = mk_cfg(*pairs)
        a = sim.build_servers(cfg, profile, service, 2)
        b = sim.build_servers(cfg, profile, service, 2, rows=memo)
        assert (a.ids, a.variants, a.key, a.key_id, a.shape_id) == (b.ids, b.variants, b.key, b.key_id, b.shape_id)
        for x, y in [(a.quantiles_s, b.quantiles_s), (a.mean_s, b.mean_s), (a.gpu_index, b.gpu_index),
                     (a.active_power_w, b.active_power_w), (a.accuracy, b.accuracy)]:
            np.testing.assert_array_equal(x, y)
        assert a.quantiles_s[0, 0] == profile.entry(*_first(a)).service_ms[0] / 1e3  # seconds, no overhead
    assert len(memo) >= 4


def _first(sv: sim.Servers) -> tuple[str, str]:
    return sv.ids[0].split("/")[1].split("@")[0], sv.variants[0]


def test_service_draws_are_the_kernel_inverse_cdf_positions() -> None:
    u = np.concatenate([sim.LEVELS, np.nextafter(sim.LEVELS, 2.0), np.random.default_rng(3).random(500)])
    u = u[(u >= 0) & (u < 1)]
    seg, frac = sim.service_draws(u)
    for x, k, f in zip(u.tolist(), seg.tolist(), frac.tolist()):
        j = 0  # the kernel's former per-request linear search
        while j < len(sim.LEVELS) - 2 and x >= sim.LEVELS[j + 1]:
            j += 1
        assert (k, f) == (j, (x - sim.LEVELS[j]) / (sim.LEVELS[j + 1] - sim.LEVELS[j]))


def test_sorted_served_latencies_in_scratch_buffers_equal_the_numpy_formula(mk_cfg, profile, service) -> None:
    sv = sim.build_servers(mk_cfg(("4g", "big"), ("2g", "small"), ("1g", "small")), profile, service, 1)
    rng = np.random.default_rng(5)
    for rho, timeout in [(0.4, 30.0), (1.5, 0.05)]:  # light load; overload with drops
        arr = np.cumsum(rng.exponential(1.0 / (rho * sv.capacity_rps), 3000))
        u = rng.random(arr.shape[0])
        fresh = sim.simulate_arrays(sv, arr, u, float(arr[-1]) + 1.0, timeout_s=timeout)
        reused = sim.simulate_arrays(sv, arr, sim.service_draws(u), float(arr[-1]) + 1.0, timeout_s=timeout,
                                     scratch=True)
        np.testing.assert_array_equal(fresh.latency_s, reused.latency_s)
        for skip in (0, 150):
            ref = np.sort(fresh.latency_s[skip:][fresh.server[skip:] >= 0]) + sv.frontend_s  # the former formula
            out = sim.scratch_buffer("test", arr.shape[0], np.float64)
            np.testing.assert_array_equal(reused.sorted_latency_s(skip, out=out), ref)
            np.testing.assert_array_equal(fresh.sorted_latency_s(skip), ref)
        assert (fresh.server < 0).any() == (timeout < 1.0)


def test_a_steady_state_keeps_its_figures_when_the_scratch_buffers_are_reused(mk_cfg, profile, service) -> None:
    a = sim.build_servers(mk_cfg(("7g", "big")), profile, service, 1)
    b = sim.build_servers(mk_cfg(("4g", "small"), ("3g", "small")), profile, service, 1)
    steady.clear_steady_cache()
    first = steady._simulate_steady(a, 20.0, 30.0, 4000, steady.STEADY_SEED, 0)
    q = first.latency_q_ms.copy()
    steady._simulate_steady(b, 20.0, 30.0, 4000, steady.STEADY_SEED, 0)
    np.testing.assert_array_equal(first.latency_q_ms, q)
    assert first == steady._simulate_steady(a, 20.0, 30.0, 4000, steady.STEADY_SEED, 0)
