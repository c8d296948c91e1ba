"""Cached steady state of a configuration under constant Poisson load: the replay shortcut.

:func:`steady_state_servers` runs one long seeded simulation per (servers, rate grid point)
and caches it, so an interval's metrics under constant load cost microseconds; see
:class:`SteadyState` for when that shortcut is not valid (and :mod:`clover_rl.serving.disturbed`
for the intervals it cannot answer alone).
"""
from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field, replace

import numpy as np

from clover_rl.errors import ConfigError, positive_number
from clover_rl.mig.config import Configuration
from clover_rl.services import ServiceSpec
from clover_rl.serving.metrics import IntervalMetrics
from clover_rl.serving.profile import Profile
from clover_rl.serving.simulator import (
    DEFAULT_TIMEOUT_S,
    Draws,
    Servers,
    build_servers,
    scratch_buffer,
    service_draws,
    simulate_arrays,
    sorted_quantiles,
)
from clover_rl.serving.steady_store import STORE, digest
from clover_rl.workload.arrivals import poisson_arrivals

# Steady-state shortcut: rate grid spacing (relative), length of the cached simulation,
# share of it discarded as the empty-start transient, and the utilisation above which the
# shortcut is not trusted (latency there depends on the interval length / history).
STEADY_GRID_REL = 0.01
STEADY_REQUESTS = 50_000
STEADY_WARMUP = 0.05
STEADY_MAX_RHO = 0.95
STEADY_SEED = 20231112
_STEADY_CACHE_MAX = 100_000  # ~150 MB; above a full 1282-config sweep x 50 rates
# Latency distribution kept per steady state (quantile levels: 1% apart up to 0.9, 0.1% apart
# in the tail) so that intervals mixing a disturbed head with the steady rest get their
# percentiles from the mixture: a reconfiguration's backlog lands in the tail.
LATENCY_LEVELS = np.concatenate([np.linspace(0.0, 0.9, 91)[:-1], np.linspace(0.9, 1.0, 101)])


def rate_grid(rate: float, grid_rel: float = STEADY_GRID_REL) -> tuple[int, float, float, float]:
    """The log-spaced rate grid point at or below ``rate`` (``grid_rel`` apart): its index,
    the bracketing rates (r_lo, r_hi) and ``rate``'s interpolation weight between them."""
    step = math.log1p(grid_rel)
    lo = math.floor(math.log(rate) / step)
    r_lo = math.exp(lo * step)
    r_hi = math.exp((lo + 1) * step)
    return lo, r_lo, r_hi, (rate - r_lo) / (r_hi - r_lo)


def grid_rng(seed: int, grid_index: int, kind: int = 1) -> np.random.Generator:
    """Common random numbers per rate grid point: every configuration sees the same workload
    (``kind`` separates the streams of steady states, disturbed heads and whole intervals)."""
    return np.random.default_rng([seed, grid_index + (kind << 20)])


# --------------------------------------------------------------------------- steady state


