"""Moving request rates for training and evaluation (domain randomisation of the load).

A pattern is drawn per episode around the scenario's nominal rate ``r`` (all draws from the
env's ``np_random``):

* ``constant`` -- ``r``;
* ``diurnal`` -- ``r (1 + a cos(2 pi (h - peak) / 24))``, ``a ~ U(0.2, 0.8)``, ``peak ~ U(0, 24)``;
* ``bursty`` -- hourly rates: a mild daily cycle (``a ~ U(0, 0.3)``), lognormal noise (sigma 0.1)
  and bursts (each hour starts one with probability 0.06; 1-4 h at ``U(1.5, 2.5) x``), rescaled
  so the episode's mean is ``r``;
* ``trace`` -- a file from ``rate_traces`` (rate or per-request trace) scaled to mean ``r``,
  started at a random offset.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, get_args

import numpy as np

from clover_rl.errors import ConfigError
from clover_rl.workload.build import workload_from_config
from clover_rl.workload.rate_trace import RateTrace
from clover_rl.workload.workload import ConstantRate, DiurnalRate, TraceRate, Workload

Pattern = Literal["constant", "diurnal", "bursty", "trace"]
PATTERNS: tuple[str, ...] = get_args(Pattern)


def _inline(values: np.ndarray, step_s: float, name: str) -> TraceRate:
    times = np.datetime64("2000-01-01T00:00:00", "s") + (np.arange(len(values)) * step_s).astype("timedelta64[s]")
    return TraceRate(RateTrace(times, values, name, f"randomised {name} load"), wrap=True)


def random_workload(kind: str, nominal_rps: float, steps: int, rng: np.random.Generator, *,
                    step_s: float = 3600.0, traces: Sequence[str] = ()) -> Workload:
    """A workload of pattern ``kind`` around ``nominal_rps`` for an episode of ``steps`` intervals."""
    if kind == "constant":
        return ConstantRate(nominal_rps)
    if kind == "diurnal":
        return DiurnalRate(nominal_rps, float(rng.uniform(0.2, 0.8)), float(rng.uniform(0.0, 24.0)))
    n = max(int(steps), 1)
    if kind == "bursty":
        h = np.arange(n) * step_s / 3600.0
        base = 1.0 + rng.uniform(0.0, 0.3) * np.cos(2 * np.pi * (h - rng.uniform(0, 24)) / 24.0)
        mult = np.exp(rng.normal(0.0, 0.1, n))
        i = 0
        while i < n:
            if rng.random() < 0.06:
                length = int(rng.integers(1, 5))
                mult[i:i + length] *= rng.uniform(1.5, 2.5)
                i += length
            i += 1
        vals = base * mult
        return _inline(vals * nominal_rps / vals.mean(), step_s, "bursty")
    if kind == "trace":
        if not traces:
            raise ConfigError("randomization.load_patterns: 'trace' needs randomization.rate_traces")
        w = workload_from_config({"kind": "trace", "path": str(traces[int(rng.integers(len(traces)))])})
        mean = w.nominal_rate()
        if mean <= 0:
            raise ConfigError("randomization.rate_traces: a trace with no load")
        offset = float(rng.uniform(0.0, max(float(getattr(w, "period_s", 0.0)), step_s)))
        grid = offset + np.arange(n) * step_s
        vals = np.array([w.mean_rate(t, t + step_s) for t in grid])
        return _inline(vals * nominal_rps / mean, step_s, "trace")
    raise ConfigError(f"randomization.load_patterns: unknown {kind!r} (known: {', '.join(PATTERNS)})")
