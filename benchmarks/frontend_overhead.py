"""Latency the live serving plane adds per request, measured with a noop model.

Serves a noop variant (answers at once) on two emulated slices (4g + 3g, CPU backend) and
offers open-loop Poisson load. Three figures per payload size, all measured in this run:

- pool:     central queue + pipe to the worker process and back (no HTTP), minus the
            worker's own service time;
- frontend: the KServe v2 handler's time (decode, check, queue, worker round trip, encode)
            minus the worker's service time — the latency the serving plane adds;
- client:   end-to-end latency seen by the async httpx load generator, which runs in its own
            process (adds the client's own cost and the HTTP stack on both sides);
- CPU:      the server process's CPU time per request (front end + dispatch threads), a figure
            that depends less on how busy a shared host is than the latencies do.

Large inputs reach the worker through a shared mapping, small ones through the pipe.

Target: frontend p99 < 2 ms at 200 req/s. Prints figures; asserts nothing.
Run: ``python benchmarks/frontend_overhead.py [--rate 200] [--duration 10]``.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

from clover_rl.mig.catalog import get_gpu
from clover_rl.mig.config import parse_configuration
from clover_rl.services import ServiceSpec, load_service
from clover_rl.serving.live.backend import LiveBackend
from clover_rl.serving.live.loadgen import LoadProcess

TARGET_P99_MS = 2.0


def noop_service() -> ServiceSpec:
    d = load_service("efficientnet").model_dump()
    for v in d["variants"]:
        v["source"] = {"kind": "noop", "name": "noop"}
    return ServiceSpec.model_validate(d)


def pcts(xs_ms: np.ndarray) -> str:
    if xs_ms.size == 0:
        return "no samples"
    p50, p95, p99 = np.percentile(xs_ms, [50, 95, 99])
    return f"p50 {p50:6.3f}  p95 {p95:6.3f}  p99 {p99:6.3f} ms  (n={xs_ms.size})"


def pool_overhead(backend: LiveBackend, image: int, batch: int, rate: float, seconds: float) -> np.ndarray:
    """Open-loop submissions straight into the pool; (latency - service) per request, ms."""
    x = {"INPUT__0": np.random.default_rng(0).integers(0, 256, (batch, image, image, 3), dtype=np.uint8)}
    rng = np.random.default_rng(1)
    gaps = rng.exponential(1.0 / rate, int(rate * seconds))
    futs = []
    t = time.perf_counter()
    for g in gaps:
        t += g
        d = t - time.perf_counter()
        if d > 0:
            time.sleep(d)
        futs.append(backend.pool.submit(x))
    res = [f.result(30) for f in futs]
    return np.asarray([(r.latency_s - r.service_s) * 1000 for r in res])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=200.0)
    ap.add_argument("--duration", type=float, default=10.0)
    args = ap.parse_args()
    svc = noop_service()
    gpu = get_gpu("a100-40gb")
    print(f"host: {os.cpu_count()} CPUs; noop model on 4g + 3g emulated slices; {args.rate:g} req/s Poisson "
          f"for {args.duration:g} s per figure; target frontend p99 < {TARGET_P99_MS} ms")
    load = LoadProcess()
    with LiveBackend(svc, gpu, device="cpu") as b:
        assert b.apply(parse_configuration("4g:b1,3g:b3", gpu, svc.variant_names)).ok
        load.run(b.url, svc, 1.0, 50.0, image_size=32)  # warm connections and code paths
        for size in (32, 224):
            mb = 8 * size * size * 3 / 1e6
            print(f"\npayload: 8 x {size} x {size} x 3 UINT8 ({mb:.2f} MB, binary tensor extension)")
            print(f"  pool      {pcts(pool_overhead(b, size, 8, args.rate, args.duration))}")
            b.frontend.app.state.overhead_s.clear()
            cpu0 = time.process_time()
            res = load.run(b.url, svc, args.duration, args.rate, image_size=size, seed=size)
            cpu_us = (time.process_time() - cpu0) / max(1, res.answered) * 1e6
            fe = np.asarray(b.frontend.app.state.overhead_s) * 1000
            p99 = float(np.percentile(fe, 99)) if fe.size else float("nan")
            verdict = "meets" if p99 < TARGET_P99_MS else "MISSES"
            print(f"  frontend  {pcts(fe)}  -> {verdict} the {TARGET_P99_MS} ms p99 target")
            print(f"  client    {pcts(res.latencies_ms)}  (sent {res.sent}, answered {res.answered}, "
                  f"errors {res.errors})")
            print(f"  server process CPU per request (HTTP + dispatch threads): {cpu_us:.0f} us")
    load.close()
    with open("/proc/loadavg") as f:
        print(f"\nhost load average during the run: {f.read().split()[0]} (shared machine: figures scale with it)")


if __name__ == "__main__":
    main()
