"""`clover-rl mig ...` and `clover-rl simulate` through the real entry point."""
from __future__ import annotations

import json

import pytest
import yaml

from clover_rl.cli import main


def run(capsys, *args):
    rc = main(list(args))
    out, err = capsys.readouterr()
    return rc, out, err


def test_mig_partitions_json(capsys):
    rc, out, _ = run(capsys, "mig", "partitions", "--gpu", "a100-40gb", "--json")
    assert rc == 0
    d = json.loads(out)
    assert len(d["partitions"]) == 19 and len(d["multisets"]) == 14


@pytest.mark.parametrize("service,count", [("efficientnet", "1282"), ("yolo", "438")])
def test_mig_configs_count(capsys, service, count):
    rc, out, _ = run(capsys, "mig", "configs", "--gpu", "a100-40gb", "--service", service, "--count")
    assert rc == 0 and out.strip() == count


def test_mig_export(capsys):
    rc, out, _ = run(capsys, "mig", "export", "--gpu", "a100-40gb", "--config", "4g:b7,3g:b5")
    assert rc == 0
    assert yaml.safe_load(out)["mig-configs"]["clover"][0]["mig-devices"] == {"4g.20gb": 1, "3g.20gb": 1}


def test_simulate_json_fields(capsys):
    rc, out, _ = run(capsys, "simulate", "--service", "efficientnet", "--gpu", "a100-40gb", "--gpus", "2",
                     "--config", "4g:b7,3g:b5", "--rate", "5", "--duration", "600", "--seed", "0",
                     "--carbon-intensity", "300", "--pue", "1.5", "--json")
    assert rc == 0
    d = json.loads(out)
    for k in ("p50_ms", "p95_ms", "p99_ms", "served", "dropped", "throughput_rps", "energy_j",
              "energy_per_request_j", "accuracy", "utilization", "carbon_g", "carbon_per_request_g"):
        assert k in d
    assert d["p50_ms"] <= d["p95_ms"] <= d["p99_ms"]
    assert d["carbon_g"] == pytest.approx(d["energy_j"] / 3.6e6 * 300 * 1.5)
    assert 83.78 <= d["accuracy"] <= 84.58
    assert len(d["utilization"]) == 4


def test_simulate_is_deterministic(capsys):
    args = ["simulate", "--service", "albert", "--config", "7g:base", "--rate", "3", "--duration", "120", "--json"]
    _, a, _ = run(capsys, *args)
    _, b, _ = run(capsys, *args)
    assert a == b


@pytest.mark.parametrize("args,needle", [
    (["--gpu", "v100"], "unknown GPU model 'v100'"),
    (["--config", "5g:b7"], "unknown MIG profile '5g'"),
    (["--config", "4g:b7,4g:b5"], "needs 8 compute slices"),
    (["--config", "7g:b9"], "unknown variant 'b9'"),
    (["--rate", "0"], "--rate must be positive"),
    (["--rate", "-2"], "--rate must be positive"),
    (["--duration", "0"], "--duration must be positive"),
    (["--rate", "abc"], "--rate"),
    (["--profile", "/nonexistent.yaml"], "profile file not found"),
    (["--service", "nope"], "unknown service 'nope'"),
])
def test_simulate_bad_input_one_line(capsys, args, needle):
    base = {"--service": "efficientnet", "--config": "7g:b7", "--rate": "1", "--duration": "60"}
    for i in range(0, len(args), 2):
        base[args[i]] = args[i + 1]
    flat = [x for kv in base.items() for x in kv]
    rc, out, err = run(capsys, "simulate", *flat)
    assert rc != 0
    assert needle in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err
