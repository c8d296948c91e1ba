from __future__ import annotations

import numpy as np
import pytest

from clover_rl.errors import ConfigError
from clover_rl.serving import simulator as sim
from clover_rl.serving import steady
from clover_rl.serving.profile import QUANTILE_LEVELS
from clover_rl.workload.arrivals import poisson_arrivals


def _servers(mk_cfg, profile, service, pairs, n_gpus=1):
    return sim.build_servers(mk_cfg(*pairs), profile, service, n_gpus)


# ----------------------------------------------------------------- kernel == reference


@pytest.mark.parametrize(
    "pairs,n_gpus,load,downtime,timeout",
    [
        ((("7g", "big"),), 1, 0.5, 0.0, 30.0),
        ((("4g", "big"), ("3g", "small")), 1, 0.9, 0.0, 30.0),
        ((("3g", "big"), ("2g", "small"), ("1g", "small"), ("1g", "big")), 2, 0.8, 0.3, 30.0),
        ((("4g", "small"), ("2g", "big"), ("1g", "big")), 1, 1.6, 0.0, 0.15),  # overload + drops
        ((("3g", "small"), ("3g", "small")), 3, 1.2, 0.5, 0.2),  # equal means: tie rule
    ],
)
def test_kernel_matches_reference_exactly(mk_cfg, profile, service, reference, pairs, n_gpus,
                                          load, downtime, timeout):
    sv = _servers(mk_cfg, profile, service, pairs, n_gpus)
    rng = np.random.default_rng(7)
    rate = load * sv.capacity_rps
    arr = poisson_arrivals(rate, 3000 / rate, rng)
    arr[10:20] = arr[10]  # simultaneous arrivals exercise the ties
    u = rng.random(arr.size)
    avail = np.where(np.arange(len(sv)) % 2 == 0, downtime, 0.0)
    res = sim.simulate_arrays(sv, arr, u, float(arr[-1]) + 1e-9, timeout_s=timeout, available_at=avail)
    lat, srv = reference(arr, u, sv.quantiles_s, avail, timeout)
    np.testing.assert_array_equal(res.server, np.array(srv))
    np.testing.assert_array_equal(res.latency_s, np.array(lat))  # NaN == NaN for drops
    assert (res.server < 0).any() == (timeout < 1.0)


def test_servers_ordered_fastest_first_with_ids(mk_cfg, profile, service):
    sv = _servers(mk_cfg, profile, service, (("4g", "big"), ("2g", "small"), ("1g", "small")), 2)
    assert list(sv.mean_s) == sorted(sv.mean_s)
    assert sv.ids[:2] == ("gpu0/2g.10gb@4", "gpu1/2g.10gb@4")  # equal means -> lower GPU first
    assert set(sv.ids) == {f"gpu{g}/{p}" for g in (0, 1) for p in ("4g.20gb@0", "2g.10gb@4", "1g.5gb@6")}
    e = profile.entry("4g.20gb", "big")
    assert sv.capacity_rps == pytest.approx(2 * sum(
        1e3 / profile.entry(p, v).mean_ms for p, v in (("4g.20gb", "big"), ("2g.10gb", "small"), ("1g.5gb", "small"))))
    assert e.mean_ms / 1e3 in sv.mean_s


# ----------------------------------------------------------------- queueing theory


def _mg1_mean_wait(q_s: np.ndarray, rate: float) -> tuple[float, float]:
    """Pollaczek-Khinchine mean wait for the piecewise-linear inverse-CDF service time."""
    lv = np.asarray(QUANTILE_LEVELS)
    dq = np.diff(lv)
    es = float(np.sum(dq * (q_s[1:] + q_s[:-1]) / 2))
    es2 = float(np.sum(dq * (q_s[1:] ** 2 + q_s[1:] * q_s[:-1] + q_s[:-1] ** 2) / 3))
    rho = rate * es
    return es, rate * es2 / (2 * (1 - rho))


