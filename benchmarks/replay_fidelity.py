"""Replay-vs-live fidelity: does the replay backend predict what the live service does?

One run, every figure measured here, on the live plane this host has (CPU emulation by default):

1. **Profile** (or ``--profile FILE``): :func:`clover_rl.serving.live.profiler.measure_profile`
   serves the configurations below and stores worker service-time quantiles, the per-request
   overhead outside the worker (front end, dispatch; by payload size) and the observed
   reconfiguration behaviour. With ``--together`` (default) each configuration is served whole
   while profiled, so slices sharing the host's cores are measured with that contention.
2. **Cells**: configurations x loads (fractions of the configuration's capacity from the profile).
   ``A>B`` is a configuration switched mid-run: ``apply(B)`` is called half way through the
   live run while the load keeps flowing; the replay runs A, applies B, runs B -- with the
   live plane's make-before-break hand-over (A keeps serving until B's model is loaded: the
   profile's measured ``model_load_s``) when the profile says the plane makes before it breaks.
3. Each cell runs ``--repeats`` times live (:class:`~clover_rl.serving.live.backend.LiveBackend`)
   and in replay (:class:`~clover_rl.serving.replay.ReplayBackend`, exact mode, one seed per
   repeat); the table prints the means, the relative error ``(replay - live) / live`` and the
   live spread (sample standard deviation across repeats / mean).

**Latency compared**: server-side on both sides -- request accepted by the front end to
response sent (live: the front end's own timestamps; replay: queueing + dispatch + service +
front-end overhead from the profile). The client-side p95 (load generator, its own process)
is printed beside it, not compared. **Energy** is compared only against a measured meter
(RAPL on a CPU host, NVML on GPUs); the CPU power model is not a measurement.

Targets (issue 13): mean |relative error| of p95 <= 15%, of throughput <= 5%, and every
cell's p95 error within 2x the live spread. Prints figures; asserts nothing.
Run: ``python benchmarks/replay_fidelity.py`` (full: ~55 min); quick check:
``python benchmarks/replay_fidelity.py --duration 20 --repeats 1 --loads 0.3,0.8``.
"""
from __future__ import annotations

import argparse
import logging
import os
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from clover_rl.mig.catalog import GpuModel, get_gpu
from clover_rl.mig.config import Configuration, parse_configuration
from clover_rl.services import ServiceSpec, load_service
from clover_rl.serving.live.backend import LiveBackend
from clover_rl.serving.live.models import scaled
from clover_rl.serving.live.profiler import measure_profile
from clover_rl.serving.metrics import IntervalMetrics, merge_metrics
from clover_rl.serving.profile import Profile, load_profile
from clover_rl.serving.replay import ReplayBackend

TARGET_P95, TARGET_THR, SPREAD_FACTOR = 0.15, 0.05, 2.0


@dataclass
class Cell:
    label: str
    configs: tuple[Configuration, ...]  # one, or (before, after) for a mid-run switch
    load: float
    rate: float
    replay: list[IntervalMetrics] = field(default_factory=list)
    live: list[IntervalMetrics] = field(default_factory=list)
    client_p95: list[float] = field(default_factory=list)


def floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def rel(pred: float, live: float) -> float:
    return (pred - live) / live if live else float("nan")


def spread(xs: list[float]) -> float:
    """Sample standard deviation / mean (NaN with one repeat)."""
    return float(np.std(xs, ddof=1) / np.mean(xs)) if len(xs) > 1 and np.mean(xs) else float("nan")


def parse_cells(text: str, gpu: GpuModel, svc: ServiceSpec) -> list[tuple[str, tuple[Configuration, ...]]]:
    out = []
    for item in (x.strip() for x in text.split(";") if x.strip()):
        parts = tuple(parse_configuration(p.strip(), gpu, svc.variant_names) for p in item.split(">"))
        out.append((" > ".join(c.label() for c in parts), parts))
    return out


def energy_meter_state() -> str | None:
    """None when a measured CPU energy counter is readable, else why energy is not measured."""
    import glob

    files = glob.glob("/sys/class/powercap/intel-rapl:*/energy_uj")
    if not files:
        return "no RAPL counters (/sys/class/powercap absent)"
    if not all(os.access(f, os.R_OK) for f in files):
        return "RAPL counters not readable"
    return None


