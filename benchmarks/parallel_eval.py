"""Benchmark-suite cases sequentially vs on Ray workers: wall time side by side, same results.

    python benchmarks/parallel_eval.py [--case yolo/se --case albert/dk ...] [--policy base --policy mpc]
                                       [--hours 12] [--workers 2] [--ray auto|ADDRESS]

Runs the cases once in this process (``workers=1``) and once on ``--workers`` Ray actors
(``clover-rl benchmark --ray``'s path), each starting with cold caches (a Ray worker is a fresh
process; the sequential run goes first, in a process that has evaluated nothing), then checks
that every figure of every case and policy is identical. The speed-up is bounded by the cores:
at most ~2x on a 2-core machine (and less when others share the cores). ``--hours`` shortens the
suite windows (48 h) to keep the run short; the identity check holds for any window.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DEFAULT_CASES = ["yolo/se/", "yolo/dk/", "albert/se/", "albert/dk/"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--case", action="append", help="suite case name fragment (repeatable)")
    ap.add_argument("--policy", action="append", help="policy (repeatable; default base, mpc)")
    ap.add_argument("--hours", type=int, default=12, help="hours of each case's window (suite: 48)")
    ap.add_argument("--workers", type=int, default=2, help="Ray workers")
    ap.add_argument("--ray", default="auto", help="auto (local cluster) or a cluster address")
    args = ap.parse_args(argv)

    from clover_rl.distributed.runtime import connected
    from clover_rl.evaluation.benchmark import run_suite
    from clover_rl.evaluation.suite import select_cases

    cases = [dataclasses.replace(c, hours=args.hours) for c in select_cases(args.case or DEFAULT_CASES)]
    policies = args.policy or ["base", "mpc"]
    print(f"cases={len(cases)} ({', '.join(c.name for c in cases)}) policies={','.join(policies)} "
          f"hours={args.hours} cores={os.cpu_count()}", flush=True)

    t0 = time.perf_counter()
    seq = run_suite(cases, policies, workers=1)
    seq_s = time.perf_counter() - t0
    print(f"sequential (1 process):        wall {seq_s:7.1f} s", flush=True)

    t0 = time.perf_counter()
    with connected(args.ray, num_cpus=args.workers) as ray:
        start_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        par = run_suite(cases, policies, workers=args.workers, ray_address=args.ray)
        par_s = time.perf_counter() - t1
        cpus = int(ray.cluster_resources().get("CPU", 0))
    print(f"ray ({args.workers} workers, {cpus} CPUs):      wall {par_s:7.1f} s  (+ {start_s:.1f} s to start/join "
          f"the cluster)", flush=True)
    # exact equality of every figure (JSON text: an undefined gap, NaN, equals NaN)
    same = json.dumps([a.rows for a in seq.cases], sort_keys=True) == json.dumps([b.rows for b in par.cases],
                                                                               sort_keys=True)
    print(f"speed-up {seq_s / par_s:.2f}x without cluster start, {seq_s / (par_s + start_s):.2f}x with it "
          f"(bound: {min(args.workers, os.cpu_count() or 1)}x on {os.cpu_count()} cores, less when they are shared)")
    print(f"identical results: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
