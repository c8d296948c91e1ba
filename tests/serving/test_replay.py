from __future__ import annotations

import pytest

from clover_rl.errors import BackendError, ConfigError
from clover_rl.serving.backend import Backend
from clover_rl.serving.replay import ReplayBackend


@pytest.fixture
def backend(service, profile):
    with ReplayBackend(service, profile, "a100-40gb", n_gpus=2, seed=1) as b:
        yield b


def test_is_a_backend(backend):
    assert isinstance(backend, Backend)
    assert backend.name == "replay" and backend.configuration is None


def test_first_apply_is_free_and_reapply_is_a_no_op(backend, mk_cfg):
    a = mk_cfg(("4g", "big"), ("3g", "small"))
    r = backend.apply(a)
    assert r.changed and r.previous is None and r.current == a and r.ok
    assert r.downtime_s == {f"gpu{g}/{s}": 0.0 for g in (0, 1) for s in ("4g.20gb@0", "3g.20gb@4")}
    assert r.slices_changed == 0 and backend.pending_downtime_s == {}
    r2 = backend.apply(a)
    assert not r2.changed and r2.previous == a and set(r2.downtime_s.values()) == {0.0}
    assert backend.configuration == a


def test_downtime_rules(backend, mk_cfg, profile):
    backend.apply(mk_cfg(("4g", "big"), ("3g", "small")))
    # same placements, 3g switches variant: model load only; 4g untouched
    r = backend.apply(mk_cfg(("4g", "big"), ("3g", "big")))
    load_big = profile.model_load_s["big"]
    assert r.downtime_s["gpu0/4g.20gb@0"] == 0.0
    assert r.downtime_s["gpu1/3g.20gb@4"] == load_big
    assert r.slices_changed == 2  # one per GPU
    backend.run(60.0, 20.0)  # pays the downtime
    assert backend.pending_downtime_s == {}
    # 4g@0 -> 3g@0 is re-partitioned; 3g@4 keeps its loaded "big" (variant kept in place)
    r = backend.apply(mk_cfg(("3g", "small"), ("3g", "big")))
    assert r.downtime_s["gpu0/3g.20gb@4"] == 0.0
    assert r.downtime_s["gpu0/3g.20gb@0"] == profile.partition_change_s + profile.model_load_s["small"]
    assert set(backend.pending_downtime_s) == {"gpu0/3g.20gb@0", "gpu1/3g.20gb@0"}


def test_applies_without_run_accumulate_per_slice(backend, mk_cfg, profile):
    backend.apply(mk_cfg(("4g", "big"), ("3g", "small")))
    backend.apply(mk_cfg(("4g", "big"), ("3g", "big")))
    r = backend.apply(mk_cfg(("4g", "big"), ("3g", "small")))
    assert r.downtime_s["gpu0/3g.20gb@4"] == profile.model_load_s["big"] + profile.model_load_s["small"]


def test_downtime_is_paid_in_next_run(service, profile, mk_cfg):
    b = ReplayBackend(service, profile, "a100-40gb", n_gpus=1, seed=3)
    b.apply(mk_cfg(("7g", "small")))
    calm = b.run(30.0, 50.0)
    b.apply(mk_cfg(("7g", "big")))
    hit = b.run(30.0, 50.0)  # 2.5 s model load: ~125 requests queue meanwhile
    after = b.run(30.0, 50.0)
    assert hit.dropped == 0 and hit.served == hit.arrived > 0
    assert hit.p99_ms > 1500 > calm.p99_ms
    assert after.p99_ms < 1000 and b.pending_downtime_s == {}


def test_long_downtime_carries_over(service, mk_profile, mk_cfg):
    prof = mk_profile(partition_change_s=50.0)
    b = ReplayBackend(service, prof, "a100-40gb", seed=0, timeout_s=5.0)
    b.apply(mk_cfg(("7g", "big")))
    b.apply(mk_cfg(("4g", "big"), ("3g", "big")))
    m = b.run(30.0, 10.0)
    assert m.served == 0 and m.dropped == m.arrived > 0  # nothing up for the whole window
    assert b.pending_downtime_s == {"gpu0/4g.20gb@0": pytest.approx(22.5), "gpu0/3g.20gb@4": pytest.approx(22.5)}
    m2 = b.run(30.0, 10.0)
    assert m2.served > 0 and b.pending_downtime_s == {}


