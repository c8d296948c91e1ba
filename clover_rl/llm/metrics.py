"""Per-interval service metrics of an LLM simulation: TTFT and TPOT percentiles, tokens, energy
and carbon per 1k output tokens, quality.

Definitions: a request's TTFT = first token - arrival, binned by the first token's interval;
TPOT = (finish - first token) / (output - 1) for outputs > 1 token, binned by the finish. Tokens
served are output tokens. Energy = active energy + the slice's idle power x interval; carbon =
energy x the interval's grid intensity (g CO2/kWh). Quality is the variant's (MMLU) on every
interval that served tokens, NaN otherwise.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from clover_rl.llm.physics import LLMSliceProfile
from clover_rl.llm.simulator import LLMRun

J_PER_KWH = 3.6e6


@dataclass(frozen=True)
class LLMIntervalMetrics:
    """Arrays of shape (n_intervals,); times in ms, energy in J, carbon in g."""

    ttft_p50_ms: np.ndarray
    ttft_p95_ms: np.ndarray
    tpot_p50_ms: np.ndarray
    tpot_p95_ms: np.ndarray
    output_tokens: np.ndarray
    prompt_tokens: np.ndarray
    energy_j: np.ndarray
    energy_per_1k_tokens_j: np.ndarray
    carbon_per_1k_tokens_g: np.ndarray
    quality: np.ndarray
    rejected: int


def _binned_percentiles(bins: np.ndarray, values: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    p50, p95 = np.full(n, np.nan), np.full(n, np.nan)
    ok = (bins >= 0) & (bins < n)
    bins, values = bins[ok], values[ok]
    order = np.argsort(bins, kind="stable")
    bins, values = bins[order], values[order]
    edges = np.searchsorted(bins, np.arange(n + 1))
    for k in range(n):
        v = values[edges[k]:edges[k + 1]]
        if v.size:
            p50[k], p95[k] = np.percentile(v, [50.0, 95.0])
    return p50, p95


def interval_metrics(run: LLMRun, profile: LLMSliceProfile, carbon_g_per_kwh: float | np.ndarray) -> LLMIntervalMetrics:
    n = run.output_tokens.shape[0]
    served = ~np.isnan(run.first_token_s)
    ttft = (run.first_token_s - run.arrival_s)[served] * 1000.0
    ttft_bin = (run.first_token_s[served] // run.interval_s).astype(np.int64)
    multi = served & (run.output > 1)
    tpot = ((run.finish_s - run.first_token_s)[multi] / (run.output[multi] - 1)) * 1000.0
    tpot_bin = (run.finish_s[multi] // run.interval_s).astype(np.int64)
    t50, t95 = _binned_percentiles(ttft_bin, ttft, n)
    o50, o95 = _binned_percentiles(tpot_bin, tpot, n)
    energy = run.active_energy_j + profile.idle_power_w * run.interval_s
    with np.errstate(divide="ignore", invalid="ignore"):
        per_1k = np.where(run.output_tokens > 0, energy / run.output_tokens * 1000.0, np.nan)
    carbon = per_1k / J_PER_KWH * np.broadcast_to(np.asarray(carbon_g_per_kwh, float), (n,))
    quality = np.where(run.output_tokens > 0, profile.quality, np.nan)
    return LLMIntervalMetrics(t50, t95, o50, o95, run.output_tokens.copy(), run.prompt_tokens.copy(),
                              energy, per_1k, carbon, quality, run.rejected)
