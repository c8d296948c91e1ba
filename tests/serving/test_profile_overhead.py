"""Whole-path figures of a profile (overhead outside the worker, reconfiguration downtime):
file format, backward compatibility, and where the replay backend pays them."""
from __future__ import annotations

import dataclasses

import pytest
import yaml

from clover_rl.errors import ConfigError
from clover_rl.serving.profile import Downtime, Overhead, OverheadPoint, Spread, load_profile
from clover_rl.serving.replay import ReplayBackend


def whole_path(profile, frontend_ms=3.0, dispatch_ms=2.0, mbb=True, switch_s=0.0):
    pts = (OverheadPoint(1000, Spread(frontend_ms, frontend_ms, 2 * frontend_ms),
                         Spread(dispatch_ms, dispatch_ms, 2 * dispatch_ms), Spread(1.0, 1.0, 2.0), 50),
           OverheadPoint(100_000, Spread(3 * frontend_ms, 3 * frontend_ms, 6 * frontend_ms),
                         Spread(dispatch_ms, dispatch_ms, 2 * dispatch_ms), Spread(1.0, 1.0, 2.0), 50))
    return dataclasses.replace(profile, payload_bytes=1000, overhead=Overhead(pts),
                               downtime=Downtime(mbb, switch_s, 7.5), estimated=False)


def test_roundtrip_keeps_overhead_downtime_and_labels(tmp_path, profile):
    p = whole_path(profile)
    again = load_profile(p.save(tmp_path / "p.yaml"))
    assert again.payload_bytes == 1000
    assert again.overhead == p.overhead and not again.overhead.estimated
    assert again.downtime == p.downtime
    d = yaml.safe_load((tmp_path / "p.yaml").read_text())
    assert d["overhead"]["source"] == "measured" and d["downtime"]["source"] == "measured"
    assert d["overhead"]["points"][0]["frontend_ms"] == {"mean": 3.0, "p50": 3.0, "p95": 6.0}


def test_old_profiles_load_without_whole_path_figures(tmp_path, profile):
    path = profile.save(tmp_path / "old.yaml")
    d = yaml.safe_load(path.read_text())
    assert "overhead" not in d and "downtime" not in d and "payload_bytes" not in d
    old = load_profile(path)
    assert old.overhead is None and old.downtime is None and old.overhead_s() == (0.0, 0.0)


def test_overhead_interpolates_in_log_payload_and_clamps(profile):
    o = whole_path(profile).overhead
    assert o.at(1000) == pytest.approx((0.003, 0.002))
    assert o.at(10_000) == pytest.approx((0.006, 0.002))  # halfway in log10 between 1e3 and 1e5
    assert o.at(10) == pytest.approx((0.003, 0.002)) and o.at(10**7) == pytest.approx((0.009, 0.002))


@pytest.mark.parametrize("mutate,match", [
    (lambda d: d.update(overhead={"points": []}), "field overhead.points: List should have at least 1 item"),
    (lambda d: d["overhead"]["points"][0]["frontend_ms"].update(p95=-1), r"field overhead\.points\[0\]\.frontend_ms\.p95: Input should be greater than or equal to 0 \(got -1\)"),
    (lambda d: d["overhead"].update(source="guessed"), "field overhead.source: Input should be 'measured' or 'estimated'"),
    (lambda d: d["downtime"].update(make_before_break="yes"), "field downtime.make_before_break: Input should be a valid boolean"),
    (lambda d: d["downtime"].update(switch_s="soon"), "field downtime.switch_s: Input should be a valid number"),
])
def test_bad_whole_path_fields_are_one_line_errors(tmp_path, profile, mutate, match):
    d = whole_path(profile).to_dict()
    mutate(d)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(d))
    with pytest.raises(ConfigError, match=match) as e:
        load_profile(path)
    assert "\n" not in str(e.value) and str(path) in str(e.value)


def test_replay_pays_frontend_in_latency_and_dispatch_in_service(service, profile, mk_cfg):
    cfg = mk_cfg(("7g", "small"))
    plain = ReplayBackend(service, profile, "a100-40gb", mode="exact")
    full = ReplayBackend(service, whole_path(profile, frontend_ms=3.0, dispatch_ms=2.0), "a100-40gb", mode="exact")
    plain.apply(cfg)
    full.apply(cfg)
    low_a, low_b = plain.run(200.0, 1.0), full.run(200.0, 1.0)  # same seed: same arrivals and draws
    # at low load nobody queues: latency grows by exactly frontend + dispatch
    assert low_b.p50_ms - low_a.p50_ms == pytest.approx(5.0, abs=0.05)
    # dispatch holds the slice: capacity falls by 1/(mean + 2 ms); the front end does not
    mean_s = profile.entry("7g.40gb", "small").mean_ms / 1e3
    assert full.capacity_rps() == pytest.approx(1 / (mean_s + 0.002))
    assert plain.capacity_rps() == pytest.approx(1 / mean_s)


def test_replay_downtime_follows_the_observed_reconfiguration(service, profile, mk_cfg):
    a, b = mk_cfg(("4g", "big"), ("3g", "small")), mk_cfg(("4g", "big"), ("3g", "big"))
    mbb = ReplayBackend(service, whole_path(profile, mbb=True, switch_s=0.25), "a100-40gb")
    mbb.apply(a)
    assert mbb.apply(b).downtime_s["gpu0/3g.20gb@4"] == 0.25  # old worker served meanwhile
    brk = ReplayBackend(service, whole_path(profile, mbb=False), "a100-40gb")
    brk.apply(a)
    assert brk.apply(b).downtime_s["gpu0/3g.20gb@4"] == profile.model_load_s["big"]  # slice down while loading
