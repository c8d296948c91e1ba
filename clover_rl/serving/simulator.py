"""Discrete-event simulation of one configuration replicated on N GPUs: the replay engine.

Model (the paper's serving plane):

* Servers are every MIG slice of every GPU. A server's service time is drawn from the
  profile's quantiles by inverse-CDF sampling with linear interpolation (draw u ~ U(0,1),
  interpolate ``QUANTILE_LEVELS -> service_ms``), so the expected service time is exactly
  :attr:`ProfileEntry.mean_ms`.
* Requests wait in ONE central FIFO queue; the head of the queue goes to whichever server is
  free. **Tie rule**: when several servers are idle the fastest one (lowest mean service time)
  takes the request; equal means go to the lower GPU index, then the lower placement start.
  When none is idle the request takes the server that frees first (same tie rule on equal
  free times). Servers are stored in this priority order, so "lowest index" is the rule.
* Measured overhead outside the worker (:meth:`Profile.overhead_s`): dispatch is added to the
  slice's service times (it holds the slice), front end to latencies (server-side latency).
* A server may start unavailable (``available_at``: reconfiguration downtime); requests queue
  meanwhile.
* A request whose queueing wait would exceed ``timeout_s`` leaves the queue unserved and is
  counted in ``dropped`` (it consumes no service). Strictly greater drops: a wait equal to
  the timeout is served.
* Requests still queued when the interval ends are served (drain) so the latency of
  congestion shows up in the interval that caused it. Energy, utilisation and throughput are
  accounted over ``max(interval, last completion)``, reported as ``duration_s``: all of those
  figures then describe the same span, and the energy of the drained work is not lost.
* Energy J = idle power x GPUs x span + sum over served requests of slice active power x
  service time.
* Metrics never hold NaN (it would poison rewards and merged windows): with nothing served,
  latencies are 0 when nothing arrived and ``timeout_s`` when everything timed out, and the
  accuracy is that of the slice the next request would get (the fastest).

The per-request loop is a numba kernel on plain arrays (:mod:`clover_rl.serving.kernel`).

The cached steady state (microseconds per interval under constant load) lives in
:mod:`clover_rl.serving.steady`.
"""
from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from clover_rl.errors import ConfigError, positive_number
from clover_rl.mig.config import Configuration
from clover_rl.mig.partition import Slice
from clover_rl.services import ServiceSpec
from clover_rl.serving.kernel import served_latencies, simulate_kernel
from clover_rl.serving.metrics import IntervalMetrics
from clover_rl.serving.profile import QUANTILE_LEVELS, Profile
from clover_rl.serving.slots import slice_id, slot_assignment
from clover_rl.workload.arrivals import poisson_arrivals

DEFAULT_TIMEOUT_S = 30.0
LEVELS = np.asarray(QUANTILE_LEVELS, dtype=np.float64)


# --------------------------------------------------------------------------- servers


_KEY_IDS: dict[tuple, int] = {}
_SHAPE_DIGESTS: dict[int, str] = {}  # by shape_id (digests cost a repr of the whole key)
_ROW_DIGESTS: dict[tuple, str] = {}  # by (variant, service_ms, active power, accuracy)


@dataclass(frozen=True, eq=False)
class Servers:
    """All slices of a configuration on N GPUs, in dispatch-priority order (fastest first)."""

    ids: tuple[str, ...]
    variants: tuple[str, ...]
    gpu_index: np.ndarray  # int64 (S,)
    quantiles_s: np.ndarray  # float64 (S, len(QUANTILE_LEVELS)), seconds
    mean_s: np.ndarray  # float64 (S,)
    active_power_w: np.ndarray  # float64 (S,)
    accuracy: np.ndarray  # float64 (S,), variant accuracy
    idle_power_w: float  # all GPUs together
    n_gpus: int
    estimated: bool
    key: tuple = field(repr=False)  # hashable fingerprint for caches
    key_id: int = field(default=-1, repr=False)  # small interned stand-in for ``key``
    frontend_s: float = 0.0  # front-end overhead added to each served request's latency
    # interned ``key`` without the slice ids: servers that differ only in which placement holds
    # which variant simulate identically (same rows in the same dispatch order)
    shape_id: int = field(default=-1, repr=False)
    #: saturation throughput (req/s): sum over servers of 1 / mean service time
    capacity_rps: float = field(init=False, repr=False)
    _index: dict[str, int] = field(init=False, repr=False)  # slice id -> dispatch position

    def __post_init__(self) -> None:  # read at every switch: computed once, not per access
        object.__setattr__(self, "capacity_rps", float(np.add.reduce(1.0 / self.mean_s)))  # np.sum
        object.__setattr__(self, "_index", {sid: i for i, sid in enumerate(self.ids)})

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def shape_digest(self) -> str:
        """A digest of what the simulation depends on, without the slice ids (stable across
        processes: the key of the persistent steady-state store; kept per shape)."""
        d = _SHAPE_DIGESTS.get(self.shape_id)
        if d is None:  # a digest of the rows' digests: a row's repr is the costly part, once per row
            from clover_rl.serving.steady_store import digest

            rows = []
            for r in self.key[-1]:
                rd = _ROW_DIGESTS.get(r[1:])
                if rd is None:
                    rd = _ROW_DIGESTS[r[1:]] = digest(r[1:])
                rows.append(rd)
            d = digest(self.key[:-1] + tuple(rows))
            if self.shape_id >= 0:
                _SHAPE_DIGESTS[self.shape_id] = d
        return d

    def available_at(self, downtime_s: Mapping[str, float] | None) -> np.ndarray:
        """Per-server start-of-service times from a per-slice-id downtime map."""
        out = np.zeros(len(self.ids))
        if downtime_s:
            index = self._index
            for sid, d in downtime_s.items():
                i = index.get(sid)
                if i is None:
                    raise ConfigError(f"downtime given for unknown slice {sid!r} (known: {', '.join(self.ids)})")
                d = float(d)
                if not 0.0 <= d < math.inf:  # NaN fails too
                    raise ConfigError(f"downtime of slice {sid!r} must be a non-negative number, got {d!r}")
                out[i] = d
        return out


