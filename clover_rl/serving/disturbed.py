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
(a prefix of one stream seeded by the grid index, see :func:`grid_stream`) and run at that
grid rate (<= 0.5% from the load), and both are cached by (servers, downtime per server, grid point, seconds): a
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
from numba import njit

from clover_rl.serving.kernel import served_latencies, simulate_kernel
from clover_rl.serving.metrics import IntervalMetrics
from clover_rl.serving.simulator import LEVELS, Draws, Servers, service_draws, simulate_arrays
from clover_rl.serving.steady import (
    LATENCY_LEVELS,
    STEADY_MAX_RHO,
    STEADY_REQUESTS,
    STEADY_SEED,
    grid_rng,
    rate_grid,
    steady_of_shape,
)
from clover_rl.workload.arrivals import poisson_arrivals

HEAD_MARGIN_S = 60.0
_CACHE_MAX = 20_000  # entries per cache (a head is ~1.5 kB)
_HEADS: OrderedDict[tuple, _Head] = OrderedDict()
_WHOLE: OrderedDict[tuple, IntervalMetrics] = OrderedDict()
_RESULTS: OrderedDict[tuple, IntervalMetrics] = OrderedDict()
_P50_95_99 = np.array([0.5, 0.95, 0.99])
_STREAMS: OrderedDict[tuple, tuple[float, np.ndarray, np.ndarray, np.ndarray]] = OrderedDict()
_STREAMS_MAX = 256
_STREAMS_BUDGET = 8_000_000  # requests held in all streams together (24 B each)


@dataclass(frozen=True, eq=False, slots=True)
class _Head:
    """The exactly simulated head of a disturbed interval (at one rate grid point), reduced to
    what the interval's metrics need (servers of one shape share it: per-position figures)."""

    seconds: float
    arrived: int
    served: int
    latency_q_ms: np.ndarray  # float32 at LATENCY_LEVELS (empty if nothing served)
    mean_ms: float
    busy_s: list[float]  # per server, dispatch order
    active_j: float  # active energy of the served requests
    accuracy_sum: float  # sum of the served requests' accuracy
    served_by_variant: dict[str, int]


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


_NEAREST: dict[float, tuple[int, float]] = {}


def _nearest_grid(rate: float) -> tuple[int, float]:
    hit = _NEAREST.get(rate)  # a few rates recur (constant or snapped loads, diurnal cycles)
    if hit is None:
        lo, r_lo, r_hi, w = rate_grid(rate)
        if len(_NEAREST) >= _CACHE_MAX:
            _NEAREST.clear()
        hit = _NEAREST[rate] = (lo, r_lo) if w < 0.5 else (lo + 1, r_hi)
    return hit


def grid_stream(grid: int, rate: float, seconds: float, kind: int) -> tuple[np.ndarray, Draws]:
    """Arrivals in [0, ``seconds``) at ``rate`` and their service draws: the prefix of one
    Poisson stream per (grid point, kind), drawn once and extended by doubling (cached). A
    prefix does not depend on how long the cached stream is: exponential gaps and uniform
    draws come from two generators (kinds ``kind`` and ``kind + 8``), element by element."""
    key = (grid, rate, kind)
    hit = _STREAMS.get(key)
    if hit is None or hit[0] < seconds:
        horizon = max(1.25 * seconds, 1.5 * hit[0] if hit else 0.0, 64.0 / rate)
        arr = poisson_arrivals(rate, horizon, grid_rng(STEADY_SEED, grid, kind))
        seg, frac = service_draws(grid_rng(STEADY_SEED, grid, kind + 8).random(arr.shape[0]))
        _STREAMS.pop(key, None)
        hit = _STREAMS[key] = (horizon, arr, seg, frac)
        while len(_STREAMS) > 1 and (len(_STREAMS) > _STREAMS_MAX
                                     or sum(v[1].shape[0] for v in _STREAMS.values()) > _STREAMS_BUDGET):
            _STREAMS.popitem(last=False)
    else:
        _STREAMS.move_to_end(key)
    n = int(hit[1].searchsorted(seconds))  # side="left"
    return hit[1][:n], (hit[2][:n], hit[3][:n])


def _simulate(servers: Servers, grid: int, rate: float, seconds: float, available_at: np.ndarray,
              timeout_s: float, kind: int):  # type: ignore[no-untyped-def]
    arr, draws = grid_stream(grid, rate, seconds, kind)
    return simulate_arrays(servers, arr, draws, seconds, timeout_s=timeout_s, available_at=available_at)


def whole_interval(servers: Servers, rate_rps: float, seconds: float, available_at: np.ndarray,
                   timeout_s: float) -> IntervalMetrics:
    """One exact simulation of the interval at the nearest grid rate (cached; CRN seeded)."""
    grid, r = _nearest_grid(rate_rps)
    key = (servers.key_id, available_at.tobytes(), grid, float(seconds), float(timeout_s))
    return _cached(_WHOLE, key, lambda: _simulate(servers, grid, r, seconds, available_at,
                                                  timeout_s, kind=3).metrics())


