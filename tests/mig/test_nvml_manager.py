"""MIG manager against the simulated NVML: discovery, layout, apply, rollback, errors, CLI."""
from __future__ import annotations

import dataclasses
import json

import pynvml
import pytest

from clover_rl.errors import BackendError, ConfigError
from clover_rl.mig.catalog import get_gpu
from clover_rl.mig.manager import MigManager, mig_query_report
from clover_rl.mig.nvml import (
    MigError,
    MigInUseError,
    MigModeError,
    MigPermissionError,
    MigResourcesError,
    NvmlGpu,
    NvmlUnavailableError,
    match_catalog_model,
)
from clover_rl.mig.partition import Partition, Slice, place

A100 = get_gpu("a100-40gb")


def part(*profiles: str) -> Partition:
    return place(A100, list(profiles))


def one_line(err: BaseException) -> str:
    msg = str(err)
    assert "\n" not in msg and msg
    return msg


# ------------------------------------------------------------------ discovery


def test_discovery_matches_catalog(fake) -> None:
    with MigManager(0, fake) as m:
        assert m.model is A100
        assert m.profiles_source == "nvml"
        assert m.catalog_differences() == []
        got = {p.nvml_index: (p.name, p.profile_id, p.placements) for p in m.profiles()}
        want = {p.nvml_index: (p.name, p.profile_id, p.placements) for p in A100.profiles}
        assert got == want


def test_discovery_reports_catalog_differences(fakemod) -> None:
    spec = fakemod.a100_40gb()
    changed = []
    for p in spec.profiles:
        if p.name == "3g.20gb":
            p = dataclasses.replace(p, id=10, memory_mb=20000, starts=(0,))
        if p.name == "1g.10gb":
            continue  # driver without this profile
        changed.append(p)
    changed.append(fakemod.FakeProfile(5, 1, "8g.48gb", 8, 8, 48000, 112, (0,)))
    fake = fakemod.FakeNvml([dataclasses.replace(spec, profiles=tuple(changed))])
    with MigManager(0, fake) as m:
        diffs = m.catalog_differences()
    for d in diffs:
        one_line(d)
    text = "\n".join(diffs)
    assert "3g.20gb (NVML index 2): profile_id NVML 10 != catalog 9" in text
    assert "3g.20gb (NVML index 2): memory_mb NVML 20000 != catalog 19968" in text
    assert "3g.20gb (NVML index 2): placements" in text
    assert "catalog profile 1g.10gb (NVML index 9) not reported by NVML" in text
    assert "NVML profile 8g.48gb (index 5, id 1) missing from catalog a100-40gb" in text
    assert len(diffs) == 5


def test_driver_without_v2_profile_info_names_from_catalog(fakemod) -> None:
    fake = fakemod.FakeNvml(v2_profiles=False)
    with MigManager(0, fake) as m:
        assert sorted(p.name for p in m.profiles()) == sorted(p.name for p in A100.profiles)
        assert m.catalog_differences() == []
        assert m.apply(part("4g", "3g")).changed


def test_mig_disabled_falls_back_to_catalog_profiles(fakemod) -> None:
    fake = fakemod.FakeNvml(mig=False)
    with MigManager(0, fake) as m:
        assert m.profiles_source == "catalog"
        assert {p.name for p in m.profiles()} == {p.name for p in A100.profiles}


@pytest.mark.parametrize("name,mem,want", [
    ("NVIDIA A100-SXM4-40GB", 40960, "a100-40gb"),
    ("NVIDIA A100-PCIE-40GB", 40960, "a100-40gb"),
    ("NVIDIA A100 80GB PCIe", 81920, "a100-80gb"),
    ("NVIDIA H100 80GB HBM3", 81559, "h100-80gb"),
    ("NVIDIA H200", 143771, "h200-141gb"),
])
def test_device_name_maps_to_catalog(name: str, mem: int, want: str) -> None:
    model = match_catalog_model(name, mem)
    assert model is not None and model.name == want


