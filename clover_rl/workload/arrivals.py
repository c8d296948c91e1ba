"""Request arrival processes: homogeneous Poisson and non-homogeneous Poisson (thinning).

Times are seconds relative to the start of the generated window, sorted ascending. All
randomness comes from the ``rng`` passed in (a ``numpy.random.Generator`` or an int seed),
so an episode replays identically under its seed.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Protocol, runtime_checkable

import numpy as np

from clover_rl.errors import ConfigError

RngLike = np.random.Generator | int | np.integer


@runtime_checkable
class RateFunction(Protocol):
    """Anything with a vectorised rate and an upper bound over a window (a Workload)."""

    def rates(self, t_s: np.ndarray) -> np.ndarray: ...

    def max_rate(self, t0_s: float, t1_s: float) -> float: ...


def as_rng(rng: RngLike) -> np.random.Generator:
    """A Generator from a Generator or an int seed; ``None`` is refused (seeded runs only)."""
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool) and rng >= 0:
        return np.random.default_rng(int(rng))
    raise ConfigError(f"rng: expected a numpy Generator or a non-negative int seed (got {rng!r})")


def _nonneg(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ConfigError(f"{name}: expected a number (got {value!r})")
    v = float(value)
    if not math.isfinite(v) or v < 0:
        raise ConfigError(f"{name}: expected a finite number >= 0 (got {value!r})")
    return v


def poisson_arrivals(rate_rps: float, duration_s: float, rng: RngLike) -> np.ndarray:
    """Sorted arrival times in ``[0, duration_s)`` of a Poisson process at ``rate_rps``.

    The one Poisson generator of the project (simulator, load generators, workloads): cumulated
    exponential gaps, O(n) without a sort. Rate or duration 0 gives no arrivals.
    """
    rate = _nonneg("rate_rps", rate_rps)
    dur = _nonneg("duration_s", duration_s)
    g = as_rng(rng)
    if rate == 0 or dur == 0:
        return np.empty(0)
    mean_n = rate * dur
    size = int(mean_n + 6.0 * math.sqrt(mean_n) + 16)
    t = np.cumsum(g.exponential(1.0 / rate, size))
    while t[-1] < dur:  # vanishingly rare: extend
        t = np.concatenate([t, np.cumsum(g.exponential(1.0 / rate, size)) + t[-1]])
    return t[: np.searchsorted(t, dur, side="left")]


def _evaluate(rate: Callable | RateFunction, t: np.ndarray) -> np.ndarray:
    if isinstance(rate, RateFunction):
        out = np.asarray(rate.rates(t), dtype=np.float64)
    else:
        try:
            out = np.asarray(rate(t), dtype=np.float64)
        except (TypeError, ValueError):
            out = None  # type: ignore[assignment]
        if out is None or out.shape != t.shape:
            out = np.array([float(rate(float(x))) for x in t])
    if out.size and (not np.all(np.isfinite(out)) or out.min() < 0):
        raise ConfigError("rate: the rate function returned a negative or non-finite rate")
    return out


def nonhomogeneous_arrivals(rate: Callable | RateFunction, duration_s: float, rng: RngLike, *,
                            start_s: float = 0.0, max_rate: float | None = None) -> np.ndarray:
    """Arrivals in ``[0, duration_s)`` of a Poisson process whose rate at relative time ``t``
    is ``rate(start_s + t)`` (Lewis-Shedler thinning).

    ``rate`` is a Workload (anything with ``rates``/``max_rate``) or a callable of time in
    seconds (vectorised or scalar). ``max_rate`` must bound the rate on the window; without
    it, a Workload's own bound is used, or a callable is probed on a 1-second grid with 10%
    headroom, and a candidate whose rate exceeds the bound raises ConfigError.
    """
    dur = _nonneg("duration_s", duration_s)
    g = as_rng(rng)
    if dur == 0:
        return np.empty(0)
    if max_rate is None:
        if isinstance(rate, RateFunction):
            bound = float(rate.max_rate(start_s, start_s + dur))
        else:
            grid = start_s + np.linspace(0.0, dur, int(min(max(dur, 2), 100_000)) + 1)
            bound = 1.1 * float(_evaluate(rate, grid).max())
    else:
        bound = _nonneg("max_rate", max_rate)
    if bound <= 0:
        return np.empty(0)
    cand = poisson_arrivals(bound, dur, g)
    if cand.size == 0:
        return cand
    r = _evaluate(rate, start_s + cand)
    if r.max() > bound * (1 + 1e-9):
        raise ConfigError(f"max_rate: rate {r.max():g} req/s exceeds the thinning bound {bound:g}")
    keep = g.uniform(0.0, 1.0, cand.size) * bound < r
    return cand[keep]
