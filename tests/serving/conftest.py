"""Small in-code services and profiles for the simulator/replay tests, and a naive reference
simulator (linear scans, no heaps) the numba kernel must match exactly."""
from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest

from clover_rl.mig.catalog import get_gpu
from clover_rl.mig.config import Configuration
from clover_rl.services import ServiceSpec
from clover_rl.serving.profile import QUANTILE_LEVELS, Profile, ProfileEntry

GPU = get_gpu("a100-40gb")
SHAPE = (0.7, 0.8, 0.85, 0.92, 1.0, 1.1, 1.2, 1.3, 1.6, 2.0)  # relative service-time quantiles


def make_service() -> ServiceSpec:
    def var(name: str, acc: float) -> dict:
        return {"name": name, "accuracy": acc, "params_m": 1.0, "gflops": 1.0, "memory_mb": 100,
                "source": {"kind": "noop", "name": name}}

    return ServiceSpec.model_validate({
        "name": "toy", "task": "classification", "metric": "top-1",
        "request": {"kind": "image", "batch": 1, "height": 8, "width": 8},
        "variants": [var("small", 70.0), var("big", 80.0)],
    })


def make_profile(
    shape: tuple[float, ...] = SHAPE,
    base_ms: dict[str, float] | None = None,
    idle_w: float = 50.0,
    partition_change_s: float = 4.0,
    model_load_s: dict[str, float] | None = None,
    skip: tuple[tuple[str, str], ...] = (),
) -> Profile:
    """Service time ~ base_ms[variant] * 7 / compute slices, scaled by ``shape``."""
    base_ms = base_ms or {"small": 5.0, "big": 12.0}
    entries = {}
    for p in GPU.base_profiles():
        for v, ms in base_ms.items():
            if (p.name, v) in skip:
                continue
            m = ms * 7 / p.compute_slices
            entries[(p.name, v)] = ProfileEntry(p.name, v, tuple(x * m for x in shape),
                                                20.0 * p.compute_slices)
    return Profile("a100-40gb", "toy", idle_w, partition_change_s,
                   model_load_s if model_load_s is not None else {"small": 1.0, "big": 2.5}, entries)


def cfg(*pairs: tuple[str, str]) -> Configuration:
    return Configuration.of(GPU, pairs)


def reference_sim(arrivals: np.ndarray, u: np.ndarray, quantiles: np.ndarray,
                  available_at: np.ndarray, timeout_s: float) -> tuple[list[float], list[int]]:
    """Plain FCFS multi-server queue; servers indexed in priority order (lower = preferred)."""
    free = [float(x) for x in available_at]
    levels = QUANTILE_LEVELS
    lat: list[float] = []
    srv: list[int] = []
    for t, x in zip(arrivals.tolist(), u.tolist()):
        idle = [s for s in range(len(free)) if free[s] <= t]
        if idle:
            s = min(idle)
            start = t
        else:
            s = min(range(len(free)), key=lambda k: (free[k], k))
            start = free[s]
            if start - t > timeout_s:
                lat.append(math.nan)
                srv.append(-1)
                continue
        k = 0
        while k < len(levels) - 2 and x >= levels[k + 1]:
            k += 1
        frac = (x - levels[k]) / (levels[k + 1] - levels[k])
        q = quantiles[s]
        svc = q[k] + frac * (q[k + 1] - q[k])
        free[s] = start + svc
        lat.append(free[s] - t)
        srv.append(s)
    return lat, srv


@pytest.fixture
def service() -> ServiceSpec:
    return make_service()


@pytest.fixture
def profile() -> Profile:
    return make_profile()


@pytest.fixture
def reference() -> Callable[..., tuple[list[float], list[int]]]:
    return reference_sim


@pytest.fixture
def mk_profile() -> Callable[..., Profile]:
    return make_profile


@pytest.fixture
def mk_cfg() -> Callable[..., Configuration]:
    return cfg