def test_unknown_device_maps_to_nothing() -> None:
    assert match_catalog_model("NVIDIA GeForce RTX 4090", 24564) is None
    assert match_catalog_model("NVIDIA A100-PCIE-20GB", 20000) is None


# ------------------------------------------------------------------ layout


def test_read_layout_with_uuids(fake) -> None:
    fake.seed([("4g.20gb", 0), ("3g.20gb", 4)])
    with MigManager(0, fake) as m:
        lay = m.layout()
        assert lay.label == "4g.20gb@0+3g.20gb@4"
        assert [(g.start, g.size, g.compute_slices) for g in lay.instances] == [(0, 4, 4), (4, 4, 3)]
        assert all(g.is_whole for g in lay.instances)
        assert len({g.id for g in lay.instances}) == 2
        uuids = {c.uuid for g in lay.instances for c in g.compute_instances}
        assert len(uuids) == 2 and all(u.startswith("MIG-") for u in uuids)
        assert m.partition() == part("4g", "3g")
        assert set(m.uuids(part("4g", "3g")).values()) == uuids
    assert fake.mutations == 0


def test_read_layout_with_several_compute_instances(fake) -> None:
    fake.seed([("7g.40gb", 0, [(0, 0), (0, 1), (1, 2)])])
    with MigManager(0, fake) as m:
        (gi,) = m.layout().instances
    assert gi.id == 0 and gi.profile == "7g.40gb" and not gi.is_whole and gi.uuid is None
    assert [(c.start, c.size) for c in gi.compute_instances] == [(0, 1), (1, 1), (2, 2)]


# ------------------------------------------------------------------ apply


def test_apply_from_empty_returns_uuid_per_slice(fake) -> None:
    target = part("4g", "3g")
    with MigManager(0, fake) as m:
        res = m.apply(target)
        lay = m.layout()
    assert res.changed and res.before.label == "empty" and res.destroyed == ()
    assert res.created == ("4g.20gb@0", "3g.20gb@4")  # largest first
    assert fake.layout() == [("3g.20gb", 4, 1), ("4g.20gb", 0, 1)]
    assert set(res.uuids) == set(target.slices)
    by_slice = {(g.profile, g.start): g.uuid for g in lay.instances}
    for s, u in res.uuids.items():
        assert by_slice[(s.profile, s.start)] == u
    assert json.loads(json.dumps(res.to_dict()))["uuids"]["4g.20gb@0"] == res.uuids[target.slices[0]]


def test_apply_is_idempotent(fake) -> None:
    with MigManager(0, fake) as m:
        first = m.apply(part("3g", "2g", "1g", "1g"))
        before = fake.mutations
        again = m.apply(part("3g", "2g", "1g", "1g"))
    assert first.changed and not again.changed
    assert fake.mutations == before  # no create/destroy call at all
    assert again.uuids == first.uuids


def test_apply_changing_layouts_keeps_unchanged_slices(fake) -> None:
    with MigManager(0, fake) as m:
        m.apply(part("7g"))
        assert fake.layout() == [("7g.40gb", 0, 1)]
        r2 = m.apply(part("4g", "3g"))
        assert r2.destroyed == ("7g.40gb@0",) and fake.layout() == [("3g.20gb", 4, 1), ("4g.20gb", 0, 1)]
        r3 = m.apply(part("3g", "2g", "1g", "1g"))
        assert m.layout().label == "2g.10gb@0+1g.5gb@2+1g.5gb@3+3g.20gb@4"
    assert r3.kept == ("3g.20gb@4",) and r3.destroyed == ("4g.20gb@0",)
    u2 = {s.start: u for s, u in r2.uuids.items() if s.profile == "3g.20gb"}
    u3 = {s.start: u for s, u in r3.uuids.items() if s.profile == "3g.20gb"}
    assert u2 == u3  # the kept 3g slice is the same MIG device


def test_full_rebuild_recreates_everything(fake) -> None:
    with MigManager(0, fake) as m:
        r1 = m.apply(part("4g", "3g"))
        r2 = m.apply(part("3g", "2g", "1g", "1g"), full_rebuild=True)
    assert r2.kept == () and set(r2.destroyed) == {"4g.20gb@0", "3g.20gb@4"}
    assert not set(r1.uuids.values()) & set(r2.uuids.values())