@dataclass(frozen=True, slots=True)
class SteadyState:
    """Long-run behaviour of a configuration under constant Poisson load.

    ``saturated`` means rate >= capacity: no steady state without timeouts, and latency
    grows with the interval length. ``trusted`` (rho < ``STEADY_MAX_RHO``) tells whether the
    figures describe an interval of any length; callers fall back to :func:`simulate`
    otherwise (and for intervals that start with reconfiguration downtime).
    """

    rate_rps: float
    capacity_rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    drop_fraction: float
    active_j_per_request: float  # active energy per served request
    idle_power_w: float  # all GPUs
    accuracy: float
    utilization: dict[str, float]
    variant_share: dict[str, float]
    estimated: bool
    n_requests: int
    timeout_s: float = DEFAULT_TIMEOUT_S
    # latency quantiles (ms, float32) at LATENCY_LEVELS; empty when nothing was served
    latency_q_ms: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32),
                                     compare=False, repr=False)

    @property
    def rho(self) -> float:
        return self.rate_rps / self.capacity_rps

    @property
    def saturated(self) -> bool:
        return self.rho >= 1.0

    @property
    def trusted(self) -> bool:
        return self.rho < STEADY_MAX_RHO

    @property
    def power_w(self) -> float:
        """Mean power of all GPUs (idle + active), i.e. the energy rate per second."""
        return self.idle_power_w + self.active_j_per_request * self.rate_rps * (1.0 - self.drop_fraction)

    def interval(self, seconds: float) -> IntervalMetrics:
        """An interval's metrics as expected values (deterministic, no sampling noise)."""
        arrived = round(self.rate_rps * seconds)
        dropped = round(arrived * self.drop_fraction)
        served = arrived - dropped
        energy = self.idle_power_w * seconds + self.active_j_per_request * served
        if not served:
            return IntervalMetrics.nothing_served(seconds, arrived, timeout_s=self.timeout_s, energy_j=energy,
                                                  accuracy=self.accuracy, utilization=self.utilization,
                                                  estimated=self.estimated, backend="replay")
        return IntervalMetrics(
            duration_s=float(seconds),
            arrived=arrived,
            served=served,
            dropped=dropped,
            p50_ms=self.p50_ms,
            p95_ms=self.p95_ms,
            p99_ms=self.p99_ms,
            mean_ms=self.mean_ms,
            throughput_rps=served / seconds,
            energy_j=energy,
            accuracy=self.accuracy,
            utilization=dict(self.utilization),
            variant_share=dict(self.variant_share),
            estimated=self.estimated,
            backend="replay",
        )


_STEADY_CACHE: OrderedDict[tuple, SteadyState] = OrderedDict()
_FAMILIES: dict[tuple, str] = {}  # store family digests by (grid rate, timeout, requests, seed)
_MIXED: dict[tuple, SteadyState] = {}  # interpolated results by (servers shape, exact rate, ...)
_WORKLOADS: OrderedDict[tuple, tuple[float, np.ndarray, Draws]] = OrderedDict()
_WORKLOADS_MAX = 64  # ~1.2 MB each at 50,000 requests


def steady_workload(seed: int, grid_index: int, rate: float, n_requests: int) -> tuple[float, np.ndarray, Draws]:
    """The common random numbers of a rate grid point: (horizon s, arrival times, service
    draws of the uniform draws), the same for every configuration, so drawn once per grid point
    (cached)."""
    key = (seed, grid_index, rate, n_requests)
    hit = _WORKLOADS.get(key)
    if hit is not None:
        _WORKLOADS.move_to_end(key)
        return hit
    rng = grid_rng(seed, grid_index)
    horizon = n_requests / rate
    arr = poisson_arrivals(rate, horizon, rng)
    draws = service_draws(rng.random(arr.shape[0]))
    _WORKLOADS[key] = (horizon, arr, draws)
    if len(_WORKLOADS) > _WORKLOADS_MAX:
        _WORKLOADS.popitem(last=False)
    return horizon, arr, draws


def _steady_at(servers: Servers, rate: float, timeout_s: float, n_requests: int, seed: int,
               grid_index: int) -> SteadyState:
    # by shape: the figures do not depend on which placement holds which variant; utilisation
    # is keyed by the slice ids of the servers that computed it (see _own)
    key = (servers.shape_id if servers.shape_id >= 0 else servers.key, rate, timeout_s, n_requests, seed)
    hit = _STEADY_CACHE.get(key)
    if hit is not None:
        _STEADY_CACHE.move_to_end(key)
        return hit
    family = _FAMILIES.get((rate, timeout_s, n_requests, seed))
    if family is None:
        family = _FAMILIES[(rate, timeout_s, n_requests, seed)] = digest((rate, timeout_s, n_requests, seed))
    stored = STORE.get(family, grid_index, servers.shape_digest) if servers.shape_id >= 0 else None
    st = _from_row(stored, servers, rate, timeout_s) if stored is not None else None
    if st is None:
        st = _simulate_steady(servers, rate, timeout_s, n_requests, seed, grid_index)
        if servers.shape_id >= 0:
            STORE.put(family, grid_index, servers.shape_digest, _to_row(st))
    _STEADY_CACHE[key] = st
    if len(_STEADY_CACHE) > _STEADY_CACHE_MAX:
        _STEADY_CACHE.popitem(last=False)
    return st


