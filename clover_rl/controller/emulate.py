"""Emulated models for deployments on machines without GPUs or without the time to run real ones.

``--models emulated`` replaces every variant by a ``noop`` model that sleeps a service time
fitted to the scenario's profile, and the CPU worker's duty-cycle throttle stretches it for
smaller slices (``t x 7/c``). The per-variant time is the geometric-mean fit of the profile
over all slice sizes, so emulated latencies follow the profile's ordering of variants and
slices without burning CPU. Energy then comes from the same profile
(:class:`ProfileEnergyModel`): idle power of every GPU for the wall time, plus each slice's
active power for the time its worker was busy. Both are estimates and labelled so.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from clover_rl.mig.catalog import GpuModel
from clover_rl.services import ServiceSpec
from clover_rl.serving.profile import Profile


def fitted_delay_ms(profile: Profile, gpu: GpuModel, variant: str) -> float:
    """Delay ``d`` minimising the log error of ``d x C/c`` against the profile over slice sizes."""
    total = gpu.whole.compute_slices
    logs = []
    for p in gpu.base_profiles():
        e = profile.entries.get((p.name, variant))
        if e is None:  # a profile without this (slice, variant): fit on the others
            continue
        logs.append(math.log(max(e.mean_ms, 1e-3) * p.compute_slices / total))
    if not logs:
        raise ValueError(f"profile has no entry for variant {variant}")
    return float(math.exp(sum(logs) / len(logs)))


def emulated_service(service: ServiceSpec, profile: Profile, gpu: GpuModel, time_scale: float = 1.0) -> ServiceSpec:
    """``service`` with every variant's model replaced by a profiled-delay ``noop`` model."""
    d = service.model_dump()
    for v in d["variants"]:
        delay = fitted_delay_ms(profile, gpu, v["name"]) * time_scale
        v["source"] = {"kind": "noop", "name": "noop", "kwargs": {"delay_ms": round(delay, 3)}}
    return ServiceSpec.model_validate(d)


class ProfileEnergyModel:
    """Energy of a window from the profile: idle x GPUs x wall + active power x busy time per slice."""

    estimated = True
    source = "profile"

    def __init__(self, profile: Profile, n_gpus: int) -> None:
        self.profile = profile
        self.n_gpus = n_gpus

    def active_w(self, slot_id: str, variant: str) -> float:
        prof = slot_id.split("/", 1)[-1].split("@", 1)[0]
        try:
            return float(self.profile.entry(prof, variant).active_power_w)
        except Exception:  # noqa: BLE001 - unknown slice: no active power
            return 0.0

    def energy_j(self, records: Sequence[Any], wall_s: float) -> float:
        e = self.profile.idle_power_w * self.n_gpus * max(wall_s, 0.0)
        for r in records:
            if r.slot_id and r.variant:
                e += self.active_w(r.slot_id, r.variant) * r.service_s
        return float(e)
