"""Plain-Python reference of the continuous-batching simulator (same rules as
``clover_rl/llm/simulator.py``, written for clarity: lists, one loop, no numba).

Used by tests and ``benchmarks/llm_simulator_speed.py`` to check the kernel's agreement."""
from __future__ import annotations

import math

from clover_rl.llm.physics import LLMSliceProfile


def reference_simulate(profile: LLMSliceProfile, arrival_s, prompt, output, *, max_batch: int,
                       interval_s: float, n_intervals: int, kv_capacity_tokens: int) -> dict:
    """Returns ``first``, ``finish`` (per request, NaN if rejected) and per-interval ``prompt_tokens``,
    ``output_tokens``, ``energy`` (J above idle), ``busy`` (s)."""
    n = len(arrival_s)
    first, finish = [0.0] * n, [0.0] * n
    ptoks, otoks = [0] * n_intervals, [0] * n_intervals
    energy, busy = [0.0] * n_intervals, [0.0] * n_intervals

    def add_power(t0: float, t1: float, watts: float) -> None:
        for k in range(n_intervals):
            lo, hi = max(t0, k * interval_s), min(t1, (k + 1) * interval_s)
            if hi > lo:
                energy[k] += watts * (hi - lo)
                busy[k] += hi - lo

    def bin_of(t: float) -> int | None:
        k = int(t // interval_s)
        return k if k < n_intervals else None

    running: dict[int, int] = {}  # request -> tokens generated
    waiting = list(range(n))
    t = 0.0
    while waiting or running:
        admitted = []
        while waiting and arrival_s[waiting[0]] <= t and len(running) < max_batch:
            r = waiting[0]
            if prompt[r] + output[r] > kv_capacity_tokens:
                first[r] = finish[r] = math.nan
                waiting.pop(0)
                continue
            reserved = sum(prompt[q] + output[q] for q in running)
            if reserved + prompt[r] + output[r] > kv_capacity_tokens:
                break
            waiting.pop(0)
            running[r] = 1
            admitted.append(r)
        if admitted:
            dur = profile.prefill_s(sum(prompt[r] for r in admitted))
            add_power(t, t + dur, profile.prefill_power_w)
            t += dur
            k = bin_of(t)
            if k is not None:
                ptoks[k] += sum(prompt[r] for r in admitted)
                otoks[k] += len(admitted)
            for r in admitted:
                first[r] = t
                if output[r] <= 1:
                    finish[r] = t
                    del running[r]
        elif running:
            kv = sum(prompt[r] + g for r, g in running.items())
            dur = profile.decode_s(len(running), kv)
            add_power(t, t + dur, profile.decode_power_w)
            t += dur
            k = bin_of(t)
            if k is not None:
                otoks[k] += len(running)
            for r in list(running):
                running[r] += 1
                if running[r] >= output[r]:
                    finish[r] = t
                    del running[r]
        elif waiting:
            t = max(t, arrival_s[waiting[0]])
    return {"first": first, "finish": finish, "prompt_tokens": ptoks, "output_tokens": otoks,
            "energy": energy, "busy": busy}
