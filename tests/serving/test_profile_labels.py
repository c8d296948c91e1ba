"""Profiles say per figure how it was obtained: a CPU-measured profile has measured latency and
estimated energy, and `simulate --profile` prints that, not 'measured profile'."""
from __future__ import annotations

import json

import yaml

from clover_rl.cli import main
from clover_rl.serving.profile import load_default_profile, load_profile


def _cpu_profile(tmp_path, with_field: bool):
    d = load_default_profile("efficientnet", "a100-40gb").to_dict()
    d["estimated"] = False
    d["method"] = ("live profiler on cpu: rates 1 req/s x 2 s per (slice, variant); service time measured "
                   "in the worker; energy ESTIMATED by the CPU power model (idle + per-busy-core watts)")
    if with_field:
        d["energy_estimated"] = True
    else:
        d.pop("energy_estimated", None)
    path = tmp_path / "cpu.yaml"
    path.write_text(yaml.safe_dump(d))
    return path


def test_labels_per_figure(tmp_path):
    assert load_default_profile("efficientnet", "a100-40gb").label() == "estimated"
    for with_field in (True, False):  # files from before the field carry it in `method`
        prof = load_profile(_cpu_profile(tmp_path, with_field))
        assert prof.figures() == {"latency": "measured", "energy": "estimated"}
        assert prof.label() == "measured latency, estimated energy"
        assert prof.to_dict()["energy_estimated"] is True


def test_simulate_prints_each_figure_label(tmp_path, capsys):
    path = _cpu_profile(tmp_path, True)
    argv = ["simulate", "--profile", str(path), "--service", "efficientnet", "--config", "7g:b1",
            "--rate", "1", "--duration", "30"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "(profile: measured latency, estimated energy)" in out and "measured profile" not in out
    assert any(ln.strip().startswith("p95_ms") and ln.endswith("(measured)") for ln in out.splitlines())
    assert any(ln.strip().startswith("energy_j") and ln.endswith("(estimated)") for ln in out.splitlines())
    assert main(argv + ["--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["figures"] == {"latency": "measured", "energy": "estimated"}
