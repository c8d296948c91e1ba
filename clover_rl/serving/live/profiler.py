"""The live profiler: measure a :class:`~clover_rl.serving.profile.Profile` on real workers.

Three kinds of figure, all measured on the plane that will serve (``estimated: false``):

* **Service time** per (slice profile, variant): by default each slice is served alone on GPU 0;
  with ``configurations`` the given configurations are served whole (every slice at once), so
  slices that share a host (CPU emulation) are measured with the contention they will see live.
  Each load level is offered for ``duration_s`` and the worker-measured service times of every
  answered request are pooled into the stored quantiles (the format has no load dimension).
* **Overhead outside the worker** (:class:`~clover_rl.serving.profile.Overhead`), per request of
  the same runs: front end = server-side latency (request accepted to response sent) minus the
  pool's enqueue-to-answer time; dispatch = the pool's time minus queueing and service time
  (hand-off and transfer to the worker and back); client = client latency minus server latency
  (difference of the two distributions' mean/p50/p95). Extra ``overhead_image_sizes`` add
  points at other payload sizes (image services).
* **Reconfiguration** (:class:`~clover_rl.serving.profile.Downtime`): model load + warm-up per
  variant (spawn to ready), the downtime the pool reported for slices that switched variant
  during the sweep, and a worker restart (one worker is killed; its respawn-to-ready time once
  the pool has noticed).

Idle power is the meter's rate over an idle window; active power is the energy above idle
divided by busy time (split between slices by busy time when served together).
"""
from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable, Sequence

import numpy as np

from clover_rl.errors import BackendError, ConfigError
from clover_rl.mig.catalog import GpuModel
from clover_rl.mig.config import Configuration
from clover_rl.services import ServiceSpec
from clover_rl.serving.live.backend import LiveBackend
from clover_rl.serving.live.loadgen import build_bodies
from clover_rl.serving.profile import (
    QUANTILE_LEVELS,
    Downtime,
    Overhead,
    OverheadPoint,
    Profile,
    ProfileEntry,
    Spread,
)

log = logging.getLogger("clover_rl.serving.live")


def payload_bytes(service: ServiceSpec, image_size: int | None = None) -> int:
    """Size of one request body as the load generator sends it (binary tensor extension)."""
    return len(build_bodies(service, 0, n=1, image_size=image_size)[0][0])


def _beyond_capacity(rate: float, ok: list, n_slots: int) -> str:
    """A note when ``rate`` is at or beyond what ``n_slots`` slices serve at the measured mean
    service time: figures there describe a growing queue, not the slice."""
    if not ok or n_slots < 1:
        return "" if ok else "; NOTHING ANSWERED (beyond capacity or still warming up)"
    cap = n_slots / (sum(r.service_s for r in ok) / len(ok))
    if rate < 0.9 * cap:
        return ""
    return (f"; BEYOND CAPACITY: ~{cap:.3g} req/s at the measured service time, so this level "
            f"measures the queue (lower --rates)")


class _Samples:
    """Per-request overhead samples (ms) of one payload size."""

    def __init__(self) -> None:
        self.frontend: list[float] = []
        self.dispatch: list[float] = []
        self.client: list[float] = []
        self.server: list[float] = []

    def add(self, backend: LiveBackend) -> None:
        ok = [r for r in backend.last_records if r.status == 200]
        self.dispatch += [max(0.0, (r.latency_s - r.queue_s - r.service_s) * 1e3) for r in ok]
        srv = [r for r in backend.last_server if r.status == 200]
        self.frontend += [max(0.0, r.frontend_s * 1e3) for r in srv]
        self.server += [r.latency_s * 1e3 for r in srv]
        if backend.last_load is not None:
            self.client += backend.last_load.latencies_ms.tolist()

    def point(self, size: int) -> OverheadPoint:
        c, s = Spread.of(self.client), Spread.of(self.server)
        client = Spread(max(0.0, c.mean_ms - s.mean_ms), max(0.0, c.p50_ms - s.p50_ms), max(0.0, c.p95_ms - s.p95_ms))
        return OverheadPoint(size, Spread.of(self.frontend), Spread.of(self.dispatch), client, len(self.frontend))


