"""`clover-rl deploy --scenario llm --device cpu`: the shipped LLM scenario served by the CPU
stand-ins under a policy, with the LLM load generator; intervals are measured in tokens with
TTFT/TPOT percentiles."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.live, pytest.mark.slow, pytest.mark.timeout(420)]
ROOT = Path(__file__).resolve().parents[3]


def test_deploy_llm_scenario_under_a_policy(tmp_path: Path) -> None:
    state = tmp_path / "state"
    cmd = [sys.executable, "-m", "clover_rl.cli", "deploy", "--scenario", "llm", "--policy", "base",
           "--carbon", "file:caiso_pge:eval,speed=360", "--device", "cpu", "--gpus", "1", "--interval", "15s",
           "--duration", "35s", "--port", "0", "--load", "1", "--state", str(state)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=400, cwd=tmp_path,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    assert "brought the service up with 7g:llama-3.1-8b-bf16" in p.stdout
    rows = [json.loads(line) for line in (state / "decisions.jsonl").read_text().splitlines()]
    intervals = [r for r in rows if r["kind"] == "interval"]
    assert intervals
    m = intervals[0]["metrics"]
    assert m["served"] > 0 and m["variant_share"] == {"llama-3.1-8b-bf16": 1.0}
    assert {"ttft_p95_ms", "tpot_p95_ms", "requests_served"} <= set(m["extra"])
    assert m["served"] > m["extra"]["requests_served"]  # tokens, not requests, are the unit
    assert set(m["utilization"]) == {"gpu0/7g.40gb@0"}
