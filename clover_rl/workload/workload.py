"""Workloads: how many requests per second a service receives, as a function of time.

``t`` is seconds since the start of the workload (the episode or deployment), not wall
clock; :class:`DiurnalRate` places ``t = 0`` at ``start_hour`` o'clock so callers can align
its daily cycle with a carbon trace's UTC hours. Every workload can draw Poisson arrivals
and be scaled (``scale``) for randomised load levels.

Config form (scenario YAML, ``workload_from_config``)::

    {kind: constant, rate_rps: 2.5}             # or inter_arrival_s: 0.4
    {kind: diurnal, mean_rps: 2.5, amplitude: 0.5, peak_hour: 14}   # amplitude: relative, 0..1
    {kind: trace, path: rates.csv}              # timestamp,rate_rps or a single column
    {kind: trace, path: requests.csv, format: requests}   # one row per request (Azure LLM layout)
    # any kind: scale: 1.5  (multiplies the rate)

The builder is :func:`clover_rl.workload.build.workload_from_config`.
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import numpy as np

from clover_rl.errors import ConfigError
from clover_rl.workload.arrivals import RngLike, as_rng, nonhomogeneous_arrivals, poisson_arrivals
from clover_rl.workload.rate_trace import RateTrace


def _num(where: str, value: object, *, lo: float | None = None, hi: float | None = None,
         lo_open: bool = False, hi_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ConfigError(f"{where}: expected a number (got {value!r})")
    v = float(value)
    bad = not math.isfinite(v)
    if lo is not None and (v < lo or (lo_open and v == lo)):
        bad = True
    if hi is not None and (v > hi or (hi_open and v == hi)):
        bad = True
    if bad:
        lo_s = "" if lo is None else f"{'>' if lo_open else '>='} {lo:g}"
        hi_s = "" if hi is None else f"{'<' if hi_open else '<='} {hi:g}"
        rng = " and ".join(s for s in (lo_s, hi_s) if s)
        raise ConfigError(f"{where}: expected a finite number {rng} (got {value!r})")
    return v


class Workload(ABC):
    """A request rate over time (req/s)."""

    kind: ClassVar[str]

    @abstractmethod
    def rates(self, t_s: np.ndarray) -> np.ndarray:
        """Rates at the given times (vectorised)."""

    @abstractmethod
    def max_rate(self, t0_s: float, t1_s: float) -> float:
        """An upper bound of the rate on ``[t0_s, t1_s]`` (for thinning)."""

    @abstractmethod
    def scale(self, factor: float) -> Workload:
        """The same pattern at ``factor`` times the load."""

    @abstractmethod
    def to_config(self) -> dict[str, Any]:
        """The config dict that :func:`workload_from_config` turns back into this workload."""

    @abstractmethod
    def nominal_rate(self) -> float:
        """The workload's typical rate (req/s): what the SLA and reference are measured at and
        what the observation's rate is relative to (a trace: its mean over one replay)."""

    def rate_at(self, t_s: float) -> float:
        return float(self.rates(np.asarray([t_s], dtype=np.float64))[0])

    def mean_rate(self, t0_s: float, t1_s: float) -> float:
        """Average rate over ``[t0_s, t1_s)`` (e.g. the load of one control interval)."""
        if t1_s <= t0_s:
            return self.rate_at(t0_s)
        mid = t0_s + (np.arange(2048) + 0.5) * (t1_s - t0_s) / 2048
        return float(np.mean(self.rates(mid)))

    def arrivals(self, t0_s: float, duration_s: float, rng: RngLike) -> np.ndarray:
        """Poisson arrival times (relative to ``t0_s``, sorted) in ``[0, duration_s)``."""
        return nonhomogeneous_arrivals(self, duration_s, rng, start_s=t0_s)

    def describe(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.to_config().items())


@dataclass(frozen=True)
class ConstantRate(Workload):
    """A constant request rate (the paper's setting: Poisson at a fixed inter-arrival time)."""

    rate_rps: float
    kind: ClassVar[str] = "constant"

    def __post_init__(self) -> None:
        _num("workload.rate_rps", self.rate_rps, lo=0.0)

    def rates(self, t_s: np.ndarray) -> np.ndarray:
        return np.full(np.shape(t_s), float(self.rate_rps))

    def max_rate(self, t0_s: float, t1_s: float) -> float:
        return float(self.rate_rps)

    def mean_rate(self, t0_s: float, t1_s: float) -> float:
        return float(self.rate_rps)

    def nominal_rate(self) -> float:
        return float(self.rate_rps)

    def arrivals(self, t0_s: float, duration_s: float, rng: RngLike) -> np.ndarray:
        return poisson_arrivals(self.rate_rps, duration_s, rng)

    def scale(self, factor: float) -> ConstantRate:
        f = _num("scale", factor, lo=0.0)
        return ConstantRate(self.rate_rps * f)

    def to_config(self) -> dict[str, Any]:
        return {"kind": self.kind, "rate_rps": float(self.rate_rps)}


