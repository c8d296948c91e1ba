"""The benchmark suite: cases are valid held-out windows, a case runs through evaluate's scoring,
the summary's median/worst gaps and counts, 80-column tables, output files, CLI errors."""
from __future__ import annotations

import json
import math

import pytest
import yaml

from clover_rl.carbon.shipped import GRIDS
from clover_rl.cli import main
from clover_rl.errors import ConfigError
from clover_rl.evaluation.benchmark import CaseResult, SuiteResult, run_case, run_suite
from clover_rl.evaluation.benchmark_report import format_suite, write_outputs
from clover_rl.evaluation.suite import (
    SUITE,
    Case,
    case_start,
    case_trace,
    case_workload,
    select_cases,
)
from clover_rl.paths import configs_dir
from clover_rl.scenario import load_scenario


def test_every_case_is_a_valid_window_never_used_in_training():
    assert len({c.name for c in SUITE}) == len(SUITE)
    for c in SUITE:
        sc = load_scenario(c.scenario, workload=case_workload(c, load_scenario(c.scenario).workload.mean_rate()))
        tr = case_trace(c)
        i = case_start(c, tr)
        assert i + c.hours <= len(tr)
        if c.grid.startswith("synth:"):
            assert int(c.grid.split(":")[2]) >= 2**31  # above any seed training draws
        else:  # held-out grid, or the eval period (by time) of a training grid
            assert c.period == "eval" and (GRIDS[c.grid].role == "heldout"
                                           or str(tr.times[i]) >= GRIDS[c.grid].eval_start)
        assert sc.workload.kind == c.load


def test_select_cases_and_bad_window():
    assert [c.name for c in select_cases(["albert/"])] == [c.name for c in SUITE if c.name.startswith("albert/")]
    with pytest.raises(ConfigError, match="matches no case"):
        select_cases(["nope"])
    bad = Case("x", "efficientnet", "se", "2030-01-01")
    with pytest.raises(ConfigError, match="outside"):
        case_start(bad, case_trace(bad))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> str:
    """A 1-GPU, two-variant EfficientNet scenario: a fast oracle."""
    d = tmp_path_factory.mktemp("tiny_bench")
    svc = yaml.safe_load((configs_dir() / "services" / "efficientnet.yaml").read_text())
    svc["variants"] = [v for v in svc["variants"] if v["name"] in ("b1", "b7")]
    (d / "efficientnet.yaml").write_text(yaml.safe_dump(svc))
    sc = {"name": "tiny", "service": "efficientnet.yaml", "gpus": 1, "carbon": {"trace": "caiso_pge", "forecast_hours": 2},
          "workload": {"kind": "constant", "rate_rps": 1.0}, "sla_ms": 1500.0}
    (d / "tiny.yaml").write_text(yaml.safe_dump(sc))
    return str(d / "tiny.yaml")


def test_a_case_is_scored_as_evaluate_scores_it(tiny):
    from clover_rl.evaluation import evaluate_policies

    case = Case("tiny/wind", tiny, f"synth:wind:{2**31 + 7}", "2023-01-02", "diurnal", hours=6)
    r = run_case(case, ["base", "random", "oracle"])
    tr = case_trace(case)
    ref = evaluate_policies(tiny, ["random"], carbon_trace=tr, hours=6, start=0, progress=False,
                            env_kwargs={"workload": case_workload(case, 1.0)})
    assert r.rows["random"]["objective"] == pytest.approx(ref.runs["random"].summary["objective"])
    assert r.rows["base"]["oracle_gap_pct"] == pytest.approx(100.0) or math.isnan(r.rows["base"]["oracle_gap_pct"])
    assert r.rows["oracle"]["reconfigurations"] >= 0 and r.rows["random"]["sla_intervals"] >= 0


def _fake(gaps: dict[str, list[float]], sla: dict[str, list[int]]) -> SuiteResult:
    cases = []
    for i in range(len(next(iter(gaps.values())))):
        rows = {p: {"objective": -g[i], "carbon_saving_pct": 10.0, "accuracy_drop_pct": 1.0,
                    "sla_intervals": sla[p][i], "reconfigurations": 2, "oracle_gap_pct": g[i]}
                for p, g in gaps.items()}
        cases.append(CaseResult(Case(f"case-with-a-long-name-{i}", "efficientnet", "se", "2018-06-11"),
                                rows, {"shipped": "/a/very/long/path/to/checkpoints/efficientnet"},
                                700.0, "se", 1.0, 1.0))
    return SuiteResult("v1", list(gaps), cases, 3.0)