@pytest.mark.parametrize("shape", ["deterministic", "skewed"])
def test_single_server_mean_wait_matches_pollaczek_khinchine(mk_cfg, mk_profile, service, shape):
    prof = mk_profile(shape=(1.0,) * 10) if shape == "deterministic" else mk_profile()
    sv = _servers(mk_cfg, prof, service, (("7g", "small"),))
    q = sv.quantiles_s[0]
    rate = 0.7 / (prof.entry("7g.40gb", "small").mean_ms / 1e3)
    es, wq = _mg1_mean_wait(q, rate)
    m = sim.simulate(mk_cfg(("7g", "small")), prof, service, 1, rate, 300_000 / rate, seed=3)
    assert m.mean_ms / 1e3 - es == pytest.approx(wq, rel=0.05)
    # the service draw reproduces the profile's mean exactly in expectation
    util = m.utilization["gpu0/7g.40gb@0"]
    assert util == pytest.approx(0.7, rel=0.01)


# ----------------------------------------------------------------- determinism, shapes


def test_deterministic_for_a_seed(mk_cfg, profile, service):
    c = mk_cfg(("4g", "big"), ("3g", "small"))
    a = sim.simulate(c, profile, service, 2, 150.0, 30.0, seed=11)
    b = sim.simulate(c, profile, service, 2, 150.0, 30.0, seed=11)
    d = sim.simulate(c, profile, service, 2, 150.0, 30.0, seed=12)
    assert a == b
    assert a != d


def test_p95_grows_with_rate(mk_cfg, profile, service):
    c = mk_cfg(("4g", "big"), ("2g", "small"), ("1g", "small"))
    cap = sim.build_servers(c, profile, service, 1).capacity_rps
    p95 = [sim.simulate(c, profile, service, 1, f * cap, 40_000 / (f * cap), seed=5).p95_ms
           for f in (0.2, 0.5, 0.8, 0.95)]
    assert p95 == sorted(p95) and p95[-1] > 2 * p95[0]


def test_light_load_goes_to_fastest_slice(mk_cfg, profile, service):
    c = mk_cfg(("4g", "big"), ("3g", "small"))  # 3g:small is the faster slice
    arr = np.arange(0.0, 10.0, 0.5)  # gaps far longer than any service time
    m = sim.simulate(c, profile, service, 2, None, 10.0, seed=0, arrivals=arr)
    assert m.variant_share == {"big": 0.0, "small": 1.0}  # every configured variant listed
    assert m.accuracy == 70.0
    assert m.utilization["gpu0/3g.20gb@4"] > 0
    assert m.utilization["gpu1/3g.20gb@4"] == 0.0 and m.utilization["gpu0/4g.20gb@0"] == 0.0


def test_accuracy_and_variant_share_are_request_weighted(mk_cfg, profile, service):
    c = mk_cfg(("4g", "big"), ("3g", "small"))
    cap = sim.build_servers(c, profile, service, 1).capacity_rps
    m = sim.simulate(c, profile, service, 1, 0.9 * cap, 200.0, seed=2)
    assert sum(m.variant_share.values()) == pytest.approx(1.0)
    assert m.accuracy == pytest.approx(80.0 * m.variant_share["big"] + 70.0 * m.variant_share["small"])
    assert 0 < m.variant_share["big"] < m.variant_share["small"]


# ----------------------------------------------------------------- downtime, timeouts, energy


def test_downtime_makes_requests_wait_and_loses_none(mk_cfg, profile, service):
    c = mk_cfg(("4g", "big"), ("3g", "small"))
    sv = sim.build_servers(c, profile, service, 1)
    down = {sid: 2.0 for sid in sv.ids}
    base = sim.simulate(c, profile, service, 1, 0.3 * sv.capacity_rps, 20.0, seed=4)
    hit = sim.simulate(c, profile, service, 1, 0.3 * sv.capacity_rps, 20.0, seed=4, downtime_s=down)
    assert hit.dropped == 0 and hit.served == hit.arrived == base.arrived
    assert hit.mean_ms > base.mean_ms + 50  # ~10% of requests waited ~1 s on average
    assert hit.p99_ms > 1000


def test_downtime_of_one_slice_shifts_load(mk_cfg, profile, service):
    c = mk_cfg(("4g", "big"), ("3g", "small"))
    arr = np.arange(0.0, 4.0, 0.25)
    m = sim.simulate(c, profile, service, 1, None, 4.0, seed=0, arrivals=arr,
                     downtime_s={"gpu0/3g.20gb@4": 2.0})
    assert m.variant_share == {"big": 0.5, "small": 0.5}