@dataclass(frozen=True)
class DiurnalRate(Workload):
    """``mean x (1 + amplitude x cos(2 pi (hour - peak_hour) / 24))``: a daily cycle peaking
    at ``peak_hour`` o'clock; ``amplitude`` is relative (0..1) so the rate never goes
    negative; ``t = 0`` is ``start_hour`` o'clock."""

    mean_rps: float
    amplitude: float = 0.5
    peak_hour: float = 14.0
    start_hour: float = 0.0
    period_s: float = 86400.0
    kind: ClassVar[str] = "diurnal"

    def __post_init__(self) -> None:
        _num("workload.mean_rps", self.mean_rps, lo=0.0)
        _num("workload.amplitude", self.amplitude, lo=0.0, hi=1.0)
        _num("workload.peak_hour", self.peak_hour, lo=0.0, hi=24.0, hi_open=True)
        _num("workload.start_hour", self.start_hour, lo=0.0, hi=24.0, hi_open=True)
        _num("workload.period_s", self.period_s, lo=0.0, lo_open=True)

    def _phase(self, t_s: np.ndarray | float) -> np.ndarray:
        offset_s = (self.start_hour - self.peak_hour) * self.period_s / 24.0
        return 2.0 * np.pi * (np.asarray(t_s, dtype=np.float64) + offset_s) / self.period_s

    def rates(self, t_s: np.ndarray) -> np.ndarray:
        return self.mean_rps * (1.0 + self.amplitude * np.cos(self._phase(t_s)))

    def max_rate(self, t0_s: float, t1_s: float) -> float:
        return float(self.mean_rps * (1.0 + self.amplitude))

    def mean_rate(self, t0_s: float, t1_s: float) -> float:
        if t1_s <= t0_s:
            return self.rate_at(t0_s)
        w = 2.0 * np.pi / self.period_s
        integral = (np.sin(self._phase(t1_s)) - np.sin(self._phase(t0_s))) / w
        return float(self.mean_rps * (1.0 + self.amplitude * integral / (t1_s - t0_s)))

    def nominal_rate(self) -> float:
        return float(self.mean_rps)

    def at_hour(self, hour: float) -> DiurnalRate:
        """The same cycle with ``t = 0`` at ``hour`` o'clock (align it with a trace's clock)."""
        return replace(self, start_hour=float(hour) % 24.0)

    def scale(self, factor: float) -> DiurnalRate:
        return replace(self, mean_rps=self.mean_rps * _num("scale", factor, lo=0.0))

    def to_config(self) -> dict[str, Any]:
        return {"kind": self.kind, "mean_rps": float(self.mean_rps),
                "amplitude": float(self.amplitude), "peak_hour": float(self.peak_hour),
                "start_hour": float(self.start_hour)}


@dataclass(frozen=True)
class TraceRate(Workload):
    """Replays a :class:`RateTrace` from its first sample; each value holds for one step.
    Past the end it wraps around (``wrap=True``, e.g. a one-day pattern) or holds the last
    value. ``factor`` scales the recorded rates."""

    trace: RateTrace
    wrap: bool = True
    factor: float = 1.0
    source: str = ""  # path it was loaded from ("" for an inline trace), for to_config
    options: dict[str, Any] = field(default_factory=dict)  # loader options, for to_config
    kind: ClassVar[str] = "trace"

    def __post_init__(self) -> None:
        if len(self.trace) == 0:
            raise ConfigError("workload.path: the rate trace is empty")
        _num("workload.scale", self.factor, lo=0.0)

    def _index(self, t_s: np.ndarray) -> np.ndarray:
        idx = np.floor(np.asarray(t_s, dtype=np.float64) / self.trace.resolution_s).astype(np.int64)
        n = len(self.trace)
        return np.mod(idx, n) if self.wrap else np.clip(idx, 0, n - 1)

    def rates(self, t_s: np.ndarray) -> np.ndarray:
        return self.trace.values[self._index(t_s)] * self.factor

    def max_rate(self, t0_s: float, t1_s: float) -> float:
        res = self.trace.resolution_s
        k0, k1 = math.floor(t0_s / res), math.floor(t1_s / res)
        if k1 - k0 + 1 >= len(self.trace):
            return float(self.trace.values.max() * self.factor)
        k = np.arange(k0, k1 + 1)
        return float(self.rates(k * res).max())

    def mean_rate(self, t0_s: float, t1_s: float) -> float:
        if t1_s <= t0_s:
            return self.rate_at(t0_s)
        res = self.trace.resolution_s
        k0, k1 = math.floor(t0_s / res), math.floor(t1_s / res)
        if k1 - k0 > 1_000_000:
            return super().mean_rate(t0_s, t1_s)
        ks = np.arange(k0, k1 + 1)
        lo = np.maximum(ks * res, t0_s)
        hi = np.minimum((ks + 1) * res, t1_s)
        w = np.clip(hi - lo, 0.0, None)
        return float(np.sum(self.rates(ks * res) * w) / (t1_s - t0_s))

    def nominal_rate(self) -> float:
        return float(np.mean(self.trace.values) * self.factor)

    @property
    def period_s(self) -> float:
        """Length of one replay of the trace (s)."""
        return len(self.trace) * self.trace.resolution_s

    def scale(self, factor: float) -> TraceRate:
        return replace(self, factor=self.factor * _num("scale", factor, lo=0.0))

    def to_config(self) -> dict[str, Any]:
        cfg: dict[str, Any] = {"kind": self.kind, "wrap": self.wrap}
        if self.source:
            cfg.update(path=self.source, format="rates", **self.options)
        else:  # inline (e.g. a randomised pattern): the rates themselves
            cfg.update(rates=[float(v) for v in self.trace.values],
                       interval_s=float(self.trace.resolution_s))
        if self.factor != 1.0:
            cfg["scale"] = self.factor
        return cfg


def random_scale(workload: Workload, rng: RngLike, low: float = 0.5,
                 high: float = 1.5) -> Workload:
    """The workload at a load level drawn uniformly from ``[low, high]`` (domain randomisation)."""
    lo = _num("low", low, lo=0.0)
    hi = _num("high", high, lo=lo)
    return workload.scale(float(as_rng(rng).uniform(lo, hi)))