def test_summary_median_worst_and_counts_against_the_paper():
    res = _fake({"shipped": [1.0, 4.0, math.nan, 20.0], "clover": [30.0, 2.0, 50.0, 40.0]},
                {"shipped": [0, 1, 0, 0], "clover": [0, 0, 2, 0]})
    s = {r["policy"]: r for r in res.summary()}
    assert s["shipped"]["median_gap_pct"] == 4.0 and s["shipped"]["worst_gap_pct"] == 20.0
    assert s["shipped"]["gap_cases"] == 3
    assert s["shipped"]["objective_ge_paper"] == 2  # worse in case 1; the NaN case counts as not better
    assert s["shipped"]["sla_le_paper"] == 3 and s["clover"]["sla_le_paper"] == 4


def test_tables_fit_80_columns_and_files_are_written(tmp_path):
    res = _fake({"shipped": [1.0, 4.0], "clover": [3.0, 2.0], "base": [100.0, 100.0], "oracle": [0.0, 0.0]},
                {"shipped": [0, 0], "clover": [0, 1], "base": [0, 0], "oracle": [0, 0]})
    text = format_suite(res, width=80)
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "median" in text and "case-with-a-long-name-1" in text
    paths = write_outputs(res, tmp_path)
    assert paths["png"].stat().st_size > 1000
    assert json.loads(paths["json"].read_text())["summary"][0]["worst_gap_pct"] == 4.0
    assert len(paths["csv"].read_text().splitlines()) == 1 + 2 * 4
    md = paths["md"].read_text().splitlines()
    assert md[0].startswith("| case | oracle gap %: shipped / clover |")
    assert md[2].startswith("| case-with-a-long-name-0 | 1.0 / 3.0 |")  # base/oracle left out of gaps
    assert any("shipped: median / worst oracle gap 2.5 / 4.0%" in x for x in md)


def test_gap_plot_gives_each_case_a_slot_even_with_one_case(tmp_path, monkeypatch):
    """One case's markers sit near its tick, not spread edge to edge by autoscaling."""
    from matplotlib.figure import Figure

    from clover_rl.evaluation.benchmark_report import plot_gaps

    seen: list[tuple[float, float]] = []
    real = Figure.savefig
    monkeypatch.setattr(Figure, "savefig",
                        lambda self, *a, **k: (seen.append(self.axes[0].get_xlim()), real(self, *a, **k))[1])
    plot_gaps(_fake({"shipped": [0.0], "clover": [30.0]}, {"shipped": [0], "clover": [1]}), tmp_path / "g.png")
    assert seen == [(-0.5, 0.5)]


def test_run_suite_rejects_unknown_policy_before_running():
    with pytest.raises(ConfigError, match="unknown policy"):
        run_suite(SUITE[:1], ["no-such-policy"], workers=1)


def test_cli_list_and_one_line_errors(capsys):
    assert main(["benchmark", "--list"]) == 0
    out = capsys.readouterr().out
    assert all(c.name in out for c in SUITE) and max(len(x) for x in out.splitlines()) <= 80
    assert main(["benchmark", "--case", "nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err


def test_cli_prints_each_case_then_the_summary_and_writes_files(monkeypatch, capsys, tmp_path):
    import clover_rl.evaluation.benchmark as bm

    fake = _fake({"shipped": [1.0, 4.0], "clover": [3.0, 2.0], "base": [100.0, 100.0], "oracle": [0.0, 0.0]},
                 {"shipped": [0, 0], "clover": [0, 1], "base": [0, 0], "oracle": [0, 0]})

    def run_suite(cases, policies, *, seed, workers, on_case, ray_address):
        assert policies == ["shipped", "clover"] and workers == 1 and ray_address is None
        for c in fake.cases:
            on_case(c)
        return fake

    monkeypatch.setattr(bm, "run_suite", run_suite)
    argv = ["benchmark", "--policy", "shipped", "--policy", "clover", "--workers", "1", "--no-progress",
            "--out", str(tmp_path)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.index("case-with-a-long-name-0") < out.index("case-with-a-long-name-1") < out.index("per policy")
    assert (tmp_path / "benchmark.csv").exists() and (tmp_path / "benchmark.png").exists()
