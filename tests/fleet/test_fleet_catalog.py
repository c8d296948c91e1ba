"""Fleet types and the fleet action space: enumeration, masks, labels, fewest-change assignment."""
from __future__ import annotations

from itertools import combinations

import numpy as np
import pytest

from clover_rl.envs.actions import ActionCatalog
from clover_rl.errors import ConfigError
from clover_rl.fleet import FleetConfiguration, FleetLayout, assign_gpus
from clover_rl.fleet.catalog import FleetCatalog, mix_counts
from clover_rl.mig.catalog import get_gpu
from clover_rl.services import load_service

BASE = ActionCatalog(get_gpu("a100-40gb"), load_service("efficientnet"))


def _cands(k: int) -> tuple[int, ...]:
    feas = np.flatnonzero(BASE.feasible)
    return tuple(int(i) for i in feas[:: len(feas) // k][:k])


@pytest.mark.parametrize(("g", "levels", "want"), [(8, 8, (1, 2, 3, 4, 5, 6, 7)), (3, 8, (1, 2)),
                                                    (64, 8, (8, 16, 24, 32, 40, 48, 56)), (2, 4, (1,))])
def test_mix_counts(g: int, levels: int, want: tuple[int, ...]) -> None:
    assert mix_counts(g, levels) == want


@pytest.mark.parametrize("g", [3, 8, 64])
def test_catalog_enumerates_identical_then_every_mix_once(g: int) -> None:
    cands = _cands(5)
    cat = FleetCatalog(BASE, g, cands, 8)
    n_mix = len(list(combinations(cands, 2))) * len(mix_counts(g, 8))
    assert len(cat) == len(BASE) + n_mix == len(cat.configs) == len(cat.index)  # all distinct
    assert len(cat) < len(BASE) + 80  # independent of the GPU count beyond 8
    for i in range(len(BASE)):  # identical fleets keep the per-GPU catalog's indices
        assert cat.configs[i] == FleetConfiguration.identical(BASE.configs[i], g)
    assert all(f.n_gpus == g for f in cat.configs)
    assert all(len(f.counts) == 2 and set(f.configs) <= {BASE.configs[c] for c in cands}
               for f in cat.configs[len(BASE):])
    assert cat.identical_mask.sum() == len(BASE)
    assert cat.graphs.shape == (len(cat), BASE.graphs.shape[1])


def test_masks_follow_per_gpu_feasibility_and_labels_round_trip() -> None:
    cands = _cands(4)
    cat = FleetCatalog(BASE, 8, cands, 8)
    np.testing.assert_array_equal(cat.feasible[: len(BASE)], BASE.feasible)
    assert cat.feasible[len(BASE):].all()  # candidates are feasible configurations
    bad = int(np.flatnonzero(~BASE.feasible)[0])
    assert "needs" in cat.why_infeasible(bad)
    for i in (0, cat.base_index, len(BASE), len(cat) - 1):
        f = cat.configs[i]
        assert cat.lookup(f.label()) == i == cat.lookup(f) == cat.lookup(i)
    mix = cat.configs[len(BASE) + 2]
    a, b = mix.configs
    # mean per-GPU graph
    want = (dict(mix.counts)[a] * BASE.graphs[BASE.index[a]] + dict(mix.counts)[b] * BASE.graphs[BASE.index[b]]) / 8
    np.testing.assert_allclose(cat.graphs[len(BASE) + 2], want, rtol=1e-6)


def test_catalog_rejects_bad_input() -> None:
    cat = FleetCatalog(BASE, 4, _cands(3), 4)
    infeasible = int(np.flatnonzero(~BASE.feasible)[0])
    with pytest.raises(ConfigError, match="distinct feasible"):
        FleetCatalog(BASE, 4, (infeasible, 0), 4)
    with pytest.raises(ConfigError, match="out of range"):
        cat.lookup(len(cat))
    c0, c1 = (BASE.configs[i] for i in _cands(3)[:2])
    with pytest.raises(ConfigError, match="has 5 GPUs"):
        cat.parse(f"2x({c0.label()})+3x({c1.label()})")
    with pytest.raises(ConfigError, match="not in the action space"):
        cat.lookup(FleetConfiguration.of({c0: 1, c1: 1, BASE.configs[_cands(3)[2]]: 2}))
    with pytest.raises(ConfigError, match="expected N"):
        cat.parse("2x(7g:b7)+oops")


def test_assign_gpus_changes_only_what_it_must() -> None:
    a, b, c = (BASE.configs[i] for i in _cands(3))
    current = (a, b, a, c, a)
    target = FleetConfiguration.of({a: 2, b: 2, c: 1})
    out = assign_gpus(target, current)
    assert FleetConfiguration.of(out) == target
    changed = sum(x != y for x, y in zip(out, current))
    assert changed == target.changes_from(FleetConfiguration.of(current)) == 1
    assert out[:4] == current[:4]  # GPUs whose configuration is still wanted keep it
    with pytest.raises(ConfigError, match="applied to"):
        assign_gpus(target, current[:4])


def test_layout_locates_gpus_across_nodes() -> None:
    lay = FleetLayout.of([("node-a", 4), ("node-b", 4)])
    assert lay.n_gpus == 8
    assert lay.locate(0) == ("node-a", 0) and lay.locate(5) == ("node-b", 1)
    assert lay.gpus_of("node-b") == (4, 5, 6, 7)
    with pytest.raises(ConfigError, match="out of range"):
        lay.locate(8)
    with pytest.raises(ConfigError, match="duplicate"):
        FleetLayout.of([("x", 1), ("x", 2)])
