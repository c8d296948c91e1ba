"""MIG geometry: counts enumerated from placement rules, canonical configurations, export."""
from __future__ import annotations

import pytest
import yaml

from clover_rl.errors import ConfigError
from clover_rl.mig.catalog import GPUS, get_gpu
from clover_rl.mig.config import (
    Configuration,
    base_configuration,
    enumerate_configurations,
    parse_configuration,
)
from clover_rl.mig.migparted import to_mig_parted
from clover_rl.mig.partition import enumerate_partitions, place, slice_multisets

A100 = get_gpu("a100-40gb")
EFF = ("b1", "b3", "b5", "b7")


def test_a100_partition_counts():
    parts = enumerate_partitions(A100)
    assert len(parts) == 19
    assert len(slice_multisets(A100)) == 14


@pytest.mark.parametrize("gpu", sorted(g for g in GPUS if GPUS[g].compute_slices == 7))
def test_every_seven_slice_gpu_has_the_same_standard_geometry(gpu):
    g = get_gpu(gpu)
    assert len(enumerate_partitions(g)) == 19
    assert g.whole.compute_slices == 7


def test_a30_has_four_slices():
    g = get_gpu("a30-24gb")
    assert sorted(slice_multisets(g)) == sorted([("4g.24gb",), ("2g.12gb", "2g.12gb"),
                                                 ("2g.12gb", "1g.6gb", "1g.6gb"),
                                                 ("1g.6gb",) * 4])
    assert g.whole.name == "4g.24gb"


def test_partitions_respect_placement_rules():
    for part in enumerate_partitions(A100):
        used = [0] * 8
        compute = 0
        for s in part.slices:
            prof = A100.profile(s.profile)
            assert (s.start, s.size) in prof.placements
            for slot in range(s.start, s.start + s.size):
                used[slot] += 1
            compute += prof.compute_slices
        assert max(used) == 1
        assert compute <= 7


@pytest.mark.parametrize("variants,expected", [(EFF, 1282), (("l", "x", "x6"), 438)])
def test_unique_configuration_counts(variants, expected):
    cfgs = enumerate_configurations(A100, variants)
    assert len(cfgs) == expected
    assert len(set(cfgs)) == expected


def test_canonical_form_ignores_slot_order():
    a = parse_configuration("4g:b7,3g:b5", A100, EFF)
    b = parse_configuration("3g:b5,4g:b7", A100, EFF)
    assert a == b and hash(a) == hash(b)
    c = parse_configuration("3g:b7,4g:b5", A100, EFF)
    assert a != c
    g = a.graph(EFF, [p.name for p in A100.base_profiles()])
    assert g.sum() == 2
    assert g[EFF.index("b7"), [p.name for p in A100.base_profiles()].index("4g.20gb")] == 1


def test_same_multiset_different_placements_are_one_configuration():
    # 4x 1g + 3g can be placed with 3g at slot 0 or 4: one configuration either way.
    cfgs = enumerate_configurations(A100, ("b1",))
    assert sum(1 for c in cfgs if sorted(c.profiles) == sorted(["3g.20gb"] + ["1g.5gb"] * 4)) == 1


@pytest.mark.parametrize("text", ["5g:b7", "4g:b7,4g:b5", "7g:b9", "4g-b7", "", "7g:b7,1g:b1"])
def test_bad_configurations_are_one_line_errors(text):
    with pytest.raises(ConfigError) as e:
        parse_configuration(text, A100, EFF)
    assert "\n" not in str(e.value)


def test_place_finds_valid_placement_for_2g_1g_pair():
    part = place(A100, ["3g", "2g", "2g"])
    assert sorted(s.start for s in part.slices) == [0, 4, 6] or sorted(s.start for s in part.slices)[0] == 0


def test_base_configuration_is_largest_variant_on_whole_gpu():
    assert base_configuration(A100, EFF).label() == "7g:b7"


def test_mig_parted_export_schema():
    cfg = parse_configuration("4g:b7,3g:b5", A100, EFF)
    doc = yaml.safe_load(to_mig_parted({"clover": cfg}, A100))
    assert doc["version"] == "v1"
    entry = doc["mig-configs"]["clover"][0]
    assert entry["devices"] == "all" and entry["mig-enabled"] is True
    assert entry["mig-devices"] == {"4g.20gb": 1, "3g.20gb": 1}


def test_configuration_label_roundtrip():
    for cfg in enumerate_configurations(A100, EFF)[::97]:
        assert parse_configuration(cfg.label(), A100, EFF) == cfg
        assert isinstance(cfg, Configuration)


def test_unknown_gpu():
    with pytest.raises(ConfigError, match="unknown GPU model 'v100'"):
        get_gpu("v100")
