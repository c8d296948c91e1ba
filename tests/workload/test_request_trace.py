"""Per-request traces (Azure LLM layout), format detection, and scenario workloads end to end."""
from __future__ import annotations

import numpy as np
import pytest
import yaml

from clover_rl.errors import CloverError
from clover_rl.scenario import Scenario, load_scenario
from clover_rl.workload import RequestReplay, TraceRate, detect_format, workload_from_config


def _azure(tmp_path, n_per_min=(30, 90, 60)):
    rows = ["TIMESTAMP,ContextTokens,GeneratedTokens"]
    t0 = np.datetime64("2023-11-16T18:15:00.0000000", "ns")
    rng = np.random.default_rng(0)
    for m, n in enumerate(n_per_min):
        for s in np.sort(rng.uniform(0, 60, n)):
            ts = t0 + np.timedelta64(int((m * 60 + s) * 1e9), "ns")
            rows.append(f"{str(ts).replace('T', ' ')[:27]},374,44")
    p = tmp_path / "azure.csv"
    p.write_text("\n".join(rows) + "\n")
    return p


def test_azure_layout_is_read_as_requests_and_binned(tmp_path):
    p = _azure(tmp_path)
    assert detect_format(p) == "requests"
    w = workload_from_config({"kind": "trace", "path": str(p)})
    assert isinstance(w, RequestReplay)
    assert w.rates(np.array([10.0, 70.0, 130.0])) == pytest.approx([0.5, 1.5, 1.0])
    assert w.nominal_rate() == pytest.approx(1.0)
    a = w.arrivals(0.0, 60.0, 0)  # the recorded arrivals, exactly
    assert a.size == 30 and np.all(np.diff(a) >= 0)
    assert w.arrivals(0.0, 60.0, 1).tolist() == a.tolist()
    assert w.arrivals(180.0, 60.0, 0).size == 30  # wraps around
    r = workload_from_config({"kind": "trace", "path": str(p), "replay": "rates", "bin_s": 60})
    assert r.arrivals(60.0, 600.0, 0).size != 0 and r.rates(np.array([70.0]))[0] == pytest.approx(1.5)


def test_rate_trace_units_from_file_comment_or_field(tmp_path):
    p = tmp_path / "r.csv"
    p.write_text("# units: req/min\ntimestamp,rate\n2021-01-01T00:00Z,120\n2021-01-01T01:00Z,60\n")
    w = workload_from_config({"kind": "trace", "path": str(p)})
    assert isinstance(w, TraceRate) and w.rate_at(0) == pytest.approx(2.0)
    q = tmp_path / "q.csv"
    q.write_text("timestamp,rate\n2021-01-01T00:00Z,7200\n2021-01-01T01:00Z,3600\n")
    assert workload_from_config({"kind": "trace", "path": str(q), "units": "rph"}).rate_at(3600) == pytest.approx(1.0)


@pytest.mark.parametrize("body,match", [
    ("TIMESTAMP,ContextTokens\n2023-11-16 18:15:46.68,3\nyesterday,4\n", "line 3: cannot parse timestamp"),
    ("TIMESTAMP,ContextTokens\n", "no requests"),
    ("ContextTokens,GeneratedTokens\n3,4\n", "rate"),
])
def test_malformed_request_traces_are_one_line_errors(tmp_path, body, match):
    p = tmp_path / "bad.csv"
    p.write_text(body)
    with pytest.raises(CloverError, match=match) as e:
        workload_from_config({"kind": "trace", "path": str(p), **({"format": "requests"} if "TIMESTAMP" in body else {})})
    assert "\n" not in str(e.value)


def test_scenario_trace_workload_runs_and_reloads(tmp_path):
    p = tmp_path / "rates.csv"
    p.write_text("rate_rps\n1.0\n3.0\n2.0\n")
    sc = tmp_path / "s.yaml"
    sc.write_text(yaml.safe_dump({"service": "efficientnet", "episode_hours": 3,
                                  "workload": {"kind": "trace", "path": "rates.csv"}}))
    s = load_scenario(sc)
    assert s.workload.mean_rate() == pytest.approx(2.0)
    # what a run folder saves (model_dump) reloads to the same workload from anywhere
    again = Scenario.model_validate(s.model_dump(by_alias=True))
    assert again.build_workload().to_config() == s.build_workload().to_config()
    from clover_rl.envs.serving_env import CloverServingEnv

    env = CloverServingEnv(s)
    env.reset(seed=0, options={"start": 0})
    rates = []
    for _ in range(3):
        rates.append(env.rate())
        obs, _, _, _, info = env.step(env.catalog.base_index)
    assert rates == pytest.approx([1.0, 3.0, 2.0])
    assert obs[env.observation_names.index("request_rate_trend")] == pytest.approx(-0.5)


def test_missing_trace_file_fails_at_scenario_load(tmp_path):
    sc = tmp_path / "s.yaml"
    sc.write_text(yaml.safe_dump({"service": "efficientnet", "workload": {"kind": "trace", "path": "none.csv"}}))
    with pytest.raises(CloverError, match=r"s.yaml: field workload.path: .*none.csv: file not found"):
        load_scenario(sc)