def replay_cell(prof: Profile, svc: ServiceSpec, gpu: GpuModel, cell: Cell, duration: float, seed: int) -> IntervalMetrics:
    rb = ReplayBackend(svc, prof, gpu, mode="exact", seed=seed)
    rb.apply(cell.configs[0])
    if len(cell.configs) == 1:
        return rb.run(duration, cell.rate)
    after = cell.configs[1]
    handover = 0.0
    if prof.downtime is not None and prof.downtime.make_before_break:
        before = set(cell.configs[0].pairs)
        handover = max((prof.model_load_s.get(v, 0.0) for p, v in after.pairs if (p, v) not in before), default=0.0)
    first = min(duration - 1.0, duration / 2 + handover)
    a = rb.run(first, cell.rate)
    rb.apply(after)
    return merge_metrics([a, rb.run(duration - first, cell.rate)])


def live_cell(live: LiveBackend, cell: Cell, duration: float) -> IntervalMetrics:
    if live.configuration != cell.configs[0]:
        rep = live.apply(cell.configs[0])
        if not rep.ok:
            raise SystemExit(f"live apply {cell.configs[0].label()} failed: {rep.message}")
    if len(cell.configs) == 1:
        return live.run(duration, cell.rate)
    out: dict[str, IntervalMetrics] = {}
    t = threading.Thread(target=lambda: out.update(m=live.run(duration, cell.rate)), name="fidelity-load")
    t.start()
    time.sleep(duration / 2)
    rep = live.apply(cell.configs[1])
    t.join()
    if not rep.ok:
        raise SystemExit(f"live mid-run apply {cell.configs[1].label()} failed: {rep.message}")
    return out["m"]