def _to_row(st: SteadyState) -> tuple:
    return (st.p50_ms, st.p95_ms, st.p99_ms, st.mean_ms, st.drop_fraction, st.active_j_per_request,
            st.accuracy, tuple(st.utilization.values()), tuple(st.variant_share.items()), st.n_requests,
            st.latency_q_ms.tobytes())


def _from_row(row: tuple, servers: Servers, rate: float, timeout_s: float) -> SteadyState | None:
    """A stored row as the SteadyState of ``servers`` (None if it does not fit them)."""
    try:
        p50, p95, p99, mean, drop, aj, acc, util, share, n, q = row
        if len(util) != len(servers.ids):
            return None
        return SteadyState(
            rate_rps=rate, capacity_rps=servers.capacity_rps, p50_ms=p50, p95_ms=p95, p99_ms=p99, mean_ms=mean,
            drop_fraction=drop, active_j_per_request=aj, idle_power_w=servers.idle_power_w, accuracy=acc,
            utilization=dict(zip(servers.ids, util)), variant_share=dict(share), estimated=servers.estimated,
            n_requests=n, timeout_s=timeout_s, latency_q_ms=np.frombuffer(q, dtype=np.float32).copy())
    except (TypeError, ValueError):
        return None


def _simulate_steady(servers: Servers, rate: float, timeout_s: float, n_requests: int, seed: int,
                     grid_index: int) -> SteadyState:
    horizon, arr, draws = steady_workload(seed, grid_index, rate, n_requests)
    res = simulate_arrays(servers, arr, draws, horizon, timeout_s=timeout_s, scratch=True)
    skip = int(arr.shape[0] * STEADY_WARMUP)
    lat = res.sorted_latency_s(skip, out=scratch_buffer("steady_latency", arr.shape[0], np.float64))
    m = res.metrics(skip=skip, sorted_latency_s=lat)
    lat_q = (sorted_quantiles(lat, LATENCY_LEVELS) * 1e3).astype(np.float32) if lat.size else np.zeros(0, np.float32)
    # Rates over the arrival horizon (not the drained span): the long-run shares.
    n = max(arr.shape[0], 1)
    served = m.served
    return SteadyState(
        rate_rps=rate,
        capacity_rps=servers.capacity_rps,
        p50_ms=m.p50_ms, p95_ms=m.p95_ms, p99_ms=m.p99_ms, mean_ms=m.mean_ms,
        drop_fraction=m.dropped / n,
        active_j_per_request=float(np.dot(servers.active_power_w, res.busy_s) / served) if served else 0.0,
        idle_power_w=servers.idle_power_w,
        accuracy=m.accuracy,
        utilization={sid: min(1.0, float(b / horizon)) for sid, b in zip(servers.ids, res.busy_s)},
        variant_share=m.variant_share,
        estimated=servers.estimated,
        n_requests=int(arr.shape[0]),
        timeout_s=timeout_s,
        latency_q_ms=lat_q,
    )


def _own(st: SteadyState, servers: Servers) -> SteadyState:
    """``st`` with its utilisation keyed by ``servers``' slice ids (it may come from servers
    of the same shape with other placements; values are in dispatch order)."""
    if tuple(st.utilization) == servers.ids:
        return st
    return replace(st, utilization=dict(zip(servers.ids, st.utilization.values())))


def _mix_dict(a: dict[str, float], b: dict[str, float], w: float) -> dict[str, float]:
    if a.keys() == b.keys():  # always, for two grid points of the same servers
        return {k: x + w * (b[k] - x) for k, x in a.items()}
    return {k: a.get(k, 0.0) + w * (b.get(k, 0.0) - a.get(k, 0.0)) for k in sorted(a.keys() | b.keys())}