def build_servers(
    config: Configuration,
    profile: Profile,
    service: ServiceSpec,
    n_gpus: int,
    *,
    assignment: Sequence[tuple[Slice, str]] | None = None,
    gpu_assignments: Sequence[Sequence[tuple[Slice, str]]] | None = None,
    rows: dict[tuple[str, str], tuple] | None = None,
) -> Servers:
    """Resolve a configuration against the profile and service into server arrays; with
    ``gpu_assignments`` (one per GPU) each GPU runs its own (a fleet, :mod:`clover_rl.fleet`).
    ``rows``: a memo of resolved (slice profile, variant) rows that a caller building many
    configurations of the same profile, service and GPU count keeps between calls."""
    if isinstance(n_gpus, bool) or not isinstance(n_gpus, (int, np.integer)) or n_gpus < 1:
        raise ConfigError(f"n_gpus must be a positive integer, got {n_gpus!r}")
    if profile.gpu != config.gpu:
        raise ConfigError(f"profile is for GPU {profile.gpu!r} but configuration {config.label()} is for {config.gpu!r}")
    if gpu_assignments is None:
        gpu_assignments = [assignment if assignment is not None else slot_assignment(config)] * int(n_gpus)
    elif len(gpu_assignments) != int(n_gpus):
        raise ConfigError(f"gpu_assignments has {len(gpu_assignments)} GPUs, n_gpus is {n_gpus}")
    frontend_s, dispatch_s = profile.overhead_s()
    rows = {} if rows is None else rows
    order = []
    for g, a in enumerate(gpu_assignments):
        for slc, v in a:
            r = rows.get((slc.profile, v))
            if r is None:
                e = profile.entry(slc.profile, v)  # ConfigError naming (slice, variant)
                q = np.asarray(e.service_ms, dtype=np.float64) / 1e3 + dispatch_s
                if q.shape != (len(QUANTILE_LEVELS),):
                    raise ConfigError(f"profile entries must list {len(QUANTILE_LEVELS)} service-time quantiles")
                acc = service.variant(v).accuracy
                # (mean s, active W, accuracy, quantiles s, the row of the shape key)
                r = rows[(slc.profile, v)] = (e.mean_ms / 1e3 + dispatch_s, e.active_power_w, acc, q,
                                              (v, e.service_ms, e.active_power_w, acc))
            order.append((r[0], g, slc.start, len(order), slc, v, r))
    order.sort()  # the dispatch tie rule: mean service time, then GPU index, then placement start
    rs = [o[6] for o in order]
    ids = tuple([_slice_id(o[1], o[4]) for o in order])
    shape = tuple([r[4] for r in rs])
    head = (profile.idle_power_w, int(n_gpus), frontend_s, dispatch_s)
    key = head + (tuple([(sid,) + r for sid, r in zip(ids, shape)]),)
    return Servers(
        ids=ids,
        variants=tuple([o[5] for o in order]),
        gpu_index=np.array([o[1] for o in order], dtype=np.int64),
        quantiles_s=np.array([r[3] for r in rs]),
        mean_s=np.array([r[0] for r in rs], dtype=np.float64),
        active_power_w=np.array([r[1] for r in rs], dtype=np.float64),
        accuracy=np.array([r[2] for r in rs], dtype=np.float64),
        idle_power_w=float(profile.idle_power_w) * int(n_gpus),
        n_gpus=int(n_gpus),
        estimated=bool(profile.estimated),
        key=key,
        key_id=_KEY_IDS.setdefault(key, len(_KEY_IDS)),  # cheap to hash in the steady cache
        frontend_s=frontend_s,
        shape_id=_KEY_IDS.setdefault(head + (shape,), len(_KEY_IDS)),
    )


