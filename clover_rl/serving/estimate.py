"""Estimated performance/power profiles from public figures, for machines we cannot measure.

Method (also written next to the shipped data in ``profiles/README.md``):

1. Whole-GPU service time of one request: ``t7(v) = overhead + t_c(largest) * (G_v/G_max)**gamma``
   with ``G_v`` the variant's GFLOPs per request (per-item GFLOPs x items per request).
   ``t_c(largest)`` and the fixed ``overhead`` (pre/post-processing, host<->device copies) are
   calibrated per service so that BASE (largest variant on whole A100s) reproduces the
   Clover artifact's logged p95 and energy per request at the paper's loads.
2. Slices are faster with more SMs, sub-linearly: the compute part scales by
   ``(SM_slice/SM_full)**-beta(v)`` with ``beta = 0.5 + 0.4*occ(v)``, ``occ = sqrt(G_v/G_max)``:
   small models cannot fill a whole GPU, so they gain little from a big slice.
3. Active power above idle: ``P(v, s) = P_full * (SM_slice/SM_full)**((1+beta)/2) * (0.35+0.65*occ)``
   with ``P_full`` calibrated as in 1 (always far below the 400 W TDP: eager PyTorch inference at
   these batch sizes is memory bound). Energy per request therefore falls on smaller slices
   (better utilisation), and idle power (measured ~38 W per A100 in the artifact's logs) is
   paid whatever the load, so energy per request falls as load rises.
4. Service-time distribution: lognormal around the mean with coefficient of variation ``cv``,
   stored as quantiles (0.01% and 99.99% stand in for min and max).
5. Reconfiguration: MIG re-partition ``partition_change_s``; model load + warm-up
   ``2 s + 0.08 s per million parameters``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

from clover_rl.mig.catalog import GpuModel
from clover_rl.services import ServiceSpec
from clover_rl.serving.profile import QUANTILE_LEVELS, Profile, ProfileEntry


@dataclass(frozen=True)
class Calibration:
    """Per-service constants fitted to the Clover artifact's BASE measurements on A100-40GB."""

    largest_compute_s: float  # compute part of the largest variant on a whole GPU
    overhead_s: float
    full_power_w: float  # active power of the largest variant on a whole GPU
    gamma: float  # time ~ FLOPs**gamma
    cv: float
    reference: str


CALIBRATIONS: dict[str, Calibration] = {
    # BASE = b7 on 2 whole GPUs: p95 510 ms / 117 J at 1 req/s, 976 ms / 71 J at 2.5 req/s.
    "efficientnet": Calibration(0.38, 0.020, 100.0, 0.75, 0.08,
                                "Clover logs: B7 p95 510 ms, 117 J/req @1 rps; 71 J/req @2.5 rps"),
    # BASE = yolov5x6: p95 429 ms / 121 J at 1 req/s, 601 ms / 70 J at 2.5 req/s.
    "yolo": Calibration(0.35, 0.030, 100.0, 0.85, 0.08,
                        "Clover logs: x6 p95 429 ms, 121 J/req @1 rps; 70 J/req @2.5 rps"),
    # BASE = xxlarge: p95 165 ms / 53 J at 2.5 req/s, 176 ms / 35 J at 6.25 req/s.
    "albert": Calibration(0.112, 0.008, 190.0, 0.90, 0.15,
                          "Clover logs: xxlarge p95 165 ms, 53 J/req @2.5 rps; 35 J/req @6.25 rps"),
}
# Used for services without a calibration (a user's own): a mid-sized vision model.
GENERIC = Calibration(0.20, 0.015, 120.0, 0.8, 0.1, "generic (uncalibrated)")
IDLE_POWER_W = {"a100-40gb": 38.0}  # artifact logs; other GPUs fall back to GpuModel.idle_w
PARTITION_CHANGE_S = 12.0


def _lognormal_quantiles(mean: float, cv: float) -> tuple[float, ...]:
    sigma = math.sqrt(math.log(1 + cv * cv))
    mu = math.log(mean) - sigma * sigma / 2
    nd = NormalDist()
    out = []
    for q in QUANTILE_LEVELS:
        q = min(max(q, 1e-4), 1 - 1e-4)
        out.append(math.exp(mu + sigma * nd.inv_cdf(q)))
    return tuple(out)


def estimate_profile(service: ServiceSpec, gpu: GpuModel, calibration: Calibration | None = None) -> Profile:
    cal = calibration or CALIBRATIONS.get(service.name, GENERIC)
    items = service.request.batch
    g_max = service.largest.gflops * items
    # Faster GPUs (H100/H200) get the compute part scaled by their SM count vs A100.
    gpu_speed = gpu.sm_count / 108.0
    full_sms = gpu.whole.sm_count
    entries: dict[tuple[str, str], ProfileEntry] = {}
    for v in service.variants:
        g = v.gflops * items
        occ = math.sqrt(g / g_max)
        beta = 0.5 + 0.4 * occ
        compute_full = cal.largest_compute_s * (g / g_max) ** cal.gamma / gpu_speed
        for prof in gpu.base_profiles():
            r = prof.sm_count / full_sms
            compute = compute_full * r ** (-beta)
            mean_s = cal.overhead_s + compute
            power = cal.full_power_w * r ** ((1 + beta) / 2) * (0.35 + 0.65 * occ)
            q = _lognormal_quantiles(mean_s * 1000.0, cal.cv)
            entries[(prof.name, v.name)] = ProfileEntry(prof.name, v.name, q, power, 0)
    method = (
        "estimated from public figures (variant GFLOPs, slice SM counts, A100 idle power) and "
        f"calibrated to the Clover artifact's BASE logs ({cal.reference}); see "
        "clover_rl/serving/estimate.py"
    )
    return Profile(
        gpu=gpu.name,
        service=service.name,
        idle_power_w=IDLE_POWER_W.get(gpu.name, gpu.idle_w),
        partition_change_s=PARTITION_CHANGE_S,
        model_load_s={v.name: round(2.0 + 0.08 * v.params_m, 2) for v in service.variants},
        entries=entries,
        estimated=True,
        method=method,
    )