def _restart_s(backend: LiveBackend, service: ServiceSpec, image_size: int | None, limit_s: float = 600.0) -> float | None:
    """Kill one worker, send requests until the pool notices (it does on the next dispatch to
    that worker) and return the restarted worker's spawn-to-ready time (s); None on failure."""
    from clover_rl.serving.live.models import synthetic_inputs

    pool = backend.pool
    slots = [s for s in pool.snapshot().slots if s.state == "ready" and s.pid]
    if not slots:
        return None
    victim = slots[0]
    os.kill(victim.pid, signal.SIGKILL)  # type: ignore[arg-type]
    inputs = synthetic_inputs(service, np.random.default_rng(0), image_size)
    deadline = time.perf_counter() + limit_s
    while time.perf_counter() < deadline:
        futures = [pool.submit(inputs) for _ in slots]  # one per worker: the dead one gets one too
        for f in futures:
            try:
                f.result(limit_s)
            except Exception as e:  # a failed restart is a figure we cannot give
                log.warning("worker restart measurement failed: %s", e)
                return None
        now = {s.slot_id: s for s in pool.snapshot().slots}.get(victim.slot_id)
        if now is not None and now.restarts > victim.restarts and now.state == "ready":
            return now.load_s
    return None


def measure_profile(
    service: ServiceSpec,
    gpu: GpuModel,
    *,
    device: str = "cpu",
    variants: Sequence[str] | None = None,
    slices: Sequence[str] | None = None,
    configurations: Sequence[Configuration] | None = None,
    rates: Sequence[float] = (1.0, 2.0, 4.0),
    duration_s: float = 10.0,
    idle_s: float = 2.0,
    cpu_scale: float = 1.0,
    cpu_threads: int = 1,
    overhead_image_sizes: Sequence[int] = (),
    measure_restart: bool = True,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
    **backend_options: object,
) -> Profile:
    """Sweep (slices x variants, or ``configurations``) x loads on ``device``; return the profile.

    Raises ConfigError for bad arguments, BackendError when a configuration cannot be served
    or a (slice, variant) got no answer.
    """
    if configurations:
        plan = list(configurations)
        for c in plan:
            if c.gpu != gpu.name:
                raise ConfigError(f"configuration {c.label()} is for {c.gpu}, profiling {gpu.name}")
            for v in c.variants:
                service.variant(v)
    else:
        names = list(variants or service.variant_names)
        for v in names:
            service.variant(v)
        profiles = [gpu.profile(s).name for s in (slices or [p.short for p in gpu.base_profiles()])]
        plan = [Configuration.of(gpu, [(p, v)]) for p in profiles for v in names]
    if not rates or any(r <= 0 for r in rates):
        raise ConfigError(f"rates must be positive, got {list(rates)}")
    if duration_s <= 0 or idle_s < 0:
        raise ConfigError(f"duration must be positive and idle window non-negative, got {duration_s}, {idle_s}")
    say = progress or (lambda msg: log.info("%s", msg))
    image_size = backend_options.get("image_size")
    size = payload_bytes(service, image_size)  # type: ignore[arg-type]
    samples: dict[tuple[str, str], list[float]] = {}
    busy: dict[tuple[str, str], float] = {}
    excess: dict[tuple[str, str], float] = {}
    overhead = {size: _Samples()}
    model_load: dict[str, float] = {}
    partition_s: list[float] = []
    switch_s: list[float] = []
    restart: float | None = None
    idle_w: float | None = None
    backend = LiveBackend(service, gpu, 1, device, seed=seed, cpu_scale=cpu_scale, cpu_threads=cpu_threads,
                          **backend_options)  # type: ignore[arg-type]
    mbb = backend.pool.placement.make_before_break
    steps, done, t_start = len(plan) * len(rates), 0, time.perf_counter()
    try:
        meter = backend.meter
        for cfg in plan:
            before = {s.slot_id for s in backend.pool.snapshot().slots}
            rep = backend.apply(cfg)
            if not rep.ok:
                raise BackendError(f"profiling {cfg.label()} failed: {rep.message}")
            switch_s += [d for sid, d in rep.downtime_s.items() if sid in before]
            if device == "cuda":
                partition_s.append(backend.pool.last_placement_s)
            slots = backend.pool.snapshot().slots
            for s in slots:
                model_load[s.variant] = max(model_load.get(s.variant, 0.0), round(s.load_s, 3))
            key_of = {s.slot_id: (s.slot_id.split("/")[1].split("@")[0], s.variant) for s in slots}
            if idle_w is None:
                e0, t0 = meter.read_joules(), time.perf_counter()
                time.sleep(idle_s)
                dt = time.perf_counter() - t0
                idle_w = (meter.read_joules() - e0) / dt if dt > 0 else 0.0
            for rate in rates:
                m = backend.run(duration_s, rate)
                ok = [r for r in backend.last_records if r.status == 200 and r.slot_id in key_of]
                run_busy: dict[tuple[str, str], float] = {}
                for r in ok:
                    k = key_of[r.slot_id]  # type: ignore[index]
                    samples.setdefault(k, []).append(r.service_s * 1000.0)
                    run_busy[k] = run_busy.get(k, 0.0) + r.service_s
                total = sum(run_busy.values())
                over = max(0.0, m.energy_j - idle_w * m.duration_s)
                for k, b in run_busy.items():
                    busy[k] = busy.get(k, 0.0) + b
                    excess[k] = excess.get(k, 0.0) + over * b / total
                overhead[size].add(backend)
                done += 1
                eta = (time.perf_counter() - t_start) / done * (steps - done)
                say(f"[{done}/{steps}, ETA {eta:.0f} s] {cfg.label()} @ {rate:g} req/s: {m.served}/{m.arrived} "
                    f"answered, p95 {m.p95_ms:.1f} ms (server-side), {m.energy_j:.1f} J"
                    + _beyond_capacity(rate, ok, len(slots)))
        for extra in overhead_image_sizes:
            backend.image_size = int(extra)
            s = payload_bytes(service, int(extra))
            overhead.setdefault(s, _Samples())
            backend.run(max(1.0, duration_s / 2), min(rates))
            overhead[s].add(backend)
            say(f"overhead at {s} B payload: {len(overhead[s].frontend)} requests")
        backend.image_size = image_size  # type: ignore[assignment]
        if measure_restart:
            restart = _restart_s(backend, service, image_size)  # type: ignore[arg-type]
            if restart is not None:
                say(f"worker restart: killed worker back in service after {restart:.2f} s")
    finally:
        backend.close()
    entries: dict[tuple[str, str], ProfileEntry] = {}
    for cfg in plan:
        for k in cfg.pairs:
            if k in entries:
                continue
            if not samples.get(k):
                raise BackendError(f"no request answered for {k[1]} on {k[0]}; raise --duration or --rates")
            q = np.maximum.accumulate(np.maximum(np.quantile(np.asarray(samples[k]), QUANTILE_LEVELS), 1e-3))
            entries[k] = ProfileEntry(k[0], k[1], tuple(float(x) for x in q),
                                      excess[k] / busy[k] if busy.get(k) else 0.0, len(samples[k]))
    energy = ("ESTIMATED by the CPU power model (idle + per-busy-core watts)" if meter.estimated
              else f"measured ({meter.source})")
    emul = (f"; CPU emulation: duty-cycle throttle to c/7 of the host, input scale {cpu_scale:g}, "
            f"{cpu_threads} thread(s) per worker" if device == "cpu" else "")
    how = ("configurations served whole: " + "; ".join(c.label() for c in plan)) if configurations \
        else "each slice served alone"
    method = (f"live profiler on {device}: rates {', '.join(f'{r:g}' for r in rates)} req/s x {duration_s:g} s, "
              f"{how}; service time measured in the worker, overhead and downtime measured on the serving "
              f"plane; energy {energy}{emul}")
    points = tuple(overhead[s].point(s) for s in sorted(overhead) if overhead[s].frontend)
    mean_load = float(np.mean(list(model_load.values()))) if model_load else 0.0
    return Profile(
        gpu=gpu.name,
        service=service.name,
        idle_power_w=float(idle_w or 0.0),
        partition_change_s=round(float(np.mean(partition_s)), 3) if partition_s else 0.0,
        model_load_s=model_load,
        entries=entries,
        estimated=False,
        method=method,
        payload_bytes=size,
        overhead=Overhead(points) if points else None,
        downtime=Downtime(
            make_before_break=mbb,
            # not observed (one variant per slice): make-before-break has none by construction,
            # otherwise a switch costs the model load (labelled estimated)
            switch_s=max(switch_s) if switch_s else (0.0 if mbb else mean_load),
            worker_restart_s=restart if restart is not None else mean_load,
            estimated=not switch_s or restart is None,
        ),
        energy_estimated=bool(meter.estimated),
    )
