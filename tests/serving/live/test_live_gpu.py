"""CUDA smoke test of the live plane (skipped without an NVIDIA GPU): a whole-GPU worker
serves efficientnet-b1 and energy comes from NVML, not the CPU estimate."""
from __future__ import annotations

import pytest

from clover_rl.mig.config import parse_configuration
from clover_rl.services import load_service
from clover_rl.serving.live.backend import LiveBackend
from clover_rl.serving.live.placement import WholeGpuPlacement
from tests.support.live import GPU

pytestmark = [pytest.mark.live, pytest.mark.gpu, pytest.mark.timeout(300)]


def test_whole_gpu_worker_with_nvml_energy() -> None:
    svc = load_service("efficientnet")
    with LiveBackend(svc, GPU, device="cuda", placement=WholeGpuPlacement(GPU)) as b:
        rep = b.apply(parse_configuration("7g:b1", GPU, svc.variant_names))
        assert rep.ok, rep.message
        m = b.run(3.0, 10.0)
        assert m.served == m.arrived > 0 and not m.estimated and m.energy_j > 0
        assert b.meter.source in ("nvml", "nvml-power")
        assert next(s.device for s in b.pool.snapshot().slots) == "cuda:0"
