"""The live profiler measures the whole request path (overhead outside the worker, observed
reconfiguration downtime), the file keeps it, and the replay backend pays it: profile -> file
-> replay, on noop workers (no torch import: each worker starts in about a second)."""
from __future__ import annotations

import pytest

from clover_rl.mig.config import Configuration
from clover_rl.serving.live.profiler import measure_profile, payload_bytes
from clover_rl.serving.profile import QUANTILE_LEVELS, load_profile
from clover_rl.serving.replay import ReplayBackend
from tests.support.live import GPU, noop_service

pytestmark = [pytest.mark.live, pytest.mark.timeout(120)]


def test_profile_file_replay_carry_overhead_and_downtime(tmp_path):
    svc = noop_service(delay_ms=20.0)
    prof = measure_profile(svc, GPU, variants=["b1", "b3"], slices=["7g"], rates=[20.0], duration_s=1.5,
                           idle_s=0.2, image_size=32, overhead_image_sizes=[96], throttle=False)
    path = prof.save(tmp_path / "noop.yaml")
    again = load_profile(path)
    # overhead: one point per payload size, measured per request on the serving plane
    assert again.payload_bytes == payload_bytes(svc, 32) < payload_bytes(svc, 96)
    pts = again.overhead.points
    assert [p.payload_bytes for p in pts] == [payload_bytes(svc, 32), payload_bytes(svc, 96)]
    assert not again.overhead.estimated and pts[0].samples >= 30
    fe, di = again.overhead_s()
    assert 0 < fe < 1.0 and 0 < di < 1.0  # seconds per request (ms on a quiet host; more on a loaded one)
    # downtime: b1 -> b3 on the same 7g slice was observed (make-before-break: ~no downtime),
    # and a killed worker came back
    d = again.downtime
    assert d.make_before_break and not d.estimated
    assert d.switch_s < 0.5 and 0.1 < d.worker_restart_s < 60
    assert again.model_load_s["b1"] > 0 and again.model_load_s["b3"] > 0
    # replay from the file: server-side latency = front end + dispatch + service at low load
    svc_ms = again.entry("7g.40gb", "b1").service_ms[QUANTILE_LEVELS.index(0.5)]
    with ReplayBackend(svc, path, GPU, mode="exact") as rb:
        rb.apply(Configuration.of(GPU, [("7g", "b1")]))
        m = rb.run(60.0, 1.0)
    assert m.p50_ms == pytest.approx(svc_ms + 1e3 * (fe + di), rel=0.05)


def test_profiling_whole_configurations_attributes_each_slice(tmp_path):
    svc = noop_service(delay_ms=5.0)
    cfg = Configuration.of(GPU, [("4g", "b1"), ("3g", "b3")])
    prof = measure_profile(svc, GPU, configurations=[cfg], rates=[30.0], duration_s=1.5, idle_s=0.2,
                           image_size=32, measure_restart=False)
    assert set(prof.entries) == {("4g.20gb", "b1"), ("3g.20gb", "b3")}
    assert all(e.samples > 0 for e in prof.entries.values())
    assert "configurations served whole: 4g:b1,3g:b3" in prof.method
    assert prof.downtime.estimated  # restart not measured and no switch seen: labelled estimated