def test_apply_replaces_non_canonical_compute_instances(fake) -> None:
    fake.seed([("7g.40gb", 0, [(0, 0), (0, 1)])])
    with MigManager(0, fake) as m:
        res = m.apply(part("7g"))
    assert res.changed and fake.ci_layout() == [("7g.40gb", 0, [(4, 0, 7)])]


def test_apply_rejects_impossible_partitions_before_touching(fake) -> None:
    fake.seed([("7g.40gb", 0)])
    bad = [
        Partition("a100-40gb", (Slice(2, "3g.20gb", 4),)),  # not an allowed start
        Partition("a100-40gb", (Slice(0, "4g.20gb", 4), Slice(0, "2g.10gb", 2))),  # overlap
        Partition("a100-40gb", (Slice(0, "9g.80gb", 8),)),  # unknown profile
        Partition("h100-80gb", (Slice(0, "7g.80gb", 8),)),  # other GPU model
    ]
    with MigManager(0, fake) as m:
        for p in bad:
            with pytest.raises(ConfigError) as e:
                m.apply(p)
            one_line(e.value)
    assert fake.mutations == 0


# ------------------------------------------------------------------ rollback


@pytest.mark.parametrize("nth,full", [(1, False), (2, False), (3, True), (4, False)])
def test_failure_half_way_rolls_back_exactly(fake, nth: int, full: bool) -> None:
    with MigManager(0, fake) as m:
        m.apply(part("4g", "3g"))
        before = fake.ci_layout()
        uuids_before = m.layout()
        fake.inject_create_failure(nth, pynvml.NVML_ERROR_INSUFFICIENT_RESOURCES)
        with pytest.raises(MigResourcesError) as e:
            m.apply(part("3g", "2g", "1g", "1g"), full_rebuild=full)
        assert fake.ci_layout() == before
        assert m.layout().label == uuids_before.label
    msg = one_line(e.value)
    assert msg.startswith("GPU 0: create ") and "NVML_ERROR_INSUFFICIENT_RESOURCES" in msg
    assert "rolled back to the previous layout 4g.20gb@0+3g.20gb@4" in msg
    assert e.value.rollback_ok is True and e.value.rollback_error is None


def test_rollback_restores_non_canonical_compute_instances(fake) -> None:
    fake.seed([("7g.40gb", 0, [(0, 0), (0, 3), (1, 4)])])
    before = fake.ci_layout()
    fake.inject_create_failure(2)
    with MigManager(0, fake) as m, pytest.raises(MigError) as e:
        m.apply(part("4g", "3g"))
    assert fake.ci_layout() == before
    assert e.value.rollback_ok is True and "NVML_ERROR_UNKNOWN" in one_line(e.value)


def test_failed_rollback_reports_both_errors(fake) -> None:
    with MigManager(0, fake) as m:
        m.apply(part("7g"))
        fake.inject_create_failure(1, pynvml.NVML_ERROR_INSUFFICIENT_RESOURCES)
        fake.inject_create_failure(2, pynvml.NVML_ERROR_UNKNOWN)  # the rollback's 7g create
        with pytest.raises(MigResourcesError) as e:
            m.apply(part("4g", "3g"))
    msg = one_line(e.value)
    assert "create GPU instance 4g.20gb at memory slice 0 failed" in msg
    assert "rollback FAILED" in msg and "create GPU instance 7g.40gb" in msg
    assert "left as empty, was 7g.40gb@0" in msg
    assert e.value.rollback_ok is False and isinstance(e.value.rollback_error, MigError)


# ------------------------------------------------------------------ errors