def print_table(cells: list[Cell], energy: bool) -> tuple[list[float], list[float], list[float], int]:
    print(f"{'configuration':<24} {'load':>4} {'rate':>6} | {'p95 replay':>10} {'live':>8} {'err':>7} "
          f"{'spread':>6} {'client':>7} | {'thr replay':>10} {'live':>6} {'err':>6}" + (" | energy err" if energy else ""))
    print(f"{'':<24} {'':>4} {'req/s':>6} | {'ms':>10} {'ms':>8} {'':>7} {'':>6} {'p95 ms':>7} | "
          f"{'req/s':>10} {'req/s':>6} {'':>6}")
    e_p, e_t, e_e, within = [], [], [], 0
    for c in cells:
        rp, lp = float(np.mean([m.p95_ms for m in c.replay])), float(np.mean([m.p95_ms for m in c.live]))
        rt = float(np.mean([m.throughput_rps for m in c.replay]))
        lt = float(np.mean([m.throughput_rps for m in c.live]))
        sp = spread([m.p95_ms for m in c.live])
        ep, et = rel(rp, lp), rel(rt, lt)
        e_p.append(abs(ep))
        e_t.append(abs(et))
        ok = np.isfinite(sp) and abs(ep) <= SPREAD_FACTOR * sp
        within += bool(ok)
        line = (f"{c.label:<24} {c.load:>4.0%} {c.rate:>6.2f} | {rp:>10.1f} {lp:>8.1f} {ep:>+7.1%} "
                f"{sp:>6.1%} {np.mean(c.client_p95):>7.1f} | {rt:>10.2f} {lt:>6.2f} {et:>+6.1%}")
        if energy:
            ee = rel(float(np.mean([m.energy_j for m in c.replay])), float(np.mean([m.energy_j for m in c.live])))
            e_e.append(abs(ee))
            line += f" | {ee:>+6.1%}"
        print(line + ("" if ok else "  *"))
    return e_p, e_t, e_e, within


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--service", default="efficientnet")
    ap.add_argument("--gpu", default="a100-40gb")
    ap.add_argument("--configs", default="7g:b1;4g:b1,3g:b3;4g:b1,3g:b1>4g:b1,3g:b3",
                    help="';'-separated configurations; A>B switches from A to B half way through the run")
    ap.add_argument("--loads", default="0.2,0.4,0.6,0.75,0.9", help="fractions of each configuration's capacity")
    ap.add_argument("--duration", type=float, default=60.0, help="seconds per cell and repeat")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--profile", default=None, help="use this profile file instead of measuring one")
    ap.add_argument("--save-profile", default=None, help="write the measured profile here")
    ap.add_argument("--together", action=argparse.BooleanOptionalAction, default=True,
                    help="profile configurations served whole (default) rather than one slice at a time")
    ap.add_argument("--profile-rates", default="1,2", help="offered loads while profiling, req/s")
    ap.add_argument("--profile-duration", type=float, default=20.0, help="seconds per profiling load level")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--cpu-scale", type=float, default=0.15, help="CPU mode: input resolution / sequence scale")
    ap.add_argument("--cpu-threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    t_start = time.perf_counter()
    svc, gpu = load_service(args.service), get_gpu(args.gpu)
    specs = parse_cells(args.configs, gpu, svc)
    configs = list(dict.fromkeys(c for _, parts in specs for c in parts))
    opts: dict[str, object] = {"cpu_scale": args.cpu_scale, "cpu_threads": args.cpu_threads}
    if svc.request.kind == "image" and args.device == "cpu":  # images at the worker's resolution
        native = max(svc.variant(v).resolution or svc.request.height or 224 for c in configs for v in c.variants)
        opts["image_size"] = scaled(native, args.cpu_scale, 32)
    print(f"replay fidelity: {svc.name} on {gpu.name}, device {args.device} (scale {args.cpu_scale:g}, "
          f"{args.cpu_threads} thread(s)/worker); {args.duration:g} s x {args.repeats} repeat(s) per cell; "
          f"host {os.cpu_count()} CPUs")
    print("latency compared: server-side (request accepted -> response sent) on both sides; "
          "client p95 shown, not compared")
    if args.profile:
        prof = load_profile(args.profile)
        print(f"profile {args.profile}: {prof.method}")
    else:
        print(f"profiling {'; '.join(c.label() for c in configs)} at {args.profile_rates} req/s x "
              f"{args.profile_duration:g} s ...", flush=True)
        kw = ({"configurations": configs} if args.together else
              {"slices": sorted({p for c in configs for p in c.profiles}),
               "variants": sorted({v for c in configs for v in c.variants})})
        prof = measure_profile(svc, gpu, device=args.device, rates=floats(args.profile_rates),
                               duration_s=args.profile_duration, idle_s=1.0, seed=args.seed,
                               progress=lambda m: print("  " + m, flush=True), **kw, **opts)  # type: ignore[arg-type]
        if args.save_profile:
            prof.save(args.save_profile)
    for (p, v), e in sorted(prof.entries.items()):
        print(f"  profile {p} {v}: mean {e.mean_ms:.1f} ms, p95 {e.service_ms[7]:.1f} ms, n={e.samples}")
    fe, di = prof.overhead_s()
    d = prof.downtime
    print(f"  overhead per request: front end {fe * 1e3:.2f} ms, dispatch {di * 1e3:.2f} ms; "
          + (f"make-before-break {d.make_before_break}, switch downtime {d.switch_s:.2f} s, worker restart "
             f"{d.worker_restart_s:.1f} s; model load {prof.model_load_s}" if d else "no downtime figures"))
    cells = []
    for label, parts in specs:
        cap = min(ReplayBackend(svc, prof, gpu).capacity_rps(c) for c in parts)
        cells += [Cell(label, parts, load, load * cap) for load in floats(args.loads)]
    energy_why = energy_meter_state() if args.device == "cpu" else None
    with LiveBackend(svc, gpu, n_gpus=1, device=args.device, seed=args.seed, **opts) as live:  # type: ignore[arg-type]
        energy = energy_why is None and not live.meter.estimated
        for r in range(args.repeats):
            for c in cells:
                c.replay.append(replay_cell(prof, svc, gpu, c, args.duration, args.seed * 1000 + r))
                m = live_cell(live, c, args.duration)
                c.live.append(m)
                c.client_p95.append(live.last_load.p95_ms if live.last_load else float("nan"))
                print(f"  repeat {r + 1}: {c.label} @ {c.load:.0%} ({c.rate:.2f} req/s): live {m.served}/{m.arrived} "
                      f"answered, p95 {m.p95_ms:.0f} ms; replay p95 {c.replay[-1].p95_ms:.0f} ms", flush=True)
    print()
    e_p, e_t, e_e, within = print_table(cells, energy)
    en = (f"{np.mean(e_e):.1%}" if energy else
          f"not measured ({energy_why or 'meter is ' + live.meter.source + ', an estimate'})")
    print()
    print("(* = p95 error beyond 2x the live spread; spread = sample std across repeats / mean)")
    print(f"summary: mean |relative error| p95 {np.mean(e_p):.1%}, throughput {np.mean(e_t):.1%}, energy {en}")
    print(f"targets: p95 <= {TARGET_P95:.0%} {'met' if np.mean(e_p) <= TARGET_P95 else 'MISSED'}, throughput <= "
          f"{TARGET_THR:.0%} {'met' if np.mean(e_t) <= TARGET_THR else 'MISSED'}, cells within "
          f"{SPREAD_FACTOR:g}x live spread {within}/{len(cells)}"
          + ("" if args.repeats > 1 else " (one repeat: no spread)"))
    with open("/proc/loadavg") as f:
        load_avg = f.read().split()[0]
    print(f"total run {time.perf_counter() - t_start:.0f} s; host load average at the end {load_avg}")


if __name__ == "__main__":
    main()
