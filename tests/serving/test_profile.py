"""Profile file format and the shape of the shipped estimated profiles."""
from __future__ import annotations

import pytest
import yaml

from clover_rl.errors import ConfigError
from clover_rl.mig.catalog import get_gpu
from clover_rl.services import load_service
from clover_rl.serving.profile import load_default_profile, load_profile

A100 = get_gpu("a100-40gb")
SERVICES = ["efficientnet", "yolo", "albert"]


@pytest.mark.parametrize("name", SERVICES)
def test_shipped_profile_is_complete_and_marked_estimated(name):
    prof = load_default_profile(name, "a100-40gb")
    svc = load_service(name)
    assert prof.estimated and "estimated" in prof.method
    for v in svc.variant_names:
        for p in A100.base_profiles():
            assert (p.name, v) in prof.entries


@pytest.mark.parametrize("name", SERVICES)
def test_bigger_slices_are_faster_sublinearly(name):
    prof = load_default_profile(name, "a100-40gb")
    for v in load_service(name).variant_names:
        times = [prof.entry(p.name, v).mean_ms for p in sorted(A100.base_profiles(), key=lambda p: p.sm_count)]
        assert times == sorted(times, reverse=True)
        speedup = prof.entry("1g.5gb", v).mean_ms / prof.entry("7g.40gb", v).mean_ms
        assert 1.0 < speedup < 7.0


@pytest.mark.parametrize("name", SERVICES)
def test_bigger_variants_are_slower_and_more_accurate(name):
    prof = load_default_profile(name, "a100-40gb")
    svc = load_service(name)
    for p in A100.base_profiles():
        times = [prof.entry(p.name, v.name).mean_ms for v in svc.variants]
        assert times == sorted(times)
    accs = [v.accuracy for v in svc.variants]
    assert accs == sorted(accs)


def test_base_reference_point_matches_artifact_logs():
    # Clover artifact: EfficientNet-B7 on whole A100s, ~117 J/request at 1 req/s on 2 GPUs.
    prof = load_default_profile("efficientnet", "a100-40gb")
    e = prof.entry("7g.40gb", "b7")
    per_request = 2 * prof.idle_power_w / 1.0 + e.energy_per_request_j
    assert per_request == pytest.approx(117, rel=0.1)


def test_profile_roundtrip(tmp_path):
    prof = load_default_profile("albert", "a100-40gb")
    path = prof.save(tmp_path / "p.yaml")
    again = load_profile(path)
    assert again.entries.keys() == prof.entries.keys()
    assert again.entry("3g.20gb", "base").mean_ms == pytest.approx(prof.entry("3g.20gb", "base").mean_ms, rel=1e-3)


@pytest.mark.parametrize("mutate,match", [
    (lambda d: d.pop("gpu"), "field gpu: Field required"),
    (lambda d: d.update(format="x"), "not a clover-rl profile"),
    (lambda d: d["entries"][0].update(service_ms=[1, 2]), r"field entries\[0\]\.service_ms: must list 10 quantiles"),
    (lambda d: d["entries"][0].update(active_power_w=-3), r"field entries\[0\]\.active_power_w: Input should be greater than or equal to 0 \(got -3\)"),
    (lambda d: d["entries"][0]["service_ms"].reverse(), r"entries\[0\]\.service_ms: quantiles must be non-decreasing"),
])
def test_bad_profiles_are_one_line_errors(tmp_path, mutate, match):
    d = load_default_profile("albert", "a100-40gb").to_dict()
    mutate(d)
    p = tmp_path / "bad.yaml"
    p.write_text(yaml.safe_dump(d))
    with pytest.raises(ConfigError, match=match) as e:
        load_profile(p)
    assert "\n" not in str(e.value) and str(p) in str(e.value)


def test_missing_entry_names_slice_and_variant():
    prof = load_default_profile("albert", "a100-40gb")
    with pytest.raises(ConfigError, match="variant 'huge' on slice '7g.40gb'"):
        prof.entry("7g.40gb", "huge")


@pytest.mark.parametrize("name,config", [("efficientnet", "7g:b7"), ("efficientnet", "4g:b5,3g:b3"),
                                         ("yolo", "7g:yolov5x6"), ("albert", "3g:large,3g:base")])
def test_energy_per_request_falls_as_load_rises(name, config):
    from clover_rl.mig.config import parse_configuration
    from clover_rl.serving.steady import steady_state

    svc = load_service(name)
    prof = load_default_profile(name, "a100-40gb")
    cfg = parse_configuration(config, A100, svc.variant_names)
    per_req = []
    for rate in (0.5, 1.0, 2.0):
        st = steady_state(cfg, prof, svc, 2, rate)
        per_req.append(st.interval(3600).energy_per_request_j)
    assert per_req == sorted(per_req, reverse=True)


def test_mixed_configuration_saves_energy_vs_base():
    # The paper: mixed configurations use 35-70% less energy per request than BASE.
    from clover_rl.mig.config import parse_configuration
    from clover_rl.serving.steady import steady_state

    svc = load_service("efficientnet")
    prof = load_default_profile("efficientnet", "a100-40gb")
    e = {}
    for cfg in ("7g:b7", "4g:b5,3g:b5"):
        st = steady_state(parse_configuration(cfg, A100, svc.variant_names), prof, svc, 2, 2.5)
        e[cfg] = st.interval(3600).energy_per_request_j
    saving = 1 - e["4g:b5,3g:b5"] / e["7g:b7"]
    assert 0.35 <= saving <= 0.7
