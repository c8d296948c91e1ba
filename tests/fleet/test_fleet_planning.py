"""The hindsight fleet plan (Viterbi with a per-GPU switching cost) against brute force."""
from __future__ import annotations

from itertools import product

import numpy as np
import pytest

from clover_rl.envs.actions import ActionCatalog
from clover_rl.fleet.catalog import FleetCatalog
from clover_rl.fleet.planning import change_matrix, plan_fleet
from clover_rl.mig.catalog import get_gpu
from clover_rl.services import load_service

BASE = ActionCatalog(get_gpu("a100-40gb"), load_service("efficientnet"))


def _tiny(g: int) -> tuple[list, np.ndarray]:
    feas = [int(i) for i in np.flatnonzero(BASE.feasible)[:3]]
    cat = FleetCatalog(BASE, g, tuple(feas), g)
    keep = sorted(set(feas) | set(range(len(BASE), len(cat))))  # the 3 identical fleets + all mixes
    fleets = [cat.configs[i] for i in keep]
    return fleets, change_matrix(fleets)


@pytest.mark.parametrize("g", [2, 3])
def test_change_matrix_counts_reconfigured_gpus(g: int) -> None:
    fleets, ch = _tiny(g)
    for i, a in enumerate(fleets):
        for j, b in enumerate(fleets):
            assert ch[i, j] == b.changes_from(a)
    assert (np.diag(ch) == 0).all()


@pytest.mark.parametrize(("g", "seed", "cost", "start"), [(2, 0, 0.1, None), (3, 1, 0.05, 0), (3, 2, 0.0, 2),
                                                          (3, 3, 1.0, 4)])
def test_plan_matches_brute_force(g: int, seed: int, cost: float, start: int | None) -> None:
    fleets, ch = _tiny(g)
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(3, len(fleets)))
    v[1, rng.integers(len(fleets))] = -np.inf  # a masked fleet
    plan, total = plan_fleet(v, ch, cost, start)

    def value(seq: tuple[int, ...]) -> float:
        prev = [start] if start is not None else []
        path = prev + list(seq)
        return float(sum(v[t, a] for t, a in enumerate(seq))
                     - cost * sum(ch[x, y] for x, y in zip(path, path[1:])))

    best = max(product(range(len(fleets)), repeat=3), key=value)
    assert total == pytest.approx(value(best))
    assert value(tuple(plan)) == pytest.approx(total)


def test_plan_refuses_an_interval_with_nothing_allowed() -> None:
    with pytest.raises(ValueError, match="no allowed"):
        plan_fleet(np.array([[0.0, 1.0], [-np.inf, -np.inf]]), np.zeros((2, 2)), 0.1)