@pytest.mark.parametrize("library,needle", [
    ("missing", "NVML_ERROR_LIBRARY_NOT_FOUND"),
    ("driver_not_loaded", "NVIDIA driver not loaded"),
])
def test_no_driver_is_one_line_backend_error(fakemod, library: str, needle: str) -> None:
    fake = fakemod.FakeNvml(library=library)
    with pytest.raises(NvmlUnavailableError) as e:
        mig_query_report(0, fake)
    assert isinstance(e.value, BackendError)
    msg = one_line(e.value)
    assert msg.startswith("GPU 0: initialise NVML failed") and needle in msg


def test_no_such_gpu(fake) -> None:
    with pytest.raises(NvmlUnavailableError, match=r"^GPU 3: no such GPU \(NVML sees 1"):
        MigManager(3, fake).open()
    assert fake._init_count == 0  # init reference released


@pytest.mark.parametrize("current,pending,needle", [
    (False, False, "MIG mode is disabled"),
    (True, False, "MIG mode is enabled but disabled after a pending GPU reset"),
    (False, True, "MIG mode is disabled but enabled after a pending GPU reset"),
])
def test_mig_mode_errors(fake, current: bool, pending: bool, needle: str) -> None:
    fake.set_mig(current, pending)
    with MigManager(0, fake) as m, pytest.raises(MigModeError) as e:
        m.apply(part("7g"))
    msg = one_line(e.value)
    assert msg.startswith("GPU 0: apply partition 7g.40gb@0 failed") and needle in msg
    assert fake.mutations == 0


def test_gpu_without_mig(fakemod) -> None:
    fake = fakemod.FakeNvml([fakemod.FakeGpu("NVIDIA GeForce RTX 4090", 24564, ())])
    rep = mig_query_report(0, fake)
    assert rep["mig_supported"] is False and rep["catalog_model"] is None
    assert "does not support MIG" in rep["errors"][0]
    with MigManager(0, fake) as m, pytest.raises(MigModeError, match="does not support MIG"):
        m.apply(part("7g"))


def test_not_privileged(fakemod) -> None:
    fake = fakemod.FakeNvml(privileged=False)
    with MigManager(0, fake) as m:
        assert m.layout().label == "empty"  # reads still work
        with pytest.raises(MigPermissionError) as e:
            m.apply(part("7g"))
    msg = one_line(e.value)
    assert msg.startswith("GPU 0: create GPU instance 7g.40gb at memory slice 0 failed")
    assert "need root" in msg and "NVML_ERROR_NO_PERMISSION" in msg
    assert fake.layout() == []


def test_gpu_in_use(fake) -> None:
    fake.seed([("7g.40gb", 0)])
    fake.start_process(gi_id=0)
    with MigManager(0, fake) as m, pytest.raises(MigInUseError) as e:
        m.apply(part("4g", "3g"))
    msg = one_line(e.value)
    assert msg.startswith("GPU 0: destroy compute instance 0 of GPU instance 0 (7g.40gb@0)")
    assert "NVML_ERROR_IN_USE" in msg and "rolled back" in msg
    assert fake.layout() == [("7g.40gb", 0, 1)]


def test_insufficient_resources(fake) -> None:
    fake.seed([("7g.40gb", 0)])
    with NvmlGpu(0, fake) as g:
        p3 = next(p for p in g.profiles() if p.name == "3g.20gb")
        with pytest.raises(MigResourcesError) as e:
            g.create_gpu_instance(p3, 4)
    msg = one_line(e.value)
    assert msg.startswith("GPU 0: create GPU instance 3g.20gb at memory slice 4 failed")
    assert "NVML_ERROR_INSUFFICIENT_RESOURCES" in msg


# ------------------------------------------------------------------ the fake enforces NVML rules


def _raw(fake, profile_id: int, start: int, size: int):
    import ctypes

    dev = fake.nvmlDeviceGetHandleByIndex(0)
    pl = pynvml.c_nvmlGpuInstancePlacement_t()
    pl.start, pl.size = start, size
    return fake.nvmlDeviceCreateGpuInstanceWithPlacement(dev, profile_id, ctypes.byref(pl))


