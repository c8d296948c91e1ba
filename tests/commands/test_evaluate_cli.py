"""`clover-rl evaluate`: table, --json keyed by the --policy arguments, --out files, one-line errors."""
from __future__ import annotations

import csv
import json

import pytest
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from clover_rl.cli import main
from clover_rl.paths import configs_dir

CI = [300.0, 120.0, 80.0, 260.0, 310.0, 90.0]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[str, str]:
    """A 1-GPU, two-variant EfficientNet scenario (fast oracle) and a 6-hour single-column trace."""
    d = tmp_path_factory.mktemp("tiny_cli")
    svc = yaml.safe_load((configs_dir() / "services" / "efficientnet.yaml").read_text())
    svc["variants"] = [v for v in svc["variants"] if v["name"] in ("b1", "b7")]
    (d / "efficientnet.yaml").write_text(yaml.safe_dump(svc))
    (d / "ci.csv").write_text("CISO\n" + "\n".join(str(v) for v in CI) + "\n")
    sc = {"name": "tiny", "service": "efficientnet.yaml", "gpus": 1,
          "carbon": {"trace": "caiso_pge", "forecast_hours": 2},
          "workload": {"kind": "constant", "rate_rps": 1.0}, "sla_ms": 1500.0}
    (d / "tiny.yaml").write_text(yaml.safe_dump(sc))
    return str(d / "tiny.yaml"), str(d / "ci.csv")


def _one_line_error(capsys, argv: list[str], *needles: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    for n in needles:
        assert n in err, err


def test_json_keyed_by_policy_args_as_given(tiny, capsys):
    scenario, trace = tiny
    argv = ["evaluate", "--scenario", scenario, "--carbon-trace", trace, "--policy", "base",
            "--policy", "Oracle", "--policy", "greedy-carbon", "--hours", "3", "--start", "1", "--json"]
    assert main(argv) == 0
    d = json.loads(capsys.readouterr().out)  # exactly one JSON object on stdout
    assert list(d) == ["base", "Oracle", "greedy-carbon"]
    fields = {"carbon_g", "carbon_per_request_g", "carbon_saving_pct", "accuracy", "accuracy_drop_pct",
              "p95_ms", "p95_max_ms", "sla_violation_pct", "reconfigurations", "objective",
              "oracle_gap_pct", "estimated"}
    assert all(fields <= set(v) for v in d.values())
    assert d["base"]["carbon_saving_pct"] == 0.0 and d["base"]["oracle_gap_pct"] == 100.0
    assert d["Oracle"]["oracle_gap_pct"] == 0.0 and d["base"]["estimated"] is True


def test_table_and_out_files(tiny, tmp_path, capsys):
    scenario, trace = tiny
    out = tmp_path / "eval"
    argv = ["evaluate", "--scenario", scenario, "--carbon-trace", trace, "--policy", "clover",
            "--hours", "2", "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "clover" in text and "saving" in text and "oracle" in text
    assert "ESTIMATED" in text and "base and oracle run as references, not shown" in text
    for name in ("summary.csv", "summary.json", "evaluation.json", "intervals.csv"):
        assert (out / name).stat().st_size > 0
    png = (out / "evaluation.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    assert list(json.loads((out / "summary.json").read_text())) == ["clover"]
    rows = list(csv.DictReader((out / "intervals.csv").open()))
    assert len(rows) == 2 and {"share_b1", "share_b7", "ci", "config"} <= set(rows[0])
    acc = EventAccumulator(str(out / "tb" / "clover"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"offline/carbon_g", "offline/carbon_per_request_g", "offline/accuracy", "offline/p95_ms",
            "offline/objective", "offline/reconfigurations", "offline/carbon_saving_pct",
            "offline/accuracy_drop_pct", "offline/sla_violation_pct", "offline/oracle_gap_pct"} <= tags


@pytest.mark.parametrize("columns", ["80", "60"])
def test_table_fits_the_terminal_width_with_whole_numbers(tiny, capsys, monkeypatch, columns):
    scenario, trace = tiny
    argv = ["evaluate", "--scenario", scenario, "--carbon-trace", trace, "--policy", "clover",
            "--policy", "greedy-carbon", "--policy", "base", "--hours", "3", "--no-progress"]
    assert main(argv + ["--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    monkeypatch.setenv("COLUMNS", columns)
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert all(len(ln) <= int(columns) for ln in text.splitlines()), text
    for policy, s in figures.items():  # each row carries its objective and saving whole
        row = next(ln for ln in text.splitlines() if ln.startswith(policy + " "))
        assert f"{s['objective']:+.4f}" in row and f"{s['carbon_saving_pct']:+.1f}" in row, row
    assert "not shown at" in text and "--json" in text


def test_tb_dir_uses_training_style_run_names(tiny, tmp_path, capsys):
    scenario, trace = tiny
    argv = ["evaluate", "--scenario", scenario, "--carbon-trace", trace, "--policy", "base",
            "--hours", "1", "--tb-dir", str(tmp_path / "runs"), "--json"]
    assert main(argv) == 0
    json.loads(capsys.readouterr().out)
    (run,) = (tmp_path / "runs").iterdir()
    assert run.name.startswith("tiny__eval__base__0__")
    assert list((run / "tb").glob("events.out.tfevents.*"))


@pytest.mark.parametrize("extra, needles", [
    (["--policy", "nope"], ["unknown policy 'nope'"]),
    (["--policy", "base", "--policy", "./no/such/run"], ["./no/such/run"]),
    (["--policy", "base", "--carbon-trace", "/nonexistent/ci.csv"], ["carbon trace not found"]),
    (["--policy", "base", "--hours", "7"], ["hours=7", "6 intervals"]),
    (["--policy", "base", "--hours", "0"], ["positive"]),
    (["--policy", "base", "--hours", "-2"], ["positive"]),
    (["--policy", "base", "--start", "-1"], ["start"]),
    (["--policy", "base", "--policy", "base"], ["more than once"]),
    (["--policy", "base", "--hours", "x"], ["--hours"]),
    (["--policy", "base", "--seed", "-1"], ["--seed"]),  # was gymnasium's traceback
])
def test_bad_input_is_one_line_exit_2(tiny, capsys, extra, needles):
    scenario, trace = tiny
    argv = ["evaluate", "--scenario", scenario, "--no-progress"]
    if "--carbon-trace" not in extra:
        argv += ["--carbon-trace", trace]
    _one_line_error(capsys, argv + extra, *needles)


def test_unknown_scenario(capsys):
    _one_line_error(capsys, ["evaluate", "--scenario", "nosuch", "--policy", "base"], "unknown scenario")


def test_missing_scenario_file_is_called_a_file(capsys):
    _one_line_error(capsys, ["evaluate", "--scenario", "my/nosuch.yaml", "--policy", "base"],
                    "scenario file not found: my/nosuch.yaml")


@pytest.mark.parametrize("argv", [
    ["benchmark", "--case", "efficientnet/se/constant", "--policy", "mpc", "--seed", "-1"],
    ["simulate", "--service", "efficientnet", "--config", "7g:b1", "--rate", "1", "--seed", "-1"],
    ["deploy", "--scenario", "efficientnet", "--policy", "mpc", "--seed", "-1"],
])
def test_negative_seed_is_a_usage_error(capsys, argv):
    _one_line_error(capsys, argv, "--seed")
