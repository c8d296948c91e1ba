"""Measured figures of the live LLM plane on the CPU: the stand-in engines alone, then the served
path as the `openai` client sees it.

    python benchmarks/llm_live_serving.py [--variants llama-3.2-1b-int4,llama-3.1-8b-bf16]
        [--tokens 32] [--clients 1,4] [--config 7g:llama-3.2-1b-int4] [--threads 1]

Prints

1. per variant, the in-process engine (no server): the stand-in's size and output tokens/s at
   batch 1 and batch 8 (greedy, EOS ignored, ``--tokens`` per request), and their ratio (what
   continuous batching buys);
2. the served path (``LLMPlane`` with ``--config``, one worker process, OpenAI streaming through
   the `openai` client, ``--clients`` concurrent clients with ``--tokens`` each): client TTFT
   p50/p95, TPOT p50/p95, aggregate output tokens/s, beside the server's own TTFT/TPOT
   (front-end records) on the same requests.
Figures depend on the host and its load; they are what this run measured, nothing else.
"""
from __future__ import annotations

import argparse
import threading
import time

import numpy as np

from clover_rl.llm.catalog import load_llm_service
from clover_rl.mig.catalog import get_gpu
from clover_rl.mig.config import parse_configuration
from clover_rl.serving.live.llm_engine import BatchEngine, GenParams, build_model, tiny_shape
from clover_rl.serving.live.llm_plane import LLMPlane
from clover_rl.serving.live.llm_tokens import encode


def engine_rate(variant: str, batch: int, tokens: int, threads: int) -> tuple[float, int]:
    v = load_llm_service("llm").variant(variant)
    shape = tiny_shape(v.decode_weight_bytes, v.model.layers)
    eng = BatchEngine(build_model(shape, threads=threads), max_batch=batch)
    p = GenParams(max_tokens=tokens, temperature=0.0, ignore_eos=True)
    eng.add(-1, encode("warm"), GenParams(max_tokens=4, temperature=0.0))
    while eng.busy:
        eng.step()
    for i in range(batch):
        eng.add(i, encode(f"request {i}: tell me something"), p)
    t0, n = time.perf_counter(), 0
    while eng.busy:
        n += len(eng.step()[1])
    return n / (time.perf_counter() - t0), shape.params


def _client(url: str, tokens: int, out: list[tuple[float, float, int]], i: int) -> None:
    from openai import OpenAI

    c = OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=120)
    t0 = time.perf_counter()
    times: list[float] = []
    for ch in c.completions.create(model="llm", prompt=f"client {i} says hello", max_tokens=tokens, temperature=0,
                                   stream=True, extra_body={"ignore_eos": True}):
        if ch.choices and ch.choices[0].text:
            times.append(time.perf_counter())
    if times:
        out.append((times[0] - t0, (times[-1] - times[0]) / max(1, len(times) - 1), tokens))


def served(config: str, clients: list[int], tokens: int, threads: int, rounds: int) -> None:
    svc, gpu = load_llm_service("llm"), get_gpu("a100-40gb")
    with LLMPlane(svc, gpu, cpu_threads=threads, max_batch=8) as plane:
        assert plane.apply(parse_configuration(config, gpu, svc.variant_names)).ok
        _client(plane.url, 4, [], 0)  # warm the path
        print(f"\nserved: {config} (one worker process), {tokens} output tokens per request, OpenAI streaming")
        print(f"{'clients':>7} {'TTFT p50':>9} {'p95':>7} {'TPOT p50':>9} {'p95':>7} {'tok/s':>7}   "
              f"{'server TTFT p50':>15} {'TPOT p50':>9}")
        for n in clients:
            plane.frontend.app.state.llm_records.clear()
            res: list[tuple[float, float, int]] = []
            t0 = time.perf_counter()
            for r in range(rounds):
                ts = [threading.Thread(target=_client, args=(plane.url, tokens, res, r * n + i)) for i in range(n)]
                for t in ts:
                    t.start()
                for t in ts:
                    t.join()
            wall = time.perf_counter() - t0
            ttft = np.array([x[0] for x in res]) * 1000
            tpot = np.array([x[1] for x in res]) * 1000
            recs = [r for r in plane.frontend.app.state.llm_records if r.status == 200]
            s_ttft = np.median([r.ttft_s for r in recs]) * 1000
            s_tpot = np.median([r.tpot_s for r in recs]) * 1000
            print(f"{n:>7} {np.percentile(ttft, 50):>7.1f}ms {np.percentile(ttft, 95):>5.1f}ms "
                  f"{np.percentile(tpot, 50):>7.2f}ms {np.percentile(tpot, 95):>5.2f}ms {sum(x[2] for x in res) / wall:>7.0f}"
                  f"   {s_ttft:>13.1f}ms {s_tpot:>7.2f}ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", default="llama-3.2-1b-int4,llama-3.2-3b-bf16,llama-3.1-8b-bf16")
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--clients", default="1,4")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--config", default="7g:llama-3.2-1b-int4")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    print(f"engine alone ({a.threads} thread), {a.tokens} output tokens per request, greedy")
    print(f"{'variant':<20} {'params':>8} {'tok/s b=1':>10} {'tok/s b=8':>10} {'ratio':>6}")
    for v in a.variants.split(","):
        r1, params = engine_rate(v, 1, a.tokens, a.threads)
        r8, _ = engine_rate(v, 8, a.tokens, a.threads)
        print(f"{v:<20} {params / 1e6:>7.2f}M {r1:>10.0f} {r8:>10.0f} {r8 / r1:>6.2f}")
    served(a.config, [int(x) for x in a.clients.split(",")], a.tokens, a.threads, a.rounds)


if __name__ == "__main__":
    main()