def test_fake_enforces_overlap_budget_in_use_and_stale_handles(fakemod) -> None:
    spec = dataclasses.replace(fakemod.a100_40gb(), compute_slots=6)
    fake = fakemod.FakeNvml([spec])
    fake.nvmlInit()
    gi = _raw(fake, 5, 0, 4)  # 4g@0
    with pytest.raises(pynvml.NVMLError_InsufficientResources):
        _raw(fake, 14, 2, 2)  # 2g@2 overlaps 4g@0
    with pytest.raises(pynvml.NVMLError_InsufficientResources):
        _raw(fake, 9, 4, 4)  # 3g@4: 4 + 3 compute slices > 6
    with pytest.raises(pynvml.NVMLError_InvalidArgument):
        _raw(fake, 9, 2, 4)  # start not allowed for 3g
    ci = fake.nvmlGpuInstanceCreateComputeInstance(gi, pynvml.NVML_COMPUTE_INSTANCE_PROFILE_4_SLICE)
    with pytest.raises(pynvml.NVMLError_InUse):
        fake.nvmlGpuInstanceDestroy(gi)
    fake.nvmlComputeInstanceDestroy(ci)
    with pytest.raises(pynvml.NVMLError_InvalidArgument):
        fake.nvmlComputeInstanceGetInfo(ci)
    fake.nvmlGpuInstanceDestroy(gi)
    with pytest.raises(pynvml.NVMLError_InvalidArgument):
        fake.nvmlGpuInstanceGetInfo(gi)
    with pytest.raises(pynvml.NVMLError_InvalidArgument):
        fake.nvmlGpuInstanceDestroy(gi)
    fake.nvmlShutdown()
    with pytest.raises(pynvml.NVMLError_Uninitialized):
        fake.nvmlDeviceGetCount()


# ------------------------------------------------------------------ report and CLI


def test_query_report_is_read_only_and_json(fake) -> None:
    fake.seed([("4g.20gb", 0), ("2g.10gb", 4), ("1g.5gb", 6)])
    rep = mig_query_report(0, fake)
    assert fake.mutations == 0
    rep = json.loads(json.dumps(rep))
    assert rep["name"] == "NVIDIA A100-SXM4-40GB" and rep["catalog_model"] == "a100-40gb"
    assert rep["mig_mode"] == {"current": "enabled", "pending": "enabled", "reset_pending": False}
    assert rep["profiles_source"] == "nvml" and len(rep["profiles"]) == len(A100.profiles)
    assert rep["catalog_differences"] == [] and rep["errors"] == []
    assert rep["partition"] == "4g.20gb@0+2g.10gb@4+1g.5gb@6"
    assert len(rep["mig_devices"]) == 3
    assert fake._init_count == 0  # NVML shut down again




def test_query_report_with_mig_disabled_does_not_raise(fakemod) -> None:
    fake = fakemod.FakeNvml(mig=False)
    rep = mig_query_report(0, fake)
    assert rep["mig_mode"]["current"] == "disabled" and rep["layout"] is None
    assert rep["profiles_source"] == "catalog"
    assert any("MIG mode is disabled" in e for e in rep["errors"])


def test_cli_gpu_query(fakemod, monkeypatch, capsys) -> None:
    import clover_rl.mig.nvml as nvml_mod
    from clover_rl import cli

    fake = fakemod.FakeNvml()
    fake.seed([("7g.40gb", 0)])
    monkeypatch.setattr(nvml_mod, "load_nvml", lambda module=None: module or fake)
    assert cli.main(["gpu", "query", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["partition"] == "7g.40gb@0"
    assert cli.main(["gpu", "query"]) == 0
    out = capsys.readouterr().out
    assert "layout: 7g.40gb@0" in out and "catalog check: matches" in out
    assert fake.mutations == 0

    broken = fakemod.FakeNvml(library="missing")
    monkeypatch.setattr(nvml_mod, "load_nvml", lambda module=None: module or broken)
    assert cli.main(["gpu", "query", "--index", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [("error: GPU 1: initialise NVML failed: NVML library libnvidia-ml.so.1 not "
                    "found (no NVIDIA driver installed) [NVML_ERROR_LIBRARY_NOT_FOUND]")]
