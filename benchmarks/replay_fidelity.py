"""Replay-vs-live fidelity on the CPU backend: does the simulator predict what live serving does?

One run, all figures measured here:

1. Profile: :func:`clover_rl.serving.live.profiler.measure_profile` serves each slice of the
   configuration (e.g. ``4g:b1,3g:b1`` -> slices 4g and 3g, variant b1) alone on emulated CPU
   slices (duty-cycle throttle to c/7 of the host, shrunken inputs) at a few offered loads and
   stores the worker-measured service-time quantiles.
2. For three loads given as fractions of the configuration's capacity on one GPU (the sum over
   its slices of 1 / mean service time, from the measured profile), the replay backend
   (:func:`clover_rl.serving.simulator.simulate` with that profile) predicts p95 latency and
   throughput, and :class:`~clover_rl.serving.live.backend.LiveBackend` on ``device="cpu"``
   with the same emulation options measures them (``apply(config)`` then ``run(seconds, rate)``).
3. A table of replay / live / relative error (``(replay - live) / live``) per load, and the
   mean absolute relative error of p95 and of throughput.

The live p95 is end to end at the client (HTTP, front end, queue, worker); the replay p95 is
queueing + profiled service time only, so the gap includes the serving plane's overhead and
the noise of a shared host. The profile's energy figures on CPU are an ESTIMATE from a CPU
power model (no RAPL) and are not compared here.

Prints figures; asserts nothing.
Run: ``python benchmarks/replay_fidelity.py [--config 4g:b1,3g:b1] [--loads 0.3,0.55,0.8]``.
"""
from __future__ import annotations

import argparse
import logging
import time

from clover_rl.mig.catalog import get_gpu
from clover_rl.mig.config import parse_configuration
from clover_rl.services import load_service
from clover_rl.serving.live.backend import LiveBackend
from clover_rl.serving.live.models import scaled
from clover_rl.serving.live.profiler import measure_profile
from clover_rl.serving.simulator import build_servers, simulate


def floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def rel(pred: float, live: float) -> float:
    return (pred - live) / live if live else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--service", default="efficientnet")
    ap.add_argument("--gpu", default="a100-40gb")
    ap.add_argument("--config", default="4g:b1,3g:b1", help="configuration label (one GPU)")
    ap.add_argument("--loads", default="0.3,0.55,0.8", help="fractions of the configuration's capacity")
    ap.add_argument("--profile-rates", default="3,8", help="offered loads while profiling, req/s")
    ap.add_argument("--profile-duration", type=float, default=8.0, help="seconds per profiling load level")
    ap.add_argument("--duration", type=float, default=20.0, help="seconds per live / replay load")
    ap.add_argument("--cpu-scale", type=float, default=0.15, help="input resolution / sequence scale")
    ap.add_argument("--cpu-threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)

    t_start = time.perf_counter()
    svc = load_service(args.service)
    gpu = get_gpu(args.gpu)
    cfg = parse_configuration(args.config, gpu, svc.variant_names)
    slices = sorted({p for p, _ in cfg.pairs})
    variants = sorted({v for _, v in cfg.pairs})
    opts: dict[str, object] = {"cpu_scale": args.cpu_scale, "cpu_threads": args.cpu_threads}
    if svc.request.kind == "image":  # send images at the worker's resolution: no wasted transfer
        native = max(svc.variant(v).resolution or svc.request.height or 224 for v in variants)
        opts["image_size"] = scaled(native, args.cpu_scale, 32)

    print(f"replay fidelity: {svc.name} {cfg.label()} on {gpu.name} (CPU emulation, "
          f"scale {args.cpu_scale:g}, {args.cpu_threads} thread(s)/worker)")
    print(f"profiling slices {', '.join(slices)} x variants {', '.join(variants)} at "
          f"{args.profile_rates} req/s x {args.profile_duration:g} s ...", flush=True)
    prof = measure_profile(svc, gpu, device="cpu", variants=variants, slices=slices,
                           rates=floats(args.profile_rates), duration_s=args.profile_duration,
                           idle_s=1.0, seed=args.seed, progress=lambda m: print("  " + m, flush=True),
                           **opts)
    for (p, v), e in sorted(prof.entries.items()):
        print(f"  profile {p} {v}: mean {e.mean_ms:.1f} ms, n={e.samples}")
    capacity = build_servers(cfg, prof, svc, 1).capacity_rps
    print(f"capacity of {cfg.label()} on one GPU (from the profile): {capacity:.2f} req/s", flush=True)

    rows = []
    with LiveBackend(svc, gpu, n_gpus=1, device="cpu", seed=args.seed, **opts) as live:  # type: ignore[arg-type]
        rep = live.apply(cfg)
        if not rep.ok:
            raise SystemExit(f"live apply failed: {rep.message}")
        for load in floats(args.loads):
            rate = load * capacity
            sim = simulate(cfg, prof, svc, 1, rate, args.duration, args.seed)
            m = live.run(args.duration, rate)
            rows.append((load, rate, sim.p95_ms, m.p95_ms, sim.throughput_rps, m.throughput_rps, m.served, m.arrived))
            print(f"  load {load:.0%}: live {m.served}/{m.arrived} answered", flush=True)

    print()
    print(f"{'load':>5} {'rate':>7} | {'p95 replay':>10} {'p95 live':>9} {'err':>7} | "
          f"{'thr replay':>10} {'thr live':>9} {'err':>7}")
    print(f"{'':>5} {'req/s':>7} | {'ms':>10} {'ms':>9} {'':>7} | {'req/s':>10} {'req/s':>9} {'':>7}")
    e_p95, e_thr = [], []
    for load, rate, sp, lp, st, lt, _, _ in rows:
        ep, et = rel(sp, lp), rel(st, lt)
        e_p95.append(abs(ep))
        e_thr.append(abs(et))
        print(f"{load:>5.0%} {rate:>7.2f} | {sp:>10.1f} {lp:>9.1f} {ep:>+7.1%} | {st:>10.2f} {lt:>9.2f} {et:>+7.1%}")
    print()
    print(f"summary: mean |relative error| p95 {sum(e_p95) / len(e_p95):.1%}, "
          f"throughput {sum(e_thr) / len(e_thr):.1%} over {len(rows)} loads "
          f"({args.duration:g} s each; total run {time.perf_counter() - t_start:.0f} s)")


if __name__ == "__main__":
    main()
