"""Emulated models for deployments on machines without GPUs or without the time to run real ones.

``--models emulated`` replaces every variant by a ``noop`` model that sleeps a service time
taken from the scenario's profile, and the CPU worker's duty-cycle throttle stretches it for
smaller slices (``t x 7/c``). GPU profiles scale sublinearly with slice size (a small model
does not fill a 7g slice) while the throttle is linear, so no single time per variant matches
every slice; the time chosen is the profile's on the smallest slice divided by its share
(exact on 1g, faster than the profile on larger slices). Emulated service is therefore never
slower than the profile says: a configuration the replay model finds within the SLA is within
it here too, and the SLA guard reacts to the policy, not to the emulation.

Energy comes from the same profile (:class:`ProfileEnergyModel`), charged as the replay backend
charges it: idle power of every GPU for the wall time, plus each served request's profiled
active energy on the slice that served it. Both figures are estimates and labelled so.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from clover_rl.errors import ConfigError
from clover_rl.mig.catalog import GpuModel
from clover_rl.services import ServiceSpec
from clover_rl.serving.profile import Profile


def fitted_delay_ms(profile: Profile, gpu: GpuModel, variant: str) -> float:
    """Largest ``d`` with ``d x C/c`` <= the profile's mean service time on every slice size."""
    total = gpu.whole.compute_slices
    bounds = [e.mean_ms * p.compute_slices / total for p in gpu.base_profiles()
              if (e := profile.entries.get((p.name, variant))) is not None]
    if not bounds:
        raise ConfigError(f"profile has no entry for variant {variant!r}: cannot emulate it")
    return float(max(min(bounds), 1e-3))


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

    def request_j(self, slot_id: str, variant: str) -> float:
        """Profiled active energy of one request on the slot's slice (0 if unknown)."""
        prof = slot_id.split("/", 1)[-1].split("@", 1)[0]
        e = self.profile.entries.get((prof, variant))
        return float(e.energy_per_request_j) if e is not None else 0.0

    def energy_j(self, records: Sequence[Any], wall_s: float) -> float:
        e = self.profile.idle_power_w * self.n_gpus * max(wall_s, 0.0)
        for r in records:
            if r.status == 200 and r.slot_id and r.variant:
                e += self.request_j(r.slot_id, r.variant)
        return float(e)