@njit(cache=True)
def _summary_ms(x: np.ndarray, frontend_s: float, levels: np.ndarray) -> tuple[np.ndarray, float]:
    """Quantiles (ms, float32) at ``levels`` and mean (ms) of the ascending served latencies
    ``x`` (s) plus the front end: ``sorted_quantiles`` of ``SimResult.sorted_latency_s()``."""
    n = x.shape[0]
    x = x + frontend_s
    out = np.empty(levels.shape[0], np.float32)
    for k in range(levels.shape[0]):
        pos = levels[k] * (n - 1)
        lo = int(np.floor(pos))
        hi = min(lo + 1, n - 1)
        t = pos - lo
        a, b = x[lo], x[hi]
        d = b - a
        out[k] = (b - d * (1.0 - t) if t >= 0.5 else a + d * t) * 1e3
    return out, x.mean() * 1e3


def _served_quantiles_ms(latency: np.ndarray, server: np.ndarray, frontend_s: float,
                         levels: np.ndarray) -> tuple[np.ndarray, float, int]:
    """Quantiles (ms, float32) at ``levels``, mean (ms) and count of the served requests'
    latencies (front end included); numpy sorts (numba's sort is ~4-15x slower here)."""
    x = np.empty(latency.shape[0])
    x = x[:served_latencies(latency, server, 0, x)]
    x.sort()
    if not x.shape[0]:
        return np.zeros(0, np.float32), 0.0, 0
    q, mean_ms = _summary_ms(x, frontend_s, levels)
    return q, mean_ms, x.shape[0]


@njit(cache=True)
def _simulate_served(arr: np.ndarray, seg: np.ndarray, frac: np.ndarray, quantiles: np.ndarray,
                     available_at: np.ndarray, timeout_s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`simulate_kernel` from fresh buffers, then the served requests' latencies (s, request
    order), the per-server busy seconds and counts: one compiled call per head."""
    n, k = arr.shape[0], quantiles.shape[0]
    latency, server = np.empty(n), np.empty(n, dtype=np.int64)
    busy, count = np.zeros(k), np.zeros(k, dtype=np.int64)
    simulate_kernel(arr, seg, frac, quantiles, available_at, timeout_s, latency, server, busy, count)
    x = np.empty(n)
    return x[:served_latencies(latency, server, 0, x)], busy, count


def _head(servers: Servers, grid: int, rate: float, seconds: float, available_at: np.ndarray,
          timeout_s: float) -> _Head:
    arr, (seg, frac) = grid_stream(grid, rate, seconds, kind=2)
    n = arr.shape[0]
    x, busy, count = _simulate_served(arr, seg, frac, servers.quantiles_s, available_at, float(timeout_s))
    x.sort()  # numpy's sort (see _served_quantiles_ms)
    served = x.shape[0]
    q, mean_ms = _summary_ms(x, servers.frontend_s, LATENCY_LEVELS) if served else (np.zeros(0, np.float32), 0.0)
    by_variant: dict[str, int] = {}
    for v, c in zip(servers.variants, count.tolist()):
        by_variant[v] = by_variant.get(v, 0) + c
    return _Head(seconds, n, served, q, float(mean_ms), busy.tolist(), float(np.dot(servers.active_power_w, busy)),
                 float(np.dot(servers.accuracy, count)), by_variant)


@njit(cache=True, inline="always")
def _cdf_at(x: float, q: np.ndarray, k: int, grid: np.ndarray) -> tuple[float, int]:
    """``np.interp(x, q, grid)`` for ascending ``x`` walked in order (``k``: the last index
    with ``q[k] <= x`` so far, -1 before the first): returns the value and the new ``k``."""
    n = q.shape[0]
    while k + 1 < n and q[k + 1] <= x:
        k += 1
    if k < 0:
        return grid[0], k
    if k == n - 1:
        return grid[n - 1], k
    return grid[k] + (x - q[k]) * (grid[k + 1] - grid[k]) / (q[k + 1] - q[k]), k


@njit(cache=True)
def _mix2(w1: float, q1: np.ndarray, w2: float, q2: np.ndarray, grid: np.ndarray,
          levels: np.ndarray) -> np.ndarray:
    """:func:`mixture_quantiles` of two parts by one merge walk (levels ascending): the same
    piecewise-linear CDF through the union of both parts' quantile points."""
    n1, n2 = q1.shape[0], q2.shape[0]
    m = n1 + n2
    x = np.empty(m)
    cdf = np.empty(m)
    i = j = 0
    k1 = k2 = -1
    for t in range(m):
        if j >= n2 or (i < n1 and q1[i] <= q2[j]):
            x[t] = q1[i]
            i += 1
        else:
            x[t] = q2[j]
            j += 1
    total = w1 + w2
    for t in range(m):
        c1, k1 = _cdf_at(x[t], q1, k1, grid)
        c2, k2 = _cdf_at(x[t], q2, k2, grid)
        cdf[t] = (w1 * c1 + w2 * c2) / total
    out = np.empty(levels.shape[0])
    k = -1
    for li in range(levels.shape[0]):
        v, k = _cdf_at(levels[li], cdf, k, x)
        out[li] = v
    return out


