"""Live deployments on the CPU backend (real worker processes, front end, controller process).

The fault-injection run is ``benchmarks/fault_injection.py`` itself, with a short interval: a
killed worker, a failing carbon API (500, garbage, timeout), a failed reconfiguration and a
killed controller process, under steady load -- and no request lost.
"""
from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from clover_rl.carbon.resolve import resolve_trace

pytestmark = [pytest.mark.live, pytest.mark.timeout(300)]
ROOT = Path(__file__).resolve().parents[2]


def _benchmark():
    spec = importlib.util.spec_from_file_location("fault_injection", ROOT / "benchmarks" / "fault_injection.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_faults_under_load_lose_nothing(tmp_path):
    r = _benchmark().run(interval_s=4.0, rate=2.5, state_dir=tmp_path / "state", echo=lambda _t: None,
                         tail_intervals=1)
    assert r["sent"] > 50 and r["answered"] == r["sent"] and r["lost"] == 0
    assert r["ok"] == r["sent"], r["explicit_errors"]  # a worker was always alive: no error status at all
    assert all("NOT" not in v for v in r["faults"].values()), r["faults"]
    c = r["counters"]
    assert c["restarts"] == 1 and r["supervisor_restarts"] == 1 and r["controller_alive"]
    assert c["stale_readings"] >= 3 and c["failed_reconfigurations"] >= 1 and c["rollbacks"] >= 1
    assert r["metrics"]["clover_controller_up"] == "1.0" and "clover_controller_configuration_index" in r["metrics"]
    st = json.loads((tmp_path / "state" / "state.json").read_text())  # the state survived, readable
    assert st["config"] == r["state_config"] and st["pending"] is None
    kinds = [json.loads(line)["kind"] for line in (tmp_path / "state" / "decisions.jsonl").read_text().splitlines()]
    assert kinds.count("resume") == 1 and "rollback" in kinds


def test_deploy_cli_dry_run_then_report(tmp_path):
    state = tmp_path / "state"
    cmd = [sys.executable, "-m", "clover_rl.cli", "deploy", "--scenario", "efficientnet", "--policy", "greedy-carbon",
           "--carbon", "file:caiso_pge:eval,speed=900", "--interval", "4s", "--duration", "10s", "--port", "0",
           "--state", str(state), "--models", "emulated", "--load", "2", "--dry-run"]
    p = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    out = p.stdout
    assert "KServe v2 front end on http://127.0.0.1:" in out
    assert "start: brought the service up with 7g:b7" in out and "(dry run)" in out
    # speed=900: one trace hour per 4 s of wall clock, so a slow start-up (a minute on a loaded
    # machine) begins some hours into the 2021 trace; the reading must be one of its first day's
    m = re.search(r"#0 CI (\d+) g/kWh -> keep 7g:b7 \(dry run; policy: ", out)
    first_day = {round(float(v)) for v in resolve_trace("caiso_pge", period="eval").values[:24]}
    assert m and int(m.group(1)) in first_day, out[-2000:]
    assert "load generator: sent=" in out and " lost=0" in out
    dec = [json.loads(line) for line in (state / "decisions.jsonl").read_text().splitlines() if '"decision"' in line]
    assert dec and all(not d["applied"] and d["config"] == "7g:b7" for d in dec)
    r = subprocess.run([sys.executable, "-m", "clover_rl.cli", "report", "--state", str(state)],
                       check=False, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "greedy-carbon" in r.stdout and (state / "deployment.png").exists()
