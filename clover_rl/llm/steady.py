"""Cached steady state of one LLM variant on one MIG slice, per utilisation level.

One seeded simulation (:func:`clover_rl.llm.simulator.simulate`) per (slice, variant,
utilisation grid point) of ``n_requests`` Poisson arrivals with lengths from the scenario's
generator; every slice and configuration sees the same requests (common random numbers), so
tables compare configurations, not noise. Kept per run: TTFT and TPOT quantile summaries of the
requests after a warm-up share, the active energy per output token, the share of requests
admitted (the rest need more KV than the slice has), and the busy share.

Capacity (req/s) of a slice = admitted requests / makespan when all ``n_requests`` arrive at
once (the continuous batch always full): the saturation throughput the router splits by.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from clover_rl.llm.lengths import TokenLengths
from clover_rl.llm.physics import LLMSliceProfile
from clover_rl.llm.simulator import simulate

RHO_GRID_REL = 0.05  # utilisation grid: 5% apart (log), rounded up (latency judged no lower)
RHO_MIN = 0.01
WARMUP = 0.1  # share of the requests discarded as the empty-start transient
SEED = 20240611
#: Quantile levels kept per steady state (midpoints: each stands for an equal request share).
LEVELS = (np.arange(400) + 0.5) / 400.0


def rho_grid(rho: float) -> float:
    """``rho`` rounded up to the utilisation grid, within [RHO_MIN, 1]."""
    if rho <= RHO_MIN:
        return RHO_MIN
    k = math.ceil(math.log(rho / RHO_MIN) / math.log1p(RHO_GRID_REL) - 1e-9)
    return min(1.0, RHO_MIN * (1.0 + RHO_GRID_REL) ** k)


@dataclass(frozen=True)
class SliceSteady:
    """Steady state of one slice at one utilisation (ms, J, shares)."""

    rho: float
    ttft_q_ms: np.ndarray  # TTFT at LEVELS (NaN array when nothing was served)
    tpot_q_ms: np.ndarray  # TPOT at LEVELS
    ttft_mean_ms: float
    tpot_mean_ms: float
    admitted: float  # share of requests admitted (KV footprint fits)
    tokens_per_request: float  # mean output tokens of admitted requests
    active_j_per_token: float  # energy above idle per output token
    busy: float  # busy share of the simulated span


@dataclass(frozen=True)
class Requests:
    """The common requests of every steady-state simulation: lengths and unit-rate arrivals."""

    prompt: np.ndarray  # int64 tokens
    output: np.ndarray  # int64 tokens
    unit_arrivals: np.ndarray  # Poisson arrival times at 1 req/s (divide by the rate)

    @staticmethod
    def draw(lengths: TokenLengths, n: int) -> Requests:
        rng = np.random.default_rng([SEED, n])
        prompt, output = lengths.sample(n, rng)
        return Requests(prompt, output, np.cumsum(rng.exponential(1.0, n)))

    @property
    def tokens_per_request(self) -> float:
        """Mean output tokens per request: what one request stands for in token units."""
        return float(self.output.mean())


class SliceModel:
    """One (slice profile, variant) with its cached steady states (see the module docstring)."""

    def __init__(self, profile: LLMSliceProfile, requests: Requests, *, max_batch: int) -> None:
        self.profile = profile
        self.max_batch = int(max_batch)
        self.prompt, self.output, self.unit_arrivals = requests.prompt, requests.output, requests.unit_arrivals
        self._cache: dict[float, SliceSteady] = {}
        self.capacity_rps = self._capacity()

    def _run(self, arrivals: np.ndarray):
        return simulate(self.profile, arrivals, self.prompt, self.output, max_batch=self.max_batch,
                        interval_s=1e12, n_intervals=1)

    def _capacity(self) -> float:
        if self.profile.kv_capacity_tokens <= 0:
            return 0.0
        run = self._run(np.zeros_like(self.unit_arrivals))
        done = np.isfinite(run.finish_s)
        span = float(np.max(run.finish_s[done])) if done.any() else 0.0
        return float(done.sum()) / span if span > 0 else 0.0

    def steady(self, rho: float) -> SliceSteady:
        """The steady state at utilisation ``rho`` (a grid point: see :func:`rho_grid`)."""
        hit = self._cache.get(rho)
        if hit is not None:
            return hit
        lam = rho * self.capacity_rps
        run = self._run(self.unit_arrivals / lam)
        n = run.arrival_s.size
        keep = np.arange(n) >= int(WARMUP * n)
        ok = np.isfinite(run.first_token_s)
        ttft = (run.first_token_s - run.arrival_s)[ok & keep] * 1e3
        multi = ok & keep & (run.output > 1)
        tpot = (run.finish_s - run.first_token_s)[multi] / (run.output[multi] - 1) * 1e3
        tokens = float(run.output[ok].sum())
        span = float(np.nanmax(run.finish_s)) - float(run.arrival_s[0]) if ok.any() else 1.0
        st = SliceSteady(
            rho=rho,
            ttft_q_ms=np.quantile(ttft, LEVELS) if ttft.size else np.full(LEVELS.size, np.nan),
            tpot_q_ms=np.quantile(tpot, LEVELS) if tpot.size else np.zeros(LEVELS.size),
            ttft_mean_ms=float(ttft.mean()) if ttft.size else math.nan,
            tpot_mean_ms=float(tpot.mean()) if tpot.size else 0.0,
            admitted=float(ok.mean()),
            tokens_per_request=tokens / max(int(ok.sum()), 1),
            active_j_per_token=float(run.active_energy_j.sum()) / tokens if tokens else 0.0,
            busy=min(1.0, float(run.busy_s.sum()) / span) if span > 0 else 0.0,
        )
        self._cache[rho] = st
        return st


def weighted_quantiles(values: np.ndarray, weights: np.ndarray, levels: tuple[float, ...]) -> list[float]:
    """Quantiles of the discrete distribution putting ``weights`` on ``values`` (lower value at
    ties of the cumulative weight); NaN when the weights sum to 0."""
    total = float(weights.sum())
    if total <= 0:
        return [math.nan] * len(levels)
    order = np.argsort(values, kind="stable")
    cum = np.cumsum(weights[order])
    idx = np.minimum(np.searchsorted(cum, np.asarray(levels) * total * (1 - 1e-12)), values.size - 1)
    return [float(values[order][i]) for i in idx]