def mixture_quantiles(parts: list[tuple[float, np.ndarray]], levels: np.ndarray) -> np.ndarray:
    """Quantiles at ``levels`` of a mixture of distributions given as (weight, quantiles at
    ``LATENCY_LEVELS``); parts with no weight or no quantiles are left out."""
    parts = [(w, q) for w, q in parts if w > 0 and q.size]
    lv = np.asarray(levels, dtype=np.float64)
    if len(parts) == 2 and np.all(np.diff(lv) >= 0):  # a head and the steady rest: compiled
        return _mix2(float(parts[0][0]), parts[0][1], float(parts[1][0]), parts[1][1], LATENCY_LEVELS, lv)
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
    hit = _RESULTS.get(key)
    if hit is not None:
        _RESULTS.move_to_end(key)
        return hit
    available_at = servers.available_at(downtime_s)
    worst = float(available_at.max()) if downtime_s else 0.0  # the longest downtime (validated >= 0 there)
    return _cached(_RESULTS, key, lambda: _disturbed(servers, rate_rps, seconds, available_at, worst,
                                                     timeout_s, n_requests))


def _disturbed(servers: Servers, rate_rps: float, seconds: float, available_at: np.ndarray, worst_s: float,
               timeout_s: float, n_requests: int) -> IntervalMetrics:
    rho = rate_rps / servers.capacity_rps
    h = head_seconds(worst_s, rho)
    if not rho < STEADY_MAX_RHO or h >= seconds:
        return whole_interval(servers, rate_rps, seconds, available_at, timeout_s)
    steady = steady_of_shape(servers, rate_rps, timeout_s, n_requests)  # utilisation read by position
    grid, r = _nearest_grid(rate_rps)
    key = (servers.shape_id, available_at.tobytes(), grid, float(timeout_s))  # per-position figures
    hd = _cached(_HEADS, key, lambda: _head(servers, grid, r, h, available_at, timeout_s))
    rest = seconds - hd.seconds
    arrived_r = round(rate_rps * rest)
    served_r = arrived_r - round(arrived_r * steady.drop_fraction)
    arrived, served = hd.arrived + arrived_r, hd.served + served_r
    util = {sid: min(1.0, (b + su * rest) / seconds)
            for sid, b, su in zip(servers.ids, hd.busy_s, steady.utilization.values())}
    energy = servers.idle_power_w * seconds + hd.active_j + steady.active_j_per_request * served_r
    if not served:  # the shared "nothing served" interval (see IntervalMetrics.nothing_served)
        return IntervalMetrics.nothing_served(seconds, arrived, timeout_s=timeout_s, energy_j=energy,
                                              accuracy=float(servers.accuracy[0]), utilization=util,
                                              estimated=servers.estimated, backend="replay")
    if hd.served and served_r and hd.latency_q_ms.size and steady.latency_q_ms.size:
        p50, p95, p99 = _mix2(float(hd.served), hd.latency_q_ms, float(served_r), steady.latency_q_ms,
                              LATENCY_LEVELS, _P50_95_99).tolist()
    else:
        p50, p95, p99 = mixture_quantiles([(hd.served, hd.latency_q_ms), (served_r, steady.latency_q_ms)],
                                          _P50_95_99).tolist()
    mean = (hd.mean_ms * hd.served + steady.mean_ms * served_r) / served
    acc = (hd.accuracy_sum + steady.accuracy * served_r) / served
    share = {v: c / served for v, c in hd.served_by_variant.items()}
    for v, x in steady.variant_share.items():
        share[v] = share.get(v, 0.0) + x * served_r / served
    return IntervalMetrics(
        duration_s=float(seconds), arrived=arrived, served=served, dropped=arrived - served,
        p50_ms=p50, p95_ms=p95, p99_ms=p99, mean_ms=mean,
        throughput_rps=served / seconds, energy_j=energy, accuracy=acc, utilization=util,
        variant_share=dict(sorted(share.items())), estimated=servers.estimated, backend="replay",
    )


def clear_disturbed_cache() -> None:
    _STREAMS.clear()
    _HEADS.clear()
    _WHOLE.clear()
    _RESULTS.clear()


def warm_up() -> None:
    """Load the compiled kernels of a disturbed interval now (numba's on-disk cache takes ~1 s
    per process on first use): a backend calls this when it is built, not in its first step."""
    arr = np.array([0.0, 0.5])
    seg, frac = service_draws(np.array([0.3, 0.7]))
    q = np.tile(np.linspace(0.1, 0.2, LEVELS.shape[0]), (2, 1))
    lat, srv = np.empty(2), np.empty(2, dtype=np.int64)
    simulate_kernel(arr, seg, frac, q, np.zeros(2), 30.0, lat, srv, np.zeros(2), np.zeros(2, dtype=np.int64))
    ql, _, _ = _served_quantiles_ms(lat, srv, 0.0, LATENCY_LEVELS)
    _simulate_served(arr, seg, frac, q, np.zeros(2), 30.0)
    _mix2(1.0, ql, 1.0, ql, LATENCY_LEVELS, _P50_95_99)
