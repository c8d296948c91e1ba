"""Domain randomisation of training episodes: carbon traces, synthetic shapes, load levels and
moving load patterns."""
from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    field_validator,
    model_validator,
)

from clover_rl.carbon.base import CarbonTrace
from clover_rl.config_io import PositiveFinite as _Pos
from clover_rl.config_io import parse_model
from clover_rl.errors import ConfigError
from clover_rl.workload.randomize import Pattern

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


class Randomization(BaseModel):
    """Domain randomisation for training: which carbon traces episodes are drawn from, how often
    a synthetic trace replaces them, and how far the load level moves.

    ``snap_rate``: every interval's load is rounded *up* to the :func:`load_levels` (10% apart,
    the levels of the profile features), so a training run replays a few load levels whose
    steady states are computed once, instead of simulating every configuration at every load a
    diurnal or bursty pattern passes through (minutes instead of hours of CPU); the pattern's
    shape is kept to within 10%."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    traces: tuple[str, ...] = Field((), description=(
        "carbon traces episodes are drawn from: shipped names / paths, or 'train' (every shipped training "
        "grid); empty = the scenario's own trace"))
    period: Literal["train", "eval", "all"] = Field("train", description="the traces' period episodes come from")
    synthetic_prob: float = Field(0.0, ge=0, le=1, description="probability an episode gets a synthetic trace")
    rate_scale: tuple[_Pos, _Pos] = Field((1.0, 1.0), description=(
        "[low, high]: the episode's load level is drawn uniformly in this range (x the nominal rate)"))
    load_patterns: tuple[Pattern, ...] = Field((), description=(
        "load patterns drawn per episode (constant, diurnal, bursty, trace): see clover_rl.workload.randomize"))
    rate_traces: tuple[str, ...] = Field((), description="rate / request trace files for the 'trace' pattern")
    synthetic_levels: tuple[_Pos, _Pos] | None = Field(None, description=(
        "[low, high] mean g/kWh of synthetic traces, drawn log-uniform"))
    synthetic_shapes: tuple[str, ...] = Field(("solar", "wind", "mixed"), min_length=1, description=(
        "shapes of synthetic traces (clover_rl.carbon.synth.SHAPES)"))
    snap_rate: StrictBool = Field(False, description="loads rounded up to the load levels of load_levels()")

    @field_validator("traces", mode="before")
    @classmethod
    def _train_grids(cls, v: object) -> object:
        if v == "train":  # every shipped training grid
            from clover_rl.carbon.shipped import grids

            return tuple(grids("train"))
        return v

    @field_validator("rate_scale", "synthetic_levels")
    @classmethod
    def _ordered(cls, v: tuple[float, float] | None) -> tuple[float, float] | None:
        if v is not None and v[0] > v[1]:
            raise ConfigError("must be [low, high] with 0 < low <= high")
        return v

    @field_validator("synthetic_shapes")
    @classmethod
    def _shapes(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        from clover_rl.carbon.synth import SHAPES

        bad = [x for x in v if x not in SHAPES]
        if bad:
            raise ConfigError(f"expected some of {', '.join(SHAPES)} (got {bad[0]!r})")
        return v

    @field_validator("traces", "load_patterns", "rate_traces", "synthetic_shapes", mode="before")
    @classmethod
    def _one_is_a_list(cls, v: object) -> object:
        return [v] if isinstance(v, str) and v != "train" else v

    @field_validator("rate_traces")
    @classmethod
    def _files_exist(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for t in v:
            if not Path(t).expanduser().exists():
                raise ConfigError(f"{t}: file not found")
        return v

    @model_validator(mode="after")
    def _trace_pattern_has_files(self) -> Randomization:
        if "trace" in self.load_patterns and not self.rate_traces:
            raise ConfigError("load_patterns: 'trace' needs rate_traces (files)")
        return self

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
    def from_dict(d: dict | None, where: str = "randomization") -> Randomization | None:
        """The randomisation of a mapping (None for an empty one); a bad value is a one-line
        ConfigError ``randomization: field F: ... (got V)``."""
        if not d:
            return None
        return parse_model(Randomization, d, where)
