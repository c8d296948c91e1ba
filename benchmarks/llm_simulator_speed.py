"""Speed and agreement of the LLM continuous-batching kernel, measured side by side.

    python benchmarks/llm_simulator_speed.py [--trace ../shared/data/azure_llm/AzureLLMInferenceTrace_conv.csv]
        [--gpu a100-40gb] [--slice 3g] [--variant llama-3.2-3b-int8] [--requests 200000]

Workload: the Azure LLM trace's prompt/output lengths and arrival process when ``--trace`` is
given (repeated end to end to reach ``--requests``), else the shipped fitted generator
(Poisson arrivals at ``--rate`` requests/s). Prints

1. agreement: the numba kernel and the plain-Python reference (clover_rl/llm/reference.py) on
   the same ``--agree-requests`` requests: max |difference| of every request's first-token and
   finish time, equality of per-interval token counts, relative energy difference;
2. speed of both on that run (simulated output tokens/s and prompt+output tokens/s);
3. kernel speed on ``--requests`` requests. Target: >= 1,000,000 simulated (output) tokens/s
   on one core.
Then the per-interval metrics of the large run (first intervals).
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from clover_rl.llm.catalog import load_llm_service
from clover_rl.llm.lengths import load_fitted, load_token_trace
from clover_rl.llm.metrics import interval_metrics
from clover_rl.llm.physics import slice_profile
from clover_rl.llm.reference import reference_simulate
from clover_rl.llm.simulator import simulate
from clover_rl.mig.catalog import get_gpu

TARGET_TOKENS_PER_S = 1_000_000


def workload(args: argparse.Namespace, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if args.trace:
        tr = load_token_trace(args.trace)
        reps = -(-n // len(tr.prompt))
        period = tr.span_s + float(np.mean(np.diff(tr.arrival_s)))
        a = np.concatenate([tr.arrival_s + i * period for i in range(reps)])[:n]
        return a, np.tile(tr.prompt, reps)[:n], np.tile(tr.output, reps)[:n]
    p, o = load_fitted(args.lengths).sample(n, rng)
    return np.cumsum(rng.exponential(1.0 / args.rate, n)), p, o


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trace", default=None, help="Azure-layout CSV (default: the fitted generator)")
    ap.add_argument("--lengths", default="conv", help="shipped fit when no --trace (conv, code)")
    ap.add_argument("--rate", type=float, default=5.53, help="requests/s without --trace")
    ap.add_argument("--gpu", default="a100-40gb")
    ap.add_argument("--slice", default="7g")
    ap.add_argument("--variant", default="llama-3.2-3b-int8")
    ap.add_argument("--max-batch", type=int, default=64)
    ap.add_argument("--interval-s", type=float, default=60.0)
    ap.add_argument("--requests", type=int, default=200_000)
    ap.add_argument("--agree-requests", type=int, default=3_000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    gpu = get_gpu(args.gpu)
    prof = slice_profile(load_llm_service().variant(args.variant), gpu, gpu.profile(args.slice))
    rng = np.random.default_rng(args.seed)
    print(f"{args.variant} on {gpu.name} {prof.slice}: prefill {prof.prefill_s_per_token * 1e6:.1f} us/token, "
          f"weights pass {prof.weights_read_s * 1e3:.2f} ms, KV capacity {prof.kv_capacity_tokens} tokens "
          f"(estimated); workload: {args.trace or 'fitted ' + args.lengths}")

    a, p, o = workload(args, args.agree_requests, rng)
    n_int = int(a[-1] // args.interval_s) + 2
    kw = dict(max_batch=args.max_batch, interval_s=args.interval_s, n_intervals=n_int,
              kv_capacity_tokens=prof.kv_capacity_tokens)
    simulate(prof, a[:10], p[:10], o[:10], **kw)  # compile
    t0 = time.perf_counter()
    run = simulate(prof, a, p, o, **kw)
    t_kernel = time.perf_counter() - t0
    t0 = time.perf_counter()
    ref = reference_simulate(prof, a.tolist(), p.tolist(), o.tolist(), **kw)
    t_ref = time.perf_counter() - t0
    d_first = float(np.nanmax(np.abs(run.first_token_s - np.asarray(ref["first"]))))
    d_finish = float(np.nanmax(np.abs(run.finish_s - np.asarray(ref["finish"]))))
    same_tokens = run.output_tokens.tolist() == ref["output_tokens"] and run.prompt_tokens.tolist() == ref["prompt_tokens"]
    e_rel = abs(run.active_energy_j.sum() - sum(ref["energy"])) / max(sum(ref["energy"]), 1e-12)
    nan_same = bool(np.array_equal(np.isnan(run.first_token_s), np.isnan(np.asarray(ref["first"]))))
    out_tok, all_tok = int(o.sum()), int(o.sum() + p.sum())
    print(f"\nagreement on {len(a)} requests ({out_tok} output tokens, {run.iterations} iterations):")
    print(f"  max |first token diff| {d_first:.3e} s   max |finish diff| {d_finish:.3e} s   "
          f"interval token counts equal: {same_tokens}   rejected equal: {nan_same}   energy rel diff {e_rel:.2e}")
    agree = d_first < 1e-9 and d_finish < 1e-9 and same_tokens and nan_same and e_rel < 1e-9
    print(f"  {'kernel':>10} {out_tok / t_kernel:>14,.0f} output tok/s {all_tok / t_kernel:>16,.0f} all tok/s")
    print(f"  {'reference':>10} {out_tok / t_ref:>14,.0f} output tok/s {all_tok / t_ref:>16,.0f} all tok/s"
          f"   kernel/reference = {t_ref / t_kernel:,.0f}x")

    a, p, o = workload(args, args.requests, rng)
    n_int = int(a[-1] // args.interval_s) + 2
    kw["n_intervals"] = n_int
    t0 = time.perf_counter()
    run = simulate(prof, a, p, o, **kw)
    dt = time.perf_counter() - t0
    out_tok = int(o[~np.isnan(run.first_token_s)].sum())
    speed = out_tok / dt
    print(f"\nkernel on {len(a):,} requests ({out_tok:,} output tokens, {run.iterations:,} iterations, "
          f"{a[-1] / 3600:.1f} h simulated): {dt:.2f} s = {speed:,.0f} output tok/s "
          f"(target {TARGET_TOKENS_PER_S:,}: {speed / TARGET_TOKENS_PER_S:.1f}x); rejected {run.rejected}")
    m = interval_metrics(run, prof, 300.0)
    print(f"\nfirst intervals ({args.interval_s:.0f} s, grid 300 g/kWh):")
    print(f"  {'k':>3} {'TTFT p50':>9} {'p95':>8} {'TPOT p50':>9} {'p95':>7} {'out tok':>8} {'J/1k tok':>9} {'g/1k tok':>9} {'quality':>7}")
    for k in range(min(5, n_int)):
        print(f"  {k:>3} {m.ttft_p50_ms[k]:>7.1f}ms {m.ttft_p95_ms[k]:>6.1f}ms {m.tpot_p50_ms[k]:>7.2f}ms "
              f"{m.tpot_p95_ms[k]:>5.2f}ms {m.output_tokens[k]:>8} {m.energy_per_1k_tokens_j[k]:>9.1f} "
              f"{m.carbon_per_1k_tokens_g[k]:>9.4f} {m.quality[k]:>7.2f}")
    print(f"\nagreement: {'PASS' if agree else 'FAIL'}   speed: {'PASS' if speed >= TARGET_TOKENS_PER_S else 'FAIL'}")


if __name__ == "__main__":
    main()