_SLICE_IDS: dict[tuple[int, int, str], str] = {}


def _slice_id(gpu_index: int, slc: Slice) -> str:
    """:func:`slice_id`, kept (a new configuration's servers name every slice)."""
    key = (gpu_index, slc.start, slc.profile)
    sid = _SLICE_IDS.get(key)
    if sid is None:
        sid = _SLICE_IDS[key] = slice_id(gpu_index, slc)
    return sid


# --------------------------------------------------------------------------- exact path

_P50_95_99 = np.array([0.5, 0.95, 0.99])


def sorted_quantiles(x: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Quantiles of an ascending, non-empty sample at ``levels`` in [0, 1].

    The same figures as ``np.quantile(x, levels)`` (linear method, numpy's own lerp), without
    its partition: a sort plus this lookup is ~4x cheaper for three levels and serves many.
    """
    pos = np.asarray(levels, dtype=np.float64) * (x.shape[0] - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, x.shape[0] - 1)
    t = pos - lo
    a, b = x[lo], x[hi]
    diff = b - a
    return np.where(t >= 0.5, b - diff * (1.0 - t), a + diff * t)


@dataclass(frozen=True, eq=False)
class SimResult:
    """Raw per-request output of one kernel run (latency s / NaN, server index / -1)."""

    servers: Servers
    arrivals: np.ndarray
    latency_s: np.ndarray
    server: np.ndarray
    busy_s: np.ndarray
    count: np.ndarray
    last_completion_s: float
    duration_s: float
    timeout_s: float

    def sorted_latency_s(self, skip: int = 0, out: np.ndarray | None = None) -> np.ndarray:
        """Latencies (s, front-end overhead included) of the served requests after the first
        ``skip``, ascending; in a view of ``out`` (length >= n - skip) when given."""
        if out is None:
            out = np.empty(max(self.latency_s.shape[0] - skip, 0))
        x = out[:served_latencies(self.latency_s, self.server, skip, out)]
        x.sort()
        x += self.servers.frontend_s
        return x

    def metrics(self, skip: int = 0, sorted_latency_s: np.ndarray | None = None) -> IntervalMetrics:
        """Summarise (``skip`` drops the first requests from latency stats: warm-up;
        ``sorted_latency_s`` is ``self.sorted_latency_s(skip)`` when the caller has it)."""
        sv = self.servers
        served = int(self.count.sum())
        arrived = int(self.arrivals.shape[0])
        span = max(self.duration_s, self.last_completion_s)
        lat = self.sorted_latency_s(skip) if sorted_latency_s is None else sorted_latency_s
        energy = sv.idle_power_w * span + float(np.dot(sv.active_power_w, self.busy_s))
        util = {sid: float(b / span) for sid, b in zip(sv.ids, self.busy_s)} if span > 0 else {}
        if not served:  # see module docstring: the shared "nothing served" interval
            return IntervalMetrics.nothing_served(span, arrived, timeout_s=self.timeout_s, energy_j=energy,
                                                  accuracy=float(sv.accuracy[0]), utilization=util,
                                                  estimated=sv.estimated, backend="replay")
        if lat.size:
            p50, p95, p99 = sorted_quantiles(lat, _P50_95_99) * 1e3
            mean = float(lat.mean()) * 1e3
        else:  # every served request fell in the warm-up skip: never NaN
            p50 = p95 = p99 = mean = 0.0
        acc = float(np.dot(sv.accuracy, self.count) / served)
        share: dict[str, float] = {}
        if served:
            for v, c in zip(sv.variants, self.count):
                share[v] = share.get(v, 0.0) + float(c) / served
        return IntervalMetrics(
            duration_s=float(span),
            arrived=arrived,
            served=served,
            dropped=arrived - served,
            p50_ms=float(p50),
            p95_ms=float(p95),
            p99_ms=float(p99),
            mean_ms=float(mean),
            throughput_rps=served / span if span > 0 else 0.0,
            energy_j=float(energy),
            accuracy=acc,
            utilization=util,
            variant_share=dict(sorted(share.items())),
            estimated=sv.estimated,
            backend="replay",
        )


Draws = tuple[np.ndarray, np.ndarray]  # (segment int64, fraction float64) per request


def service_draws(u: np.ndarray) -> Draws:
    """Uniform draws ``u`` (shape (n,)) as inverse-CDF positions in the service-time quantile
    table: segment k (the last with ``LEVELS[k] <= u``, at most ``len(LEVELS) - 2``) and
    fraction ``(u - LEVELS[k]) / (LEVELS[k+1] - LEVELS[k])``; a service time is then
    ``q[k] + frac * (q[k+1] - q[k])`` on any server (linear interpolation of its quantiles)."""
    u = np.ascontiguousarray(u, dtype=np.float64)
    k = np.minimum(np.searchsorted(LEVELS[1:-1], u, side="right"), LEVELS.shape[0] - 2).astype(np.int64)
    lo = LEVELS[k]
    return k, (u - lo) / (LEVELS[k + 1] - lo)


_SCRATCH = threading.local()


def scratch_buffer(name: str, n: int, dtype: type) -> np.ndarray:
    """A length-``n`` view of this thread's reusable buffer ``name`` (grown as needed)."""
    bufs = _SCRATCH.__dict__
    b = bufs.get(name)
    if b is None or b.shape[0] < n:
        b = bufs[name] = np.empty(max(n, 2 * (b.shape[0] if b is not None else 0)), dtype=dtype)
    return b[:n]


def simulate_arrays(
    servers: Servers,
    arrivals: np.ndarray,
    u: np.ndarray | Draws,
    duration_s: float,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    available_at: np.ndarray | None = None,
    scratch: bool = False,
) -> SimResult:
    """Run the kernel on given arrival times and uniform draws (one draw per request), or
    their :func:`service_draws` (what cached workloads keep: shared by every configuration).
    ``scratch``: per-request results in this thread's reused buffers (no fresh pages for a
    50,000-request steady state), valid until its next scratch call."""
    arrivals = np.ascontiguousarray(arrivals, dtype=np.float64)
    seg, frac = u if isinstance(u, tuple) else service_draws(u)
    if seg.shape != arrivals.shape or frac.shape != arrivals.shape:
        raise ConfigError(f"need one uniform draw per arrival ({frac.shape} vs {arrivals.shape})")
    n = arrivals.shape[0]
    avail = np.zeros(len(servers)) if available_at is None else np.ascontiguousarray(available_at, dtype=np.float64)
    latency = scratch_buffer("latency", n, np.float64) if scratch else np.empty(n)
    server = scratch_buffer("server", n, np.int64) if scratch else np.empty(n, dtype=np.int64)
    busy = np.zeros(len(servers))
    count = np.zeros(len(servers), dtype=np.int64)
    last = simulate_kernel(arrivals, seg, frac, servers.quantiles_s, avail, float(timeout_s),
                           latency, server, busy, count)
    return SimResult(servers, arrivals, latency, server, busy, count, float(last), float(duration_s),
                     float(timeout_s))


def _check_arrivals(arrivals: object, duration_s: float) -> np.ndarray:
    a = np.asarray(arrivals, dtype=np.float64)
    if a.ndim != 1:
        raise ConfigError("arrivals must be a 1-D array of times in seconds")
    if a.size:
        if not np.all(np.isfinite(a)) or a[0] < 0 or a[-1] >= duration_s:
            raise ConfigError(f"arrivals must lie in [0, {duration_s}) seconds")
        if np.any(np.diff(a) < 0):
            raise ConfigError("arrivals must be sorted in increasing time")
    return a


def simulate(
    config: Configuration,
    profile: Profile,
    service: ServiceSpec,
    n_gpus: int,
    rate_rps: float | None,
    duration_s: float,
    seed: int | np.random.Generator | None = 0,
    *,
    downtime_s: Mapping[str, float] | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    arrivals: np.ndarray | None = None,
    servers: Servers | None = None,
) -> IntervalMetrics:
    """Exact simulation of one interval from an empty queue.

    ``arrivals`` (sorted seconds in [0, duration)) replaces the Poisson process, and then
    ``rate_rps`` may be None. ``downtime_s`` maps slice ids (``gpu0/3g.20gb@4``) to the time
    each slice is unavailable from the interval start. ``servers`` skips resolving the
    configuration again (it must come from the same arguments).
    """
    duration_s = positive_number("duration_s", duration_s)
    timeout_s = positive_number("timeout_s", timeout_s)
    if servers is None:
        servers = build_servers(config, profile, service, n_gpus)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    if arrivals is None:
        rate = positive_number("rate_rps", rate_rps)
        arr = poisson_arrivals(rate, duration_s, rng)
    else:
        arr = _check_arrivals(arrivals, duration_s)
    u = rng.random(arr.shape[0])
    res = simulate_arrays(servers, arr, u, duration_s, timeout_s=timeout_s,
                          available_at=servers.available_at(downtime_s))
    return res.metrics()
