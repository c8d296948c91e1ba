"""The live profiler: measure a :class:`~clover_rl.serving.profile.Profile` on real workers.

For each (slice profile, variant) the profiler serves that one slice alone on GPU 0, offers each
load level for ``duration_s``, and pools the worker-measured service times of every answered
request into the stored quantiles (the profile format has no load dimension: the rates only
vary how busy the slice is while measured). Idle power is the meter's rate over an idle window;
a slice's active power is the energy above idle divided by its busy time. The file's latency
figures are measured (``estimated: false``); ``method`` says how, and whether the energy came
from an estimate (CPU host without RAPL).
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

import numpy as np

from clover_rl.errors import BackendError, ConfigError
from clover_rl.mig.catalog import GpuModel
from clover_rl.mig.config import Configuration
from clover_rl.services import ServiceSpec
from clover_rl.serving.live.backend import LiveBackend
from clover_rl.serving.profile import QUANTILE_LEVELS, Profile, ProfileEntry

log = logging.getLogger("clover_rl.serving.live")


def measure_profile(
    service: ServiceSpec,
    gpu: GpuModel,
    *,
    device: str = "cpu",
    variants: Sequence[str] | None = None,
    slices: Sequence[str] | None = None,
    rates: Sequence[float] = (1.0, 2.0, 4.0),
    duration_s: float = 10.0,
    idle_s: float = 2.0,
    cpu_scale: float = 1.0,
    cpu_threads: int = 1,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
    **backend_options: object,
) -> Profile:
    """Sweep variants x slice profiles x loads on ``device`` and return the measured profile."""
    variants = list(variants or service.variant_names)
    for v in variants:
        service.variant(v)
    profiles = [gpu.profile(s).name for s in (slices or [p.short for p in gpu.base_profiles()])]
    if not rates or any(r <= 0 for r in rates):
        raise ConfigError(f"rates must be positive, got {list(rates)}")
    if duration_s <= 0 or idle_s < 0:
        raise ConfigError(f"duration must be positive and idle window non-negative, got {duration_s}, {idle_s}")
    say = progress or (lambda msg: log.info("%s", msg))
    entries: dict[tuple[str, str], ProfileEntry] = {}
    model_load: dict[str, float] = {}
    partition_s: list[float] = []
    idle_w: float | None = None
    backend = LiveBackend(service, gpu, 1, device, seed=seed, cpu_scale=cpu_scale, cpu_threads=cpu_threads,
                          **backend_options)  # type: ignore[arg-type]
    try:
        meter = backend.meter
        for prof in profiles:
            for variant in variants:
                cfg = Configuration.of(gpu, [(prof, variant)])
                rep = backend.apply(cfg)
                if not rep.ok:
                    raise BackendError(f"profiling {variant} on {prof} failed: {rep.message}")
                if device == "cuda":
                    partition_s.append(backend.pool.last_placement_s)
                load_s = max((s.load_s for s in backend.pool.snapshot().slots), default=0.0)
                model_load[variant] = max(model_load.get(variant, 0.0), round(load_s, 3))
                if idle_w is None:
                    e0, t0 = meter.read_joules(), time.perf_counter()
                    time.sleep(idle_s)
                    dt = time.perf_counter() - t0
                    idle_w = (meter.read_joules() - e0) / dt if dt > 0 else 0.0
                samples: list[float] = []
                excess_j = busy_s = 0.0
                for rate in rates:
                    m = backend.run(duration_s, rate)
                    ok = [r for r in backend.last_records if r.status == 200]
                    samples += [r.service_s * 1000.0 for r in ok]
                    busy_s += sum(r.service_s for r in ok)
                    excess_j += max(0.0, m.energy_j - idle_w * m.duration_s)
                    say(f"{prof} {variant} @ {rate:g} req/s: {m.served}/{m.arrived} answered, "
                        f"p95 {m.p95_ms:.1f} ms, {m.energy_j:.1f} J")
                if not samples:
                    raise BackendError(f"no request answered for {variant} on {prof}; raise --duration or --rates")
                q = np.maximum(np.quantile(np.asarray(samples), QUANTILE_LEVELS), 1e-3)
                q = np.maximum.accumulate(q)
                entries[(prof, variant)] = ProfileEntry(prof, variant, tuple(float(x) for x in q),
                                                        excess_j / busy_s if busy_s > 0 else 0.0, len(samples))
    finally:
        backend.close()
    energy = ("ESTIMATED by the CPU power model (idle + per-busy-core watts)" if meter.estimated
              else f"measured ({meter.source})")
    emul = (f"; CPU emulation: duty-cycle throttle to c/7 of the host, input scale {cpu_scale:g}, "
            f"{cpu_threads} thread(s) per worker" if device == "cpu" else "")
    method = (f"live profiler on {device}: rates {', '.join(f'{r:g}' for r in rates)} req/s x {duration_s:g} s "
              f"per (slice, variant); service time measured in the worker; energy {energy}{emul}")
    return Profile(
        gpu=gpu.name,
        service=service.name,
        idle_power_w=float(idle_w or 0.0),
        partition_change_s=round(float(np.mean(partition_s)), 3) if partition_s else 0.0,
        model_load_s=model_load,
        entries=entries,
        estimated=False,
        method=method,
    )
