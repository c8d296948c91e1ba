"""Board facts as the driver reports them, per-profile instance limits, label round trips,
catalog-vs-hardware differences and mig-parted import.

Faults from issue 10 part 3: H100/H200 slice memory was derived from profile names (H200
1g.18gb 18432 MiB in the catalog, 16384 on the device), so a 17000 MiB variant was marked
feasible on an H200 1g slice in 66 configurations; ``+me`` profiles got 7 placements and
``mig export`` printed ``1g.5gb+me: 7``; ``--extended`` enumerated partitions with two
``+me`` slices; the label of a ``1g.10gb`` slice parsed back as ``1g.5gb``.
"""
from __future__ import annotations

import dataclasses
import json

import pytest
import yaml

from clover_rl.cli import main
from clover_rl.errors import ConfigError
from clover_rl.mig.catalog import GPUS, get_gpu
from clover_rl.mig.config import enumerate_configurations, parse_configuration
from clover_rl.mig.migparted import from_mig_parted, to_mig_parted
from clover_rl.mig.partition import enumerate_partitions, place

GIB = 1024


@pytest.mark.parametrize("board,profile,gib", [
    ("h200-141gb", "1g.18gb", 16.00), ("h200-141gb", "2g.35gb", 32.25),
    ("h200-141gb", "3g.71gb", 69.50), ("h200-141gb", "7g.141gb", 139.75),
    ("h100-80gb", "1g.10gb", 9.75), ("h100-80gb", "2g.20gb", 19.625),
    ("h100-80gb", "4g.40gb", 39.50), ("h100-80gb", "7g.80gb", 79.25),
    ("gh200-144gb", "1g.18gb", 17.50), ("h100-nvl-94gb", "3g.47gb", 46.375),
    ("gh200-96gb", "7g.96gb", 93.00), ("a30-24gb", "2g.12gb", 11.6875),
    ("a100-40gb", "1g.5gb", 4.75),
])
def test_slice_memory_is_what_the_driver_reports(board, profile, gib):
    assert get_gpu(board).profile(profile).memory_mb == gib * GIB


def test_same_name_means_different_memory_on_different_boards():
    assert get_gpu("h200-141gb").profile("1g.18gb").memory_mb == 16384
    assert get_gpu("gh200-144gb").profile("1g.18gb").memory_mb == 17920


def test_every_board_notes_its_source_and_limits_me_profiles_to_one():
    for g in GPUS.values():
        assert g.source
        for p in g.profiles:
            assert 1 <= p.max_instances <= len(p.placements)
            if p.name.endswith("+me"):
                assert p.max_instances == 1


def test_a_17000_mib_variant_is_not_feasible_on_an_h200_1g_slice():
    from clover_rl.envs.actions import ActionCatalog
    from clover_rl.services import load_service

    svc = load_service("efficientnet")
    big = svc.variants[0].model_copy(update={"memory_mb": 17000})
    svc = svc.model_copy(update={"variants": [big, *svc.variants[1:]]})
    cat = ActionCatalog(get_gpu("h200-141gb"), svc)
    on_1g = [i for i, c in enumerate(cat.configs) if ("1g.18gb", big.name) in c.pairs]
    assert on_1g and not cat.feasible[on_1g].any()  # was 66 feasible
    assert "needs 17000 MB; 1g.18gb has 16384 MB" in cat.why_infeasible(on_1g[0])


def test_me_profiles_at_most_once_in_enumeration_parsing_and_export():
    a100 = get_gpu("a100-40gb")
    for part in enumerate_partitions(a100, extended=True):
        assert sum(s.profile.endswith("+me") for s in part.slices) <= 1
    with pytest.raises(ConfigError, match=r"2 x 1g.5gb\+me on a100-40gb, at most 1 per GPU"):
        place(a100, ["1g.5gb+me", "1g.5gb+me"])
    cfg7 = ",".join(["1g.5gb+me:b1"] * 7)
    with pytest.raises(ConfigError, match=r"7 x 1g.5gb\+me.*at most 1"):
        parse_configuration(cfg7, a100, ("b1", "b7"))
    one = parse_configuration("1g.5gb+me:b1,1g:b1,1g:b1,1g:b1,1g:b1,1g:b1,1g:b1", a100, ("b1", "b7"))
    assert yaml.safe_load(to_mig_parted({"x": one}, a100))["mig-configs"]["x"][0]["mig-devices"] == \
        {"1g.5gb": 6, "1g.5gb+me": 1}


@pytest.mark.parametrize("board", ["a100-40gb", "h100-80gb", "a30-24gb"])
def test_labels_round_trip_for_every_configuration(board):
    g = get_gpu(board)
    for cfg in enumerate_configurations(g, ("b1", "b7"), extended=True):
        assert parse_configuration(cfg.label(), g, ("b1", "b7")) == cfg
    cfg = parse_configuration("1g.10gb:b1,1g:b7", get_gpu("a100-40gb"), ("b1", "b7"))
    assert cfg.label() == "1g.10gb:b1,1g:b7"


