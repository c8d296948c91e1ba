"""Service catalog and scenario validation."""
from __future__ import annotations

import pytest

from clover_rl.errors import ConfigError
from clover_rl.scenario import list_scenarios, load_scenario
from clover_rl.services import list_services, load_service


def test_shipped_services():
    assert {"efficientnet", "yolo", "albert"} <= set(list_services())
    eff = load_service("efficientnet")
    assert eff.variant_names == ("b1", "b3", "b5", "b7")
    assert [v.accuracy for v in eff.variants] == [78.38, 81.53, 83.78, 84.58]
    assert eff.request.batch == 8
    assert [v.accuracy for v in load_service("yolo").variants] == [49.0, 50.7, 55.0]
    alb = load_service("albert")
    assert [v.accuracy for v in alb.variants] == [83.2, 85.2, 86.4, 89.1]
    assert alb.request.batch == 1


def test_user_service_from_file(tmp_path):
    p = tmp_path / "mine.yaml"
    p.write_text("""
name: mine
task: image-classification
metric: top-1
request: {kind: image, batch: 4}
variants:
  - {name: small, accuracy: 70, params_m: 5, gflops: 1, memory_mb: 500, source: {kind: noop, name: x}}
  - {name: big, accuracy: 80, params_m: 50, gflops: 10, memory_mb: 5000, source: {kind: noop, name: y}}
""")
    svc = load_service(str(p))
    assert svc.largest.name == "big"


@pytest.mark.parametrize("body,match", [
    ("name: x\n", "field task"),
    ("[1, 2]\n", "expected a mapping"),
    ("name: x\ntask: t\nmetric: m\nrequest: {kind: image}\nvariants:\n"
     "  - {name: a, accuracy: 170, params_m: 1, gflops: 1, memory_mb: 1, source: {kind: noop, name: a}}\n",
     "accuracy"),
    ("name: x\ntask: t\nmetric: m\nrequest: {kind: image}\nvariants:\n"
     "  - {name: a, accuracy: 80, params_m: 1, gflops: 1, memory_mb: 1, source: {kind: noop, name: a}}\n"
     "  - {name: b, accuracy: 70, params_m: 1, gflops: 1, memory_mb: 1, source: {kind: noop, name: a}}\n",
     "least to most accurate"),
    ("a: [\n", "not valid YAML"),
])
def test_bad_service_files(tmp_path, body, match):
    p = tmp_path / "bad.yaml"
    p.write_text(body)
    with pytest.raises(ConfigError, match=match) as e:
        load_service(str(p))
    assert "\n" not in str(e.value)


def test_unknown_service():
    with pytest.raises(ConfigError, match="unknown service 'nope'"):
        load_service("nope")


def test_shipped_scenarios():
    assert {"efficientnet", "yolo", "albert"} <= set(list_scenarios())
    for name in ("efficientnet", "yolo", "albert"):
        sc = load_scenario(name)
        assert sc.gpu == "a100-40gb" and sc.gpus == 2
        assert sc.objective.lam == 0.1 and sc.control_interval_s == 3600
        assert sc.load_profile().service == sc.service


def test_scenario_from_path_and_overrides(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text("service: efficientnet\nworkload: {kind: constant, rate_rps: 1.0}\n")
    sc = load_scenario(str(p))
    assert sc.name == "s" and sc.workload.mean_rate() == 1.0
    assert load_scenario(str(p), gpus=4).gpus == 4


@pytest.mark.parametrize("body,match", [
    ("service: efficientnet\n", "field workload"),
    ("service: efficientnet\nworkload: {kind: constant, rate_rps: -1}\n", "rate_rps"),
    ("service: efficientnet\ngpu: v100\nworkload: {kind: constant, rate_rps: 1}\n", "unknown GPU model 'v100'"),
    ("service: nope\nworkload: {kind: constant, rate_rps: 1}\n", "unknown service 'nope'"),
    ("service: efficientnet\nworkload: {kind: constant, rate_rps: 1}\nobjective: {lambda: 2}\n", "objective.lambda"),
    ("service: efficientnet\nworkload: {kind: constant, rate_rps: 1}\nbogus: 1\n", "bogus"),
])
def test_bad_scenarios(tmp_path, body, match):
    p = tmp_path / "bad.yaml"
    p.write_text(body)
    with pytest.raises(ConfigError, match=match) as e:
        load_scenario(str(p))
    assert "\n" not in str(e.value) and "bad.yaml" in str(e.value)
