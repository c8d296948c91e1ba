"""Emulated models: never slower than the profile on any slice, exact on the smallest; energy
charged per request from the profile plus idle power, as the replay backend does."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from clover_rl.controller.emulate import ProfileEnergyModel, emulated_service, fitted_delay_ms
from clover_rl.mig.catalog import get_gpu
from clover_rl.services import load_service
from clover_rl.serving.profile import load_default_profile

GPU = get_gpu("a100-40gb")


@pytest.mark.parametrize("service", ["efficientnet", "yolo", "albert"])
def test_emulated_service_times_bound_by_the_profile(service):
    prof = load_default_profile(service, GPU.name)
    svc = emulated_service(load_service(service), prof, GPU)
    for v in svc.variants:
        assert v.source.kind == "noop"
        d = v.source.kwargs["delay_ms"]
        assert d == pytest.approx(fitted_delay_ms(prof, GPU, v.name), abs=1e-3)
        times = {p.name: d * GPU.whole.compute_slices / p.compute_slices for p in GPU.base_profiles()}
        assert all(times[p] <= prof.entry(p, v.name).mean_ms + 0.01 for p in times)  # delay rounded to 1 us
        assert min(prof.entry(p, v.name).mean_ms - t for p, t in times.items()) == pytest.approx(0, abs=1e-2)


def test_profile_energy():
    prof = load_default_profile("efficientnet", GPU.name)
    em = ProfileEnergyModel(prof, n_gpus=2)
    rec = SimpleNamespace(status=200, slot_id="gpu1/3g.20gb@4", variant="b5", service_s=9.9)
    failed = SimpleNamespace(status=503, slot_id=None, variant=None, service_s=0.0)
    want = 2 * prof.idle_power_w * 10.0 + prof.entry("3g.20gb", "b5").energy_per_request_j
    assert em.energy_j([rec, failed], 10.0) == pytest.approx(want)
