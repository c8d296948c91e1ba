"""Steady-mode replay of the intervals a cached steady state cannot answer alone.

:class:`~clover_rl.serving.replay.ReplayBackend` in ``mode="steady"`` answers an interval
with no pending reconfiguration downtime, at a load below ``STEADY_MAX_RHO`` of capacity,
from the cached steady state. Every other interval comes from here:

* **after a reconfiguration** (downtime pending, load trusted): the disturbed *head* -- the
  downtime ``D``, then twice the time the backlog needs to drain (``rate x D`` requests at
  the spare capacity ``capacity - rate``), plus ``HEAD_MARGIN_S`` -- is simulated exactly
  from an empty queue; the undisturbed rest of the interval is the steady state. Counts,
  energy and busy time add up; latency percentiles are those of the request-weighted mixture
  of the head's latency distribution and the steady one (each kept as quantiles at
  ``LATENCY_LEVELS``, 0.1% apart in the tail).
* **anything else** (load at or above ``STEADY_MAX_RHO``, or downtime the head would not fit
  in the interval): one exact simulation of the whole interval from an empty queue.

Both simulations draw the common random numbers of the rate grid point nearest the load
(seeded by the grid index, as the steady state is) and run at that grid rate (<= 0.5% from
the load), and both are cached by (servers, downtime per server, grid point, seconds): a
repeated switch costs a dictionary lookup, and, like the steady state, a steady-mode result
carries no per-call sampling noise. ``mode="exact"`` keeps a fresh full simulation per run.

The head is one exact sample (fixed per grid point), the rest an expected value: unbiased
against ``mode="exact"``, with less noise. Tolerance, measured by
``tests/serving/test_disturbed.py`` as the mean over 16 grid points against the mean of exact
hours with the same downtime (efficientnet and albert profiles, rho 0.16-0.73): arrived,
served and energy within 1% (measured <= 0.2%), p50/p95 within 3% (<= 2.6%), p99 within 25%
(<= 24%: the p99 of an hour after a switch is set by the backlog queued during the downtime,
and its standard deviation in exact mode is 40-70% of its mean).
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from clover_rl.serving.metrics import IntervalMetrics
from clover_rl.serving.simulator import Servers, simulate_arrays, sorted_quantiles
from clover_rl.serving.steady import (
    LATENCY_LEVELS,
    STEADY_MAX_RHO,
    STEADY_REQUESTS,
    STEADY_SEED,
    grid_rng,
    rate_grid,
    steady_state_servers,
)
from clover_rl.workload.arrivals import poisson_arrivals

HEAD_MARGIN_S = 60.0
_CACHE_MAX = 20_000  # entries per cache (a head is ~1.5 kB)
_HEADS: OrderedDict[tuple, _Head] = OrderedDict()
_WHOLE: OrderedDict[tuple, IntervalMetrics] = OrderedDict()
_RESULTS: OrderedDict[tuple, IntervalMetrics] = OrderedDict()
_P50_95_99 = np.array([0.5, 0.95, 0.99])


@dataclass(frozen=True, eq=False)
class _Head:
    """The exactly simulated head of a disturbed interval (at one rate grid point)."""

    seconds: float
    arrived: int
    served: int
    latency_q_ms: np.ndarray  # float32 at LATENCY_LEVELS (empty if nothing served)
    mean_ms: float
    busy_s: np.ndarray  # per server
    count: np.ndarray  # per server


def head_seconds(downtime_s: float, rho: float) -> float:
    """Length of the disturbed head: downtime + 2 x backlog drain time + ``HEAD_MARGIN_S``."""
    drain = downtime_s * rho / max(1.0 - rho, 1e-3)
    return downtime_s + 2.0 * drain + HEAD_MARGIN_S


def _cached(cache: OrderedDict, key: tuple, make):  # type: ignore[no-untyped-def]
    hit = cache.get(key)
    if hit is not None:
        cache.move_to_end(key)
        return hit
    value = make()
    cache[key] = value
    if len(cache) > _CACHE_MAX:
        cache.popitem(last=False)
    return value


def _nearest_grid(rate: float) -> tuple[int, float]:
    lo, r_lo, r_hi, w = rate_grid(rate)
    return (lo, r_lo) if w < 0.5 else (lo + 1, r_hi)


def _simulate(servers: Servers, grid: int, rate: float, seconds: float, available_at: np.ndarray,
              timeout_s: float, kind: int):  # type: ignore[no-untyped-def]
    rng = grid_rng(STEADY_SEED, grid, kind)
    arr = poisson_arrivals(rate, seconds, rng)
    u = rng.random(arr.shape[0])
    return simulate_arrays(servers, arr, u, seconds, timeout_s=timeout_s, available_at=available_at)


def whole_interval(servers: Servers, rate_rps: float, seconds: float, available_at: np.ndarray,
                   timeout_s: float) -> IntervalMetrics:
    """One exact simulation of the interval at the nearest grid rate (cached; CRN seeded)."""
    grid, r = _nearest_grid(rate_rps)
    key = (servers.key_id, available_at.tobytes(), grid, float(seconds), float(timeout_s))
    return _cached(_WHOLE, key, lambda: _simulate(servers, grid, r, seconds, available_at,
                                                  timeout_s, kind=3).metrics())


def _head(servers: Servers, grid: int, rate: float, seconds: float, available_at: np.ndarray,
          timeout_s: float) -> _Head:
    res = _simulate(servers, grid, rate, seconds, available_at, timeout_s, kind=2)
    lat = res.sorted_latency_s()
    q = (sorted_quantiles(lat, LATENCY_LEVELS) * 1e3).astype(np.float32) if lat.size else np.zeros(0, np.float32)
    return _Head(seconds, int(res.arrivals.shape[0]), int(lat.shape[0]), q,
                 float(lat.mean() * 1e3) if lat.size else 0.0, res.busy_s, res.count)


def mixture_quantiles(parts: list[tuple[float, np.ndarray]], levels: np.ndarray) -> np.ndarray:
    """Quantiles at ``levels`` of a mixture of distributions given as (weight, quantiles at
    ``LATENCY_LEVELS``); parts with no weight or no quantiles are left out."""
    parts = [(w, q) for w, q in parts if w > 0 and q.size]
    total = sum(w for w, _ in parts)
    x = np.sort(np.concatenate([q for _, q in parts]).astype(np.float64))
    cdf = sum(w * np.interp(x, q, LATENCY_LEVELS) for w, q in parts) / total
    return np.interp(levels, cdf, x)


def disturbed_interval(servers: Servers, rate_rps: float, seconds: float, downtime_s: Mapping[str, float],
                       timeout_s: float, n_requests: int = STEADY_REQUESTS) -> IntervalMetrics:
    """Metrics of an interval of ``seconds`` at ``rate_rps`` that starts with per-slice-id
    downtime ``downtime_s`` (may be empty: then only near-saturation loads come here).

    Cached per (servers, downtime, rate, seconds): a repeated switch is a dictionary lookup.
    """
    key = (servers.key_id, tuple(downtime_s.items()), rate_rps, seconds, timeout_s, n_requests)
    return _cached(_RESULTS, key, lambda: _disturbed(servers, rate_rps, seconds,
                                                     servers.available_at(downtime_s), timeout_s, n_requests))


def _disturbed(servers: Servers, rate_rps: float, seconds: float, available_at: np.ndarray,
               timeout_s: float, n_requests: int) -> IntervalMetrics:
    rho = rate_rps / servers.capacity_rps
    h = head_seconds(float(available_at.max(initial=0.0)), rho)
    if not rho < STEADY_MAX_RHO or h >= seconds:
        return whole_interval(servers, rate_rps, seconds, available_at, timeout_s)
    steady = steady_state_servers(servers, rate_rps, timeout_s=timeout_s, n_requests=n_requests)
    grid, r = _nearest_grid(rate_rps)
    key = (servers.shape_id, available_at.tobytes(), grid, float(timeout_s))  # per-position figures
    hd = _cached(_HEADS, key, lambda: _head(servers, grid, r, h, available_at, timeout_s))
    rest = seconds - hd.seconds
    arrived_r = round(rate_rps * rest)
    served_r = arrived_r - round(arrived_r * steady.drop_fraction)
    arrived, served = hd.arrived + arrived_r, hd.served + served_r
    util = {sid: min(1.0, (float(b) + steady.utilization.get(sid, 0.0) * rest) / seconds)
            for sid, b in zip(servers.ids, hd.busy_s)}
    energy = (servers.idle_power_w * seconds + float(np.dot(servers.active_power_w, hd.busy_s))
              + steady.active_j_per_request * served_r)
    if not served:  # the shared "nothing served" interval (see IntervalMetrics.nothing_served)
        return IntervalMetrics.nothing_served(seconds, arrived, timeout_s=timeout_s, energy_j=energy,
                                              accuracy=float(servers.accuracy[0]), utilization=util,
                                              estimated=servers.estimated, backend="replay")
    p50, p95, p99 = mixture_quantiles([(hd.served, hd.latency_q_ms), (served_r, steady.latency_q_ms)],
                                      _P50_95_99)
    mean = (hd.mean_ms * hd.served + steady.mean_ms * served_r) / served
    acc = (float(np.dot(servers.accuracy, hd.count)) + steady.accuracy * served_r) / served
    share: dict[str, float] = {}
    for v, c in zip(servers.variants, hd.count):
        share[v] = share.get(v, 0.0) + float(c) / served
    for v, s in steady.variant_share.items():
        share[v] = share.get(v, 0.0) + s * served_r / served
    return IntervalMetrics(
        duration_s=float(seconds), arrived=arrived, served=served, dropped=arrived - served,
        p50_ms=float(p50), p95_ms=float(p95), p99_ms=float(p99), mean_ms=float(mean),
        throughput_rps=served / seconds, energy_j=energy, accuracy=acc, utilization=util,
        variant_share=dict(sorted(share.items())), estimated=servers.estimated, backend="replay",
    )


def clear_disturbed_cache() -> None:
    _HEADS.clear()
    _WHOLE.clear()
    _RESULTS.clear()