def test_steady_mode_is_cheap_and_deterministic(service, profile, mk_cfg):
    c = mk_cfg(("4g", "big"), ("2g", "small"), ("1g", "small"))
    runs = []
    for _ in range(2):
        b = ReplayBackend(service, profile, "a100-40gb", seed=5)
        b.apply(c)
        runs.append([b.run(3600.0, 0.5 * b.capacity_rps()) for _ in range(3)])
    assert runs[0] == runs[1]
    m = runs[0][0]
    assert m.duration_s == 3600.0 and m.served == m.arrived and m.dropped == 0
    assert runs[0][0] == runs[0][1]  # steady: expected values, no noise


def test_exact_mode_draws_fresh_sub_seeds(service, profile, mk_cfg):
    c = mk_cfg(("4g", "big"), ("3g", "small"))
    seqs = []
    for seed in (8, 8, 9):
        b = ReplayBackend(service, profile, "a100-40gb", seed=seed, mode="exact")
        b.apply(c)
        seqs.append([b.run(20.0, 60.0) for _ in range(2)])
    assert seqs[0] == seqs[1] != seqs[2]
    assert seqs[0][0] != seqs[0][1]


def test_saturated_steady_run_falls_back_to_exact(service, profile, mk_cfg):
    b = ReplayBackend(service, profile, "a100-40gb", seed=2, timeout_s=2.0)
    b.apply(mk_cfg(("7g", "big")))
    m = b.run(20.0, 2.0 * b.capacity_rps())
    assert m.dropped > 0.3 * m.arrived
    assert m.throughput_rps == pytest.approx(b.capacity_rps(), rel=0.1)


def test_probe_applies_and_measures(backend, mk_cfg):
    backend.apply(mk_cfg(("7g", "big")))
    c = mk_cfg(("4g", "small"), ("3g", "small"))
    m = backend.probe(c, 30.0, 40.0)
    assert backend.configuration == c
    assert m.variant_share.get("small") == 1.0 and m.arrived > 0
    assert backend.pending_downtime_s == {}


def test_capacity(backend, mk_cfg, profile):
    c = mk_cfg(("4g", "big"), ("3g", "small"))
    expected = 2 * (1e3 / profile.entry("4g.20gb", "big").mean_ms + 1e3 / profile.entry("3g.20gb", "small").mean_ms)
    assert backend.capacity_rps(c) == pytest.approx(expected)
    backend.apply(c)
    assert backend.capacity_rps() == pytest.approx(expected)
    assert backend.steady_state(0.5 * expected).rho == pytest.approx(0.5)


def test_errors(service, profile, mk_profile, mk_cfg):
    with pytest.raises(ConfigError, match="mode"):
        ReplayBackend(service, profile, "a100-40gb", mode="fast")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="GPU"):
        ReplayBackend(service, profile, "h100-80gb")
    with pytest.raises(ConfigError, match="n_gpus"):
        ReplayBackend(service, profile, "a100-40gb", n_gpus=0)
    b = ReplayBackend(service, mk_profile(skip=(("2g.10gb", "big"),)), "a100-40gb")
    with pytest.raises(BackendError, match="apply"):
        b.run(10.0, 5.0)
    good = mk_cfg(("7g", "big"))
    b.apply(good)
    with pytest.raises(ConfigError, match=r"'big' on slice '2g.10gb'"):
        b.apply(mk_cfg(("4g", "big"), ("2g", "big"), ("1g", "small")))
    assert b.configuration == good  # a rejected apply changes nothing
    with pytest.raises(ConfigError, match="rate_rps"):
        b.run(10.0, 0.0)
    with pytest.raises(ConfigError, match="seconds"):
        b.run(0.0, 5.0)
    b.close()
    with pytest.raises(BackendError, match="closed"):
        b.run(10.0, 5.0)


def test_reseed_restarts_the_run_stream_and_settle_clears_downtime():
    from clover_rl.mig.catalog import get_gpu
    from clover_rl.mig.config import parse_configuration
    from clover_rl.services import load_service
    from clover_rl.serving.profile import load_default_profile
    from clover_rl.serving.replay import ReplayBackend

    svc = load_service("albert")
    be = ReplayBackend(svc, load_default_profile("albert", "a100-40gb"), "a100-40gb", 1, seed=1, mode="exact")
    gpu = get_gpu("a100-40gb")
    be.apply(parse_configuration("7g:base", gpu, svc.variant_names))
    be.reseed(7)
    a = be.run(60, 2.0)
    be.run(60, 2.0)
    be.reseed(7)
    assert be.run(60, 2.0) == a
    be.apply(parse_configuration("4g:large,3g:base", gpu, svc.variant_names))
    assert be.pending_downtime_s
    be.settle()
    assert be.pending_downtime_s == {}
