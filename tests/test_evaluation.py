"""Evaluation runner: summary math by hand, one fresh env per policy on one window, bad windows."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from clover_rl.errors import ConfigError, TraceError
from clover_rl.evaluation import compare, evaluate_policies, summarize
from clover_rl.paths import configs_dir

CI = [300.0, 120.0, 80.0, 260.0, 310.0, 90.0, 70.0, 200.0]


def _row(carbon: float, served: int, acc: float, p95: float, obj: float, sla: float = 100.0,
         reconf: int = 0) -> dict[str, Any]:
    return {"carbon_g": carbon, "served": served, "accuracy": acc, "p95_ms": p95, "sla_ms": sla,
            "sla_violated": p95 > sla, "objective": obj, "reconfigurations": reconf,
            "dropped": 0, "energy_j": carbon * 10, "reward": obj}


def test_summary_math_matches_hand_calculation():
    base = summarize([_row(10, 100, 80, 100, 0.0), _row(10, 100, 80, 100, 0.0)])
    oracle = summarize([_row(5, 100, 79, 90, 0.05), _row(3, 100, 79, 90, 0.03)])
    pol = summarize([_row(6, 100, 78, 120, 0.02, reconf=2), _row(2, 50, 72, 90, 0.04, reconf=1)])
    s = compare(pol, base, oracle)
    # carbon/request: 8 g / 150 = 0.05333 vs BASE 20 g / 200 = 0.1 -> 46.67 % saved
    assert s["carbon_g"] == pytest.approx(8.0)
    assert s["carbon_per_request_g"] == pytest.approx(8 / 150)
    assert s["carbon_saving_pct"] == pytest.approx(100 * (0.1 - 8 / 150) / 0.1)
    # request-weighted accuracy (78*100 + 72*50) / 150 = 76 -> (80 - 76) / 80 = 5 % drop
    assert s["accuracy"] == pytest.approx(76.0)
    assert s["accuracy_drop_pct"] == pytest.approx(5.0)
    # one of two intervals over the SLA; p95 mean 105, max 120
    assert s["sla_violation_pct"] == pytest.approx(50.0)
    assert s["p95_ms"] == pytest.approx(105.0) and s["p95_max_ms"] == pytest.approx(120.0)
    # objective means: policy 0.03, oracle 0.04, base 0 -> gap (0.04-0.03)/(0.04-0) = 25 %
    assert s["objective"] == pytest.approx(0.03)
    assert s["oracle_gap_pct"] == pytest.approx(25.0)
    assert s["reconfigurations"] == 3 and s["served"] == 150 and s["intervals"] == 2
    assert compare(base, base, oracle)["oracle_gap_pct"] == pytest.approx(100.0)
    assert compare(oracle, base, oracle)["oracle_gap_pct"] == pytest.approx(0.0)
    assert compare(base, base, oracle)["carbon_saving_pct"] == 0.0


def test_undefined_relative_figures_are_nan():
    base = summarize([_row(10, 100, 80, 100, 0.01)])
    assert math.isnan(compare(base, base, base)["oracle_gap_pct"])  # oracle no better than BASE
    starved = summarize([_row(10, 0, 0, 100, -1.0)])
    assert math.isnan(starved["carbon_per_request_g"])
    assert math.isnan(compare(starved, base, base)["carbon_saving_pct"])
    with pytest.raises(ConfigError):
        summarize([])


# ------------------------------------------------------------------ runs on a tiny scenario
@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """A 1-GPU EfficientNet scenario with two variants (109 configurations) on an 8-hour trace."""
    d = tmp_path_factory.mktemp("tiny")
    svc = yaml.safe_load((configs_dir() / "services" / "efficientnet.yaml").read_text())
    svc["variants"] = [v for v in svc["variants"] if v["name"] in ("b1", "b7")]
    (d / "efficientnet.yaml").write_text(yaml.safe_dump(svc))
    (d / "ci.csv").write_text("g_per_kwh\n" + "\n".join(str(v) for v in CI) + "\n")
    sc = {"name": "tiny", "service": "efficientnet.yaml", "gpus": 1,
          "carbon": {"trace": str(d / "ci.csv"), "forecast_hours": 2},
          "workload": {"kind": "constant", "rate_rps": 1.0}, "episode_hours": 4, "sla_ms": 1500.0}
    (d / "tiny.yaml").write_text(yaml.safe_dump(sc))
    return d / "tiny.yaml"


class Fixed:
    """Always the same configuration; records what evaluation handed it."""

    def __init__(self, name: str, env: Any, pick: str) -> None:
        self.name = name
        self.env = env
        cat = env.catalog
        self.action = int(cat.base_index if pick == "base" else
                          next(i for i, c in enumerate(cat.configs) if cat.feasible[i]
                               and c.label() != cat.configs[cat.base_index].label()))
        self.resets = 0
        self.infos: list[dict] = []

    def reset(self) -> None:
        self.resets += 1

    def act(self, obs: np.ndarray, info: dict) -> int:
        assert "action_mask" in info and info["action_mask"][self.action]
        self.infos.append(info)
        return self.action


def _factory(made: dict):
    def make(spec: str, env: Any, seed: int) -> Fixed:
        if spec == "missing":
            raise ConfigError("unknown policy 'missing'")
        made[spec] = p = Fixed(spec, env, "base" if spec.lower() == "base" else "other")
        return p
    return make


def test_each_policy_gets_fresh_env_on_the_same_window(tiny):
    made: dict[str, Fixed] = {}
    res = evaluate_policies(tiny, ["other"], hours=3, start=2, factory=_factory(made), progress=False)
    assert res.policies == ["other"] and set(res.runs) == {"other", "base", "oracle"}
    assert res.references_only == ["base", "oracle"] and list(res.summaries()) == ["other"]
    envs = {id(p.env) for p in made.values()}
    assert len(envs) == 3  # one fresh env each
    for p in made.values():
        assert p.resets == 1 and len(p.infos) == 3
    for run in res.runs.values():
        assert [r["ci"] for r in run.rows] == CI[2:5]
        assert [r["step"] for r in run.rows] == [0, 1, 2]
        assert run.rows[0]["time"] == "2000-01-01T02:00:00"
    assert res.runs["base"].summary["carbon_saving_pct"] == 0.0
    assert res.runs["oracle"].summary["oracle_gap_pct"] == 0.0
    assert res.estimated and res.variants == ("b1", "b7")
    js = res.to_json()
    assert list(js) == ["other"] and js["other"]["estimated"] is True


def test_whole_trace_without_hours_and_case_insensitive_references(tiny):
    made: dict[str, Fixed] = {}
    res = evaluate_policies(tiny, ["Base", "other"], factory=_factory(made), progress=False)
    assert res.hours == len(CI) and len(res.runs["other"].rows) == len(CI)
    assert set(res.runs) == {"Base", "other", "oracle"}  # "Base" is the BASE reference
    assert res.references == ("Base", "oracle") and res.references_only == ["oracle"]
    assert res.runs["Base"].summary["carbon_saving_pct"] == 0.0


@pytest.mark.parametrize("kw, msg", [
    ({"hours": 9}, "runs past the end"),
    ({"hours": 4, "start": 5}, "runs past the end"),
    ({"hours": 0}, "positive"),
    ({"hours": -3}, "positive"),
    ({"start": -1}, "start"),
    ({"start": 8}, "past the end"),
])
def test_bad_windows(tiny, kw, msg):
    with pytest.raises(ConfigError, match=msg):
        evaluate_policies(tiny, ["base"], factory=_factory({}), progress=False, **kw)


def test_bad_policies_and_traces(tiny, tmp_path):
    with pytest.raises(ConfigError, match="more than once"):
        evaluate_policies(tiny, ["base", "base"], factory=_factory({}), progress=False)
    with pytest.raises(ConfigError, match="no policy"):
        evaluate_policies(tiny, [], factory=_factory({}), progress=False)
    with pytest.raises(ConfigError, match="missing"):
        evaluate_policies(tiny, ["missing"], hours=1, factory=_factory({}), progress=False)
    with pytest.raises(TraceError, match="not found"):
        evaluate_policies(tiny, ["base"], carbon_trace=tmp_path / "nope.csv", factory=_factory({}))


def test_registry_policies_end_to_end(tiny):
    res = evaluate_policies(tiny, ["base", "clover", "greedy-carbon", "oracle"], hours=3, seed=1,
                            progress=False)
    s = res.summaries()
    assert s["base"]["oracle_gap_pct"] == pytest.approx(100.0)
    assert s["oracle"]["oracle_gap_pct"] == pytest.approx(0.0)
    assert s["oracle"]["objective"] > s["base"]["objective"]
    assert s["clover"]["reconfigurations"] > 0  # it explores (probes are paid in the interval)
    assert all(len(r.rows) == 3 for r in res.runs.values())


def test_hours_count_hours_at_a_five_minute_interval(tiny):
    """--hours is trace time: at a 300 s control interval 2 h = 24 intervals; the default is the
    whole trace (8 hourly values -> 96 intervals), converted once, not twice."""
    from clover_rl.scenario import load_scenario

    sc = load_scenario(tiny, control_interval_s=300.0)
    made: dict[str, Fixed] = {}
    res = evaluate_policies(sc, ["other"], hours=2, start=3, factory=_factory(made), progress=False)
    assert res.hours == 2 and res.intervals == 24 and res.interval_s == 300.0
    assert len(res.runs["other"].rows) == 24 and res.meta()["intervals"] == 24
    whole = evaluate_policies(sc, ["other"], factory=_factory({}), progress=False)
    assert whole.hours == len(CI) and len(whole.runs["other"].rows) == 12 * len(CI)
    with pytest.raises(ConfigError, match=r"hours=9 \(108 intervals of 300 s\).*at most 8 h"):
        evaluate_policies(sc, ["other"], hours=9, factory=_factory({}), progress=False)