def test_timeouts_are_dropped_not_served(mk_cfg, mk_profile, service):
    prof = mk_profile(shape=(1.0,) * 10, base_ms={"small": 100.0, "big": 300.0})  # 7g: 100 ms
    c = mk_cfg(("7g", "small"))
    arr = np.zeros(5)
    m = sim.simulate(c, prof, service, 1, None, 1.0, seed=0, arrivals=arr, timeout_s=0.25)
    assert (m.arrived, m.served, m.dropped) == (5, 3, 2)  # waits 0, .1, .2 served; .3 > .25 dropped
    assert m.mean_ms == pytest.approx(200.0)
    edge = sim.simulate(c, prof, service, 1, None, 1.0, seed=0, arrivals=arr, timeout_s=0.2)
    assert edge.served == 3  # a wait equal to the timeout is served


def test_energy_and_utilisation_by_hand(mk_cfg, mk_profile, service):
    prof = mk_profile(shape=(1.0,) * 10, base_ms={"small": 100.0, "big": 300.0}, idle_w=50.0)
    c = mk_cfg(("7g", "small"))  # 100 ms per request, active 140 W
    m = sim.simulate(c, prof, service, 1, None, 2.0, seed=0, arrivals=np.array([0.0, 1.0]))
    assert m.duration_s == 2.0
    assert m.energy_j == pytest.approx(50.0 * 2.0 + 140.0 * 0.2)
    assert m.utilization == {"gpu0/7g.40gb@0": pytest.approx(0.1)}
    assert m.throughput_rps == pytest.approx(1.0)
    # drain past the interval end: energy and utilisation cover the longer span
    d = sim.simulate(c, prof, service, 2, None, 2.0, seed=0, arrivals=np.array([1.95]))
    assert d.duration_s == pytest.approx(2.05)
    assert d.energy_j == pytest.approx(2 * 50.0 * 2.05 + 140.0 * 0.1)
    assert d.utilization["gpu0/7g.40gb@0"] == pytest.approx(0.1 / 2.05)


def test_empty_interval_has_no_nan(mk_cfg, profile, service):
    c = mk_cfg(("7g", "big"))
    m = sim.simulate(c, profile, service, 1, None, 5.0, seed=0, arrivals=np.array([]))
    assert (m.arrived, m.served, m.p95_ms) == (0, 0, 0.0)
    assert m.energy_j == pytest.approx(50.0 * 5.0)
    assert m.accuracy == 80.0


# ----------------------------------------------------------------- errors


def test_errors(mk_cfg, mk_profile, profile, service):
    c = mk_cfg(("4g", "big"), ("3g", "small"))
    with pytest.raises(ConfigError, match="rate_rps"):
        sim.simulate(c, profile, service, 1, 0.0, 10.0)
    with pytest.raises(ConfigError, match="duration_s"):
        sim.simulate(c, profile, service, 1, 5.0, -1.0)
    with pytest.raises(ConfigError, match="n_gpus"):
        sim.simulate(c, profile, service, 0, 5.0, 1.0)
    holes = mk_profile(skip=(("3g.20gb", "small"),))
    with pytest.raises(ConfigError, match=r"'small' on slice '3g.20gb'"):
        sim.simulate(c, holes, service, 1, 5.0, 1.0)
    with pytest.raises(ConfigError, match="sorted"):
        sim.simulate(c, profile, service, 1, None, 10.0, arrivals=np.array([2.0, 1.0]))
    with pytest.raises(ConfigError, match=r"\[0, 10.0\)"):
        sim.simulate(c, profile, service, 1, None, 10.0, arrivals=np.array([1.0, 10.0]))
    with pytest.raises(ConfigError, match="unknown slice"):
        sim.simulate(c, profile, service, 1, 5.0, 1.0, downtime_s={"gpu3/7g.40gb@0": 1.0})
    with pytest.raises(ConfigError, match="rate_rps"):
        steady.steady_state(c, profile, service, 1, -3.0)
