"""The MIG manager against the real driver. Read-only unless CLOVER_RL_ALLOW_MIG_CHANGES=1.

Skipped without an NVIDIA GPU. The read-only test only calls the query report and checks that
NVML's MIG geometry agrees with the static catalog; memory/SM differences are printed, not
failed, since the catalog's sizes are documentation figures.
"""
from __future__ import annotations

import json
import os

import pytest

from clover_rl.mig.catalog import get_gpu
from clover_rl.mig.manager import MigManager, mig_query_report
from clover_rl.mig.nvml import MigError
from clover_rl.mig.partition import Partition, place

pytestmark = pytest.mark.gpu


def _real_report() -> dict:
    try:
        return mig_query_report(0)
    except MigError as e:
        pytest.skip(f"no usable NVML GPU: {e}")


def test_query_report_consistent_with_catalog() -> None:
    rep = _real_report()
    print(json.dumps(rep, indent=2))
    json.dumps(rep)
    assert rep["name"] and rep["memory_mb"] > 0
    for line in rep["errors"] + rep["catalog_differences"]:
        assert "\n" not in line
    if not rep["mig_supported"]:
        assert rep["mig_mode"] is None and rep["layout"] is None
        return
    if rep["mig_mode"]["current"] != "enabled":
        assert rep["layout"] is None
        return
    assert rep["profiles_source"] == "nvml" and rep["profiles"]
    if rep["catalog_model"] is None:
        pytest.skip(f"{rep['name']} is not in the catalog")
    model = get_gpu(rep["catalog_model"])
    nvml = {p["nvml_index"]: p for p in rep["profiles"]}
    for cp in model.base_profiles():
        p = nvml.get(cp.nvml_index)
        assert p is not None, f"catalog profile {cp.name} not reported by NVML"
        assert p["profile_id"] == cp.profile_id, cp.name
        assert p["compute_slices"] == cp.compute_slices, cp.name
        assert [tuple(x) for x in p["placements"]] == list(cp.placements), cp.name
        assert p["name"].split(".")[0] == cp.short
    allowed = {(p["name"], s) for p in rep["profiles"] for s, _ in p["placements"]}
    for gi in rep["layout"]["instances"]:
        assert (gi["profile"], gi["start"]) in allowed
        for ci in gi["compute_instances"]:
            assert ci["uuid"] is None or ci["uuid"].startswith("MIG-")


@pytest.mark.skipif(os.environ.get("CLOVER_RL_ALLOW_MIG_CHANGES") != "1",
                    reason="changes MIG layout; set CLOVER_RL_ALLOW_MIG_CHANGES=1 to run")
def test_apply_round_trip_restores_layout() -> None:
    rep = _real_report()
    if not rep["mig_mode"] or rep["mig_mode"]["current"] != "enabled" or not rep["catalog_model"]:
        pytest.skip("needs a catalogued GPU with MIG enabled")
    model = get_gpu(rep["catalog_model"])
    with MigManager(0) as m:
        original = m.layout()
        if not all(g.is_whole for g in original.instances):
            pytest.skip("current layout has split compute instances; not touching it")
        restore = m.partition()
        try:
            res = m.apply(place(model, ["4g", "3g"]))
            assert m.layout().label.count("@") == 2 and len(set(res.uuids.values())) == 2
            assert not m.apply(place(model, ["4g", "3g"])).changed
        finally:
            m.apply(restore if restore.slices else Partition(model.name, ()))
        assert [(g.profile, g.start) for g in m.layout().instances] == \
            [(g.profile, g.start) for g in original.instances]
