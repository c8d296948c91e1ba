"""``fleet_targets``: what a rolling fleet pool (local or Ray) intends for every GPU, from the three target forms (no Ray)."""
from __future__ import annotations

import pytest

from clover_rl.errors import ConfigError
from clover_rl.fleet.configuration import FleetConfiguration
from clover_rl.fleet.rolling import fleet_targets
from clover_rl.mig.catalog import get_gpu
from clover_rl.mig.config import parse_configuration

GPU = get_gpu("a100-40gb")
BIG, SPLIT, SMALL = (parse_configuration(x, GPU, ("b1", "b3", "b5", "b7")) for x in ("7g:b7", "4g:b7,3g:b5", "7g:b1"))
GPUS = [0, 1, 2, 3]


def test_one_configuration_and_maps() -> None:
    assert fleet_targets(BIG, GPUS, GPUS, {}, {}) == dict.fromkeys(GPUS, BIG)
    prev = dict.fromkeys(GPUS, BIG)
    assert fleet_targets({1: SPLIT}, GPUS, GPUS, prev, prev) == {0: BIG, 1: SPLIT, 2: BIG, 3: BIG}
    with pytest.raises(ConfigError, match="names GPU 7; the fleet has GPUs 0..3"):
        fleet_targets({7: SPLIT}, GPUS, GPUS, prev, prev)


def test_fleet_configuration_changes_fewest_gpus_and_spares_lost_ones() -> None:
    serving = {0: BIG, 1: SPLIT, 2: BIG, 3: SPLIT}
    # 3 x SPLIT + 1 x BIG over the whole fleet: only one of the BIG GPUs changes
    got = fleet_targets(FleetConfiguration.of([SPLIT, SPLIT, SPLIT, BIG]), GPUS, GPUS, serving, serving)
    assert sorted(g for g in GPUS if got[g] != serving[g]) in ([0], [2]) and list(got.values()).count(SPLIT) == 3
    # GPUs 2 and 3 lost: a 2-GPU fleet configuration goes to the live ones, the lost keep theirs
    live = {0: BIG, 1: SPLIT}
    got = fleet_targets(FleetConfiguration.of([SMALL, SPLIT]), GPUS, [0, 1], live, serving)
    assert got == {0: SMALL, 1: SPLIT, 2: BIG, 3: SPLIT}
    with pytest.raises(ConfigError, match="fleet configuration for 3 GPU"):
        fleet_targets(FleetConfiguration.of([SMALL] * 3), GPUS, [0, 1], live, serving)
