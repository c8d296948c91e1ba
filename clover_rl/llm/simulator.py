"""Iteration-level continuous batching of LLM requests on one MIG slice (exact, numba).

Scheduling (vLLM-like, no chunked prefill, no preemption):

- Requests wait FCFS. Before each iteration the scheduler admits, in arrival order, every
  arrived request while the batch has fewer than ``max_batch`` sequences and the request's whole
  KV footprint (prompt + output tokens) fits beside the running ones in ``kv_capacity_tokens``
  (reserved up front, so a running sequence is never evicted). A request whose footprint alone
  exceeds the capacity is rejected (its times are NaN).
- If any request was admitted, the iteration is a prefill of all of them together: duration
  ``max(prompt tokens x prefill_s_per_token, weights_read_s)`` (``LLMSliceProfile.prefill_s``);
  each emits its first token at the end (TTFT = end - arrival). Running sequences wait.
- Otherwise, if sequences are running, the iteration is one decode step for all of them:
  duration ``LLMSliceProfile.decode_s(batch, KV tokens of the batch)``; each emits one token.
  A sequence finishes when it has emitted its ``output`` tokens.
- Otherwise the slice idles until the next arrival.

Per interval of ``interval_s``: output and prompt tokens (at the iteration's end) and active
energy and busy time (split exactly across interval boundaries); work past the last interval
still runs (the per-request times are complete) but is not binned.
The pure-Python reference with the same rules is ``clover_rl/llm/reference.py``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from clover_rl.errors import ConfigError
from clover_rl.llm.physics import LLMSliceProfile


@dataclass(frozen=True)
class LLMRun:
    """Per-request times (s, NaN if rejected) and per-interval sums of one simulation."""

    arrival_s: np.ndarray
    prompt: np.ndarray
    output: np.ndarray
    first_token_s: np.ndarray
    finish_s: np.ndarray
    prompt_tokens: np.ndarray  # per interval
    output_tokens: np.ndarray  # per interval
    active_energy_j: np.ndarray  # per interval, above idle
    busy_s: np.ndarray  # per interval
    interval_s: float
    iterations: int

    @property
    def rejected(self) -> int:
        return int(np.isnan(self.first_token_s).sum())


@njit(cache=True)
def _bin(t0, t1, power, interval_s, energy, busy):
    """Add ``power`` over [t0, t1) to the interval bins, split at boundaries."""
    n = energy.shape[0]
    k = int(t0 // interval_s)
    while k < n and t0 < t1:
        edge = (k + 1) * interval_s
        seg = min(t1, edge) - t0
        if seg > 0.0:
            energy[k] += power * seg
            busy[k] += seg
        t0 = edge
        k += 1


@njit(cache=True)
def _retire(j, t, nrun, kv_res, kv_live, prompt, output, run_idx, run_gen, finish):
    """Finish running sequence ``j`` at ``t``: free its KV, move the last running one into its seat."""
    r = run_idx[j]
    finish[r] = t
    kv_res -= prompt[r] + output[r]
    kv_live -= prompt[r] + run_gen[j]
    nrun -= 1
    run_idx[j] = run_idx[nrun]
    run_gen[j] = run_gen[nrun]
    return nrun, kv_res, kv_live


@njit(cache=True)
def _kernel(arrival, prompt, output, p_tok, w_read, kv_tok, max_batch, kv_cap, p_pre, p_dec,
            interval_s, first, finish, ptoks, otoks, energy, busy):
    n = arrival.shape[0]
    n_int = ptoks.shape[0]
    run_idx = np.empty(max_batch, np.int64)
    run_gen = np.empty(max_batch, np.int64)
    nrun = 0
    kv_res = 0  # reserved KV tokens (prompt + output of running sequences)
    kv_live = 0  # KV tokens held now (prompt + generated so far)
    nxt = 0
    t = 0.0
    iters = 0
    while True:
        # admit
        tok_in = 0
        start = nrun
        while nxt < n and arrival[nxt] <= t and nrun < max_batch:
            need = prompt[nxt] + output[nxt]
            if need > kv_cap:
                first[nxt] = np.nan
                finish[nxt] = np.nan
                nxt += 1
                continue
            if kv_res + need > kv_cap:
                break
            run_idx[nrun] = nxt
            run_gen[nrun] = 1
            kv_res += need
            kv_live += prompt[nxt] + 1
            tok_in += prompt[nxt]
            nrun += 1
            nxt += 1
        if nrun > start:
            dur = max(tok_in * p_tok, w_read)
            _bin(t, t + dur, p_pre, interval_s, energy, busy)
            t += dur
            iters += 1
            k = int(t // interval_s)
            if k < n_int:
                ptoks[k] += tok_in
                otoks[k] += nrun - start
            j = start
            while j < nrun:
                r = run_idx[j]
                first[r] = t
                if output[r] <= 1:
                    nrun, kv_res, kv_live = _retire(j, t, nrun, kv_res, kv_live, prompt, output,
                                                    run_idx, run_gen, finish)
                else:
                    j += 1
            continue
        if nrun > 0:
            dur = max(w_read + kv_live * kv_tok, nrun * p_tok)
            _bin(t, t + dur, p_dec, interval_s, energy, busy)
            t += dur
            iters += 1
            k = int(t // interval_s)
            if k < n_int:
                otoks[k] += nrun
            kv_live += nrun
            j = 0
            while j < nrun:
                run_gen[j] += 1
                r = run_idx[j]
                if run_gen[j] >= output[r]:
                    nrun, kv_res, kv_live = _retire(j, t, nrun, kv_res, kv_live, prompt, output,
                                                    run_idx, run_gen, finish)
                else:
                    j += 1
            continue
        if nxt >= n:
            break
        if arrival[nxt] > t:
            t = arrival[nxt]
        elif prompt[nxt] + output[nxt] > kv_cap:
            first[nxt] = np.nan
            finish[nxt] = np.nan
            nxt += 1
    return iters


def _requests(arrival_s, prompt, output) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    a = np.ascontiguousarray(arrival_s, dtype=np.float64)
    p = np.ascontiguousarray(prompt, dtype=np.int64)
    o = np.ascontiguousarray(output, dtype=np.int64)
    if not (a.shape == p.shape == o.shape) or a.ndim != 1:
        raise ConfigError(f"arrival_s, prompt, output must be 1-D of one length, got {a.shape}, {p.shape}, {o.shape}")
    if a.size and (np.any(np.diff(a) < 0) or a[0] < 0 or not np.all(np.isfinite(a))):
        raise ConfigError("arrival_s must be finite, >= 0 and sorted")
    if np.any(p < 1) or np.any(o < 1):
        raise ConfigError("prompt and output token counts must be >= 1")
    return a, p, o


def simulate(profile: LLMSliceProfile, arrival_s, prompt, output, *, max_batch: int,
             interval_s: float, n_intervals: int, kv_capacity_tokens: int | None = None) -> LLMRun:
    """Serve the requests (arrival s, sorted; prompt/output tokens >= 1) on one slice.

    ``kv_capacity_tokens`` defaults to the profile's (memory left beside the weights)."""
    if max_batch < 1 or n_intervals < 1 or not interval_s > 0:
        raise ConfigError(f"max_batch, n_intervals must be >= 1 and interval_s > 0, got "
                          f"{max_batch}, {n_intervals}, {interval_s}")
    a, p, o = _requests(arrival_s, prompt, output)
    cap = profile.kv_capacity_tokens if kv_capacity_tokens is None else int(kv_capacity_tokens)
    n = a.size
    first, finish = np.zeros(n), np.zeros(n)
    ptoks, otoks = np.zeros(n_intervals, np.int64), np.zeros(n_intervals, np.int64)
    energy, busy = np.zeros(n_intervals), np.zeros(n_intervals)
    iters = _kernel(a, p, o, profile.prefill_s_per_token, profile.weights_read_s, profile.kv_read_s_per_token,
                    int(max_batch), cap, profile.prefill_power_w, profile.decode_power_w, float(interval_s),
                    first, finish, ptoks, otoks, energy, busy)
    return LLMRun(a, p, o, first, finish, ptoks, otoks, energy, busy, float(interval_s), int(iters))
