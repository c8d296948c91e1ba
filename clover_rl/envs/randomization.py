"""Domain randomisation of training episodes: carbon traces, synthetic shapes, load levels and
moving load patterns."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from clover_rl.carbon.base import CarbonTrace
from clover_rl.errors import ConfigError

LEVEL_REL = 0.10  # load levels 10% apart, as the planners' tables (clover_rl.objectives.table_rate)
LEVEL_RANGE = (-8, 7)  # 1.1^-8 = 0.47 ... 1.1^7 = 1.95 x the nominal rate


def load_levels(nominal_rps: float, k_range: tuple[int, int] = LEVEL_RANGE) -> np.ndarray:
    """Load levels (req/s, ascending) around ``nominal_rps``: for k in ``k_range``, the point of
    the replay model's steady-state rate grid (``clover_rl.serving.steady.rate_grid``, 1% apart)
    at or above ``nominal x 1.1^k``. On a grid point a steady state is one cached simulation
    (between two it interpolates two), so tables at these levels cost half."""
    import math

    from clover_rl.serving.steady import STEADY_GRID_REL, rate_grid

    step = math.log1p(STEADY_GRID_REL)
    out = []
    for k in range(k_range[0], k_range[1] + 1):
        i = math.ceil(math.log(nominal_rps * math.exp(k * math.log1p(LEVEL_REL))) / step - 1e-9)
        r = math.exp(i * step)
        for _ in range(8):  # the float whose grid index is i with zero interpolation weight
            lo, _, _, w = rate_grid(r)
            if lo == i and w <= 1e-12:
                break
            r = math.nextafter(r, math.inf)
        out.append(r)
    return np.array(out)


def snap_up(rate_rps: float, levels: np.ndarray) -> float:
    """The first of ``levels`` at or above ``rate_rps`` (the last one above them all)."""
    i = int(np.searchsorted(levels, rate_rps * (1 - 1e-9)))
    return float(levels[min(i, len(levels) - 1)])


@dataclass(frozen=True)
class Randomization:
    """Domain randomisation for training: which carbon traces episodes are drawn from, how often
    a synthetic trace replaces them, and how far the load level moves.

    ``snap_rate``: every interval's load is rounded *up* to the :func:`load_levels` (10% apart,
    the levels of the profile features), so a training run replays a few load levels whose
    steady states are computed once, instead of simulating every configuration at every load a
    diurnal or bursty pattern passes through (minutes instead of hours of CPU); the pattern's
    shape is kept to within 10%."""

    traces: tuple[str, ...] = ()  # shipped names / paths; empty = the scenario's own trace
    period: str = "train"
    synthetic_prob: float = 0.0
    rate_scale: tuple[float, float] = (1.0, 1.0)
    load_patterns: tuple[str, ...] = ()  # drawn per episode: see clover_rl.workload.randomize
    rate_traces: tuple[str, ...] = ()  # rate / request trace files for the "trace" pattern
    synthetic_levels: tuple[float, float] | None = None  # mean g/kWh range, drawn log-uniform
    synthetic_shapes: tuple[str, ...] = ("solar", "wind", "mixed")
    snap_rate: bool = False  # loads rounded up to the load levels of load_levels()

    def synthetic_trace(self, rng: np.random.Generator, days: int) -> CarbonTrace:
        """A synthetic trace of a shape drawn from ``synthetic_shapes``; with ``synthetic_levels``
        its mean is drawn log-uniform in that range and its swing and noise scale with it
        (x U(0.5, 1.5) of the shape's default ratio to its mean), so training sees grids from
        very clean to very dirty; without, the shape's default levels (clover_rl.carbon.synth)."""
        from clover_rl.carbon.synth import DEFAULTS, synthesize

        shape = str(rng.choice(list(self.synthetic_shapes)))
        seed = int(rng.integers(2**31))
        if self.synthetic_levels is None:
            return synthesize(shape, days, seed)  # type: ignore[arg-type]
        lo, hi = self.synthetic_levels
        mean = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
        d_mean, d_amp, d_noise = DEFAULTS[shape]
        k = mean / d_mean * float(rng.uniform(0.5, 1.5))
        return synthesize(shape, days, seed, mean=mean, amplitude=d_amp * k, noise=d_noise * k,  # type: ignore[arg-type]
                          floor=min(20.0, 0.5 * mean))

    @staticmethod
    def from_dict(d: dict | None) -> Randomization | None:
        if not d:
            return None
        allowed = {"traces", "period", "synthetic_prob", "rate_scale", "load_patterns", "rate_traces",
                   "synthetic_levels", "synthetic_shapes", "snap_rate"}
        bad = set(d) - allowed
        if bad:
            raise ConfigError(f"randomization: unknown field(s) {sorted(bad)} (allowed: {sorted(allowed)})")
        rs = tuple(float(x) for x in d.get("rate_scale", (1.0, 1.0)))
        if len(rs) != 2 or not 0 < rs[0] <= rs[1]:
            raise ConfigError(f"randomization.rate_scale must be [low, high] with 0 < low <= high, got {rs}")
        p = float(d.get("synthetic_prob", 0.0))
        if not 0.0 <= p <= 1.0:
            raise ConfigError(f"randomization.synthetic_prob must be in [0, 1], got {p}")
        from clover_rl.workload.randomize import check_patterns

        pats = check_patterns(d.get("load_patterns", ()), d.get("rate_traces", ()))
        levels = d.get("synthetic_levels")
        if levels is not None:
            levels = tuple(float(x) for x in levels)
            if len(levels) != 2 or not 0 < levels[0] <= levels[1]:
                raise ConfigError(f"randomization.synthetic_levels must be [low, high] g/kWh with 0 < low <= high, "
                                  f"got {list(levels)}")
        from clover_rl.carbon.synth import SHAPES

        shapes = tuple(str(x) for x in d.get("synthetic_shapes", ("solar", "wind", "mixed")))
        if not shapes or any(x not in SHAPES for x in shapes):
            raise ConfigError(f"randomization.synthetic_shapes: expected some of {', '.join(SHAPES)} (got {list(shapes)})")
        traces = d.get("traces", ())
        if traces == "train":  # every shipped training grid
            from clover_rl.carbon.shipped import grids

            traces = grids("train")
        return Randomization(tuple(traces), str(d.get("period", "train")), p, rs,  # type: ignore[arg-type]
                             pats, tuple(str(x) for x in d.get("rate_traces", ())), levels, shapes,
                             bool(d.get("snap_rate", False)))