def test_catalog_vs_hardware_differences_are_named(tmp_path):
    from clover_rl.mig.manager import MigManager
    from tests.support import fake_nvml

    spec = fake_nvml.FakeGpu.from_catalog("h200-141gb")
    old = []  # what the old name-derived catalog said, as a driver that disagrees would
    for p in spec.profiles:
        if p.name == "1g.18gb":
            p = dataclasses.replace(p, memory_mb=18432)
        if p.name == "1g.18gb+me":
            p = dataclasses.replace(p, instance_count=7)
        if p.name == "3g.71gb":
            p = dataclasses.replace(p, sm=62)
        old.append(p)
    fake = fake_nvml.FakeNvml([dataclasses.replace(spec, profiles=tuple(old))])
    with MigManager(0, fake) as m:
        assert m.model is get_gpu("h200-141gb")
        diffs = m.catalog_differences()
    assert "1g.18gb (NVML index 0): memory_mb NVML 18432 != catalog 16384" in diffs
    assert "1g.18gb+me (NVML index 7): max_instances NVML 7 != catalog 1" in diffs
    assert "3g.71gb (NVML index 2): sm_count NVML 62 != catalog 60" in diffs
    assert len(diffs) == 3


# ---------------------------------------------------------------- mig-parted import

# The layout of NVIDIA's default mig-parted config (config-default.yaml), trimmed.
DEFAULT_CONFIG = {
    "version": "v1",
    "mig-configs": {
        "all-disabled": [{"devices": "all", "mig-enabled": False}],
        "all-1g.5gb": [{"device-filter": ["0x20B010DE", "0x20B110DE", "0x20F110DE"],
                        "devices": "all", "mig-enabled": True, "mig-devices": {"1g.5gb": 7}}],
        "all-3g.20gb": [{"device-filter": ["0x20B010DE", "0x20B110DE", "0x20F110DE"],
                         "devices": "all", "mig-enabled": True, "mig-devices": {"3g.20gb": 2}}],
        "all-balanced": [
            {"device-filter": ["0x20B010DE", "0x20B110DE", "0x20F110DE"], "devices": "all",
             "mig-enabled": True, "mig-devices": {"1g.5gb": 2, "2g.10gb": 1, "3g.20gb": 1}},
            {"device-filter": ["0x20B210DE", "0x20B510DE", "0x233010DE"], "devices": "all",
             "mig-enabled": True, "mig-devices": {"1g.10gb": 2, "2g.20gb": 1, "3g.40gb": 1}},
            {"device-filter": "0x20B710DE", "devices": "all", "mig-enabled": True,
             "mig-devices": {"1g.6gb": 2, "2g.12gb": 1}},
        ],
        "custom-me": [{"devices": [0, 1], "mig-enabled": True, "mig-devices": {"1g.5gb+me": 2}}],
    },
}


@pytest.fixture
def default_config(tmp_path):
    p = tmp_path / "config-default.yaml"
    p.write_text(yaml.safe_dump(DEFAULT_CONFIG, sort_keys=False))
    return p


def test_import_picks_the_entry_for_the_board(default_config):
    a100 = {lay.name: lay.profiles for lay in from_mig_parted(default_config, get_gpu("a100-40gb"), "all-balanced")}
    assert a100 == {"all-balanced": ("3g.20gb", "2g.10gb", "1g.5gb", "1g.5gb")}
    h100 = from_mig_parted(default_config, get_gpu("h100-80gb"), "all-balanced")[0]
    assert h100.profiles == ("3g.40gb", "2g.20gb", "1g.10gb", "1g.10gb")
    a30 = from_mig_parted(default_config, get_gpu("a30-24gb"), "all-balanced")[0]
    assert a30.profiles == ("2g.12gb", "1g.6gb", "1g.6gb")
    whole = from_mig_parted(default_config, get_gpu("a100-40gb"), "all-disabled")[0]
    assert whole.profiles == ("7g.40gb",)


@pytest.mark.parametrize("name,gpu,match", [
    ("nope", "a100-40gb", r"no config 'nope' \(configs: all-disabled, all-1g.5gb"),
    ("all-1g.5gb", "h100-80gb", r"no entry for h100-80gb \(its device-filter IDs 0x233010DE"),
    ("custom-me", "a100-40gb", r"mig-configs.custom-me: 2 x 1g.5gb\+me on a100-40gb, at most 1"),
])
def test_import_errors_name_file_config_and_value(default_config, name, gpu, match):
    with pytest.raises(ConfigError, match=match):
        from_mig_parted(default_config, get_gpu(gpu), name)


def test_mig_import_and_export_cli(default_config, capsys):
    assert main(["mig", "import", str(default_config), "--name", "all-balanced", "--variant", "b1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("all-balanced: 3g.20gb+2g.10gb+1g.5gb+1g.5gb") and "-> 3g:b1,2g:b1,1g:b1,1g:b1" in out
    assert main(["mig", "import", str(default_config), "--name", "all-3g.20gb", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["profiles"] == ["3g.20gb", "3g.20gb"] and rows[0]["placements"] == ["3g.20gb@0", "3g.20gb@4"]
    for argv, needle in [
        (["mig", "import", str(default_config), "--name", "custom-me"], "at most 1 per GPU"),
        (["mig", "export", "--config", ",".join(["1g.5gb+me:b1"] * 7)], "7 x 1g.5gb+me"),
        (["mig", "import", str(default_config.parent / "missing.yaml")], "file not found"),
    ]:
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and "\n" not in err and needle in err