def steady_state_servers(
    servers: Servers,
    rate_rps: float,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    n_requests: int = STEADY_REQUESTS,
    seed: int = STEADY_SEED,
    grid_rel: float = STEADY_GRID_REL,
) -> SteadyState:
    """Steady state at ``rate_rps``: linear interpolation between the two cached simulations
    on the log-spaced rate grid (``grid_rel`` apart, 1% by default) that bracket it."""
    rate = positive_number("rate_rps", rate_rps)
    timeout_s = positive_number("timeout_s", timeout_s)
    if n_requests < 1000:
        raise ConfigError(f"n_requests for the steady state must be >= 1000, got {n_requests}")
    if not 0 < grid_rel <= 1:
        raise ConfigError(f"grid_rel must be in (0, 1], got {grid_rel!r}")
    return _own(steady_of_shape(servers, rate, timeout_s, int(n_requests), seed, grid_rel), servers)


def steady_of_shape(servers: Servers, rate: float, timeout_s: float, n_requests: int = STEADY_REQUESTS,
                    seed: int = STEADY_SEED, grid_rel: float = STEADY_GRID_REL) -> SteadyState:
    """:func:`steady_state_servers` without the argument checks and with its utilisation in
    ``servers``' dispatch order but possibly keyed by the slice ids of other servers of the same
    shape (callers that read it by position: :mod:`clover_rl.serving.disturbed`). Cached by
    shape: a configuration reached from another placement shares the entry."""
    key = (servers.shape_id, rate, timeout_s, n_requests, seed, grid_rel)
    hit = _MIXED.get(key) if servers.shape_id >= 0 else None
    if hit is None:
        hit = _interpolated(servers, rate, timeout_s, n_requests, seed, grid_rel)
        if servers.shape_id >= 0:
            if len(_MIXED) >= _STEADY_CACHE_MAX:
                _MIXED.clear()
            _MIXED[key] = hit
    return hit


def _interpolated(servers: Servers, rate: float, timeout_s: float, n_requests: int, seed: int,
                  grid_rel: float) -> SteadyState:
    lo, r_lo, r_hi, w = rate_grid(rate, grid_rel)
    a = _steady_at(servers, r_lo, timeout_s, n_requests, seed, lo)
    if w <= 1e-12:
        return _own(a, servers)
    b = _steady_at(servers, r_hi, timeout_s, n_requests, seed, lo + 1)
    def mix(x: float, y: float) -> float:
        return x + w * (y - x)

    return SteadyState(
        rate_rps=rate,
        capacity_rps=a.capacity_rps,
        p50_ms=mix(a.p50_ms, b.p50_ms),
        p95_ms=mix(a.p95_ms, b.p95_ms),
        p99_ms=mix(a.p99_ms, b.p99_ms),
        mean_ms=mix(a.mean_ms, b.mean_ms),
        drop_fraction=mix(a.drop_fraction, b.drop_fraction),
        active_j_per_request=mix(a.active_j_per_request, b.active_j_per_request),
        idle_power_w=a.idle_power_w,
        accuracy=mix(a.accuracy, b.accuracy),
        utilization=dict(zip(servers.ids, (x + w * (y - x) for x, y in
                                           zip(a.utilization.values(), b.utilization.values())))),
        variant_share=_mix_dict(a.variant_share, b.variant_share, w),
        estimated=a.estimated,
        n_requests=min(a.n_requests, b.n_requests),
        timeout_s=a.timeout_s,
        latency_q_ms=(a.latency_q_ms + np.float32(w) * (b.latency_q_ms - a.latency_q_ms)
                      if a.latency_q_ms.shape == b.latency_q_ms.shape else a.latency_q_ms),
    )


def steady_state(
    config: Configuration,
    profile: Profile,
    service: ServiceSpec,
    n_gpus: int,
    rate_rps: float,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    n_requests: int = STEADY_REQUESTS,
    seed: int = STEADY_SEED,
) -> SteadyState:
    """Cached steady state of a configuration (see :func:`steady_state_servers`)."""
    servers = build_servers(config, profile, service, n_gpus)
    return steady_state_servers(servers, rate_rps, timeout_s=timeout_s, n_requests=n_requests, seed=seed)


def clear_steady_cache() -> None:
    _STEADY_CACHE.clear()
    _MIXED.clear()
    _WORKLOADS.clear()
