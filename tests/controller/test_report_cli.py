"""`clover-rl report` (table, CSV, JSON, PNG) and `clover-rl deploy` argument errors (one line, exit 2)."""
from __future__ import annotations

import csv
import json
import re

import pytest

from clover_rl.cli import main
from tests.support.controller import BAD, FixedPolicy


@pytest.fixture
def deployed(rig, env):
    ctl = rig.controller(FixedPolicy(env.catalog.lookup(BAD)), guard_windows=2, quarantine_intervals=1)
    ctl.start()
    rig.backend.fail_next(1)
    ctl.options.duration_s = 4 * 3600
    ctl.run()
    return rig


def test_report_table_files_and_plot(deployed, tmp_path, capsys):
    out = tmp_path / "rep"
    assert main(["report", "--state", str(deployed.state), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    for want in ("scenario", "efficientnet", "intervals", "carbon (g CO2)", "SLA guard triggers",
                 "failed reconfigurations rolled back", "configuration", "p95", "deployment.png"):
        assert want in text, want

    with open(out / "intervals.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["index"]) for r in rows] == [0, 1, 2, 3]
    assert float(rows[0]["carbon_g"]) > 0 and rows[0]["config"] == "7g:b7"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["intervals"] == 4 and summary["rollbacks"] == 1 and summary["guard_triggers"] >= 1
    assert summary["counters"]["intervals"] == 4
    png = (out / "deployment.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000


def test_report_fits_80_columns_with_signed_rewards(deployed, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["report", "--state", str(deployed.state), "--out", str(deployed.state / "o")]) == 0
    table = capsys.readouterr().out.split("wrote ")[0]
    assert all(len(ln) <= 80 for ln in table.splitlines()), table
    rows = [ln for ln in table.splitlines() if re.match(r"\s*\d+\s", ln)]
    assert len(rows) == 4
    assert all(re.search(r"[+-]\d\.\d{4}$", ln) for ln in rows), rows  # reward, signed
    assert "mean reward" in table


def test_report_counts_match_the_deploy_closing_line(deployed):
    from clover_rl.controller.report import closing_line, load_report, time_axis_label

    rep = load_report(deployed.state)
    line = closing_line(rep)
    assert f"intervals logged: {rep.summary['intervals']}" in line
    assert f"requests answered in them: {rep.summary['served']}" in line
    assert "intervals_partial" in rep.summary
    assert time_axis_label({"carbon_source": "file:caiso_pge:eval,speed=360", "interval_s": 10.0}).endswith(
        "each 10 s interval = 1 trace hour")
    assert time_axis_label({"carbon_source": "ukgrid", "interval_s": 3600.0}) == "wall-clock time (UTC)"


def test_report_defaults_to_the_state_folder(deployed, capsys):
    assert main(["report", "--state", str(deployed.state), "--rows", "2"]) == 0
    assert "intervals (2 of 4)" in capsys.readouterr().out
    assert (deployed.state / "deployment.png").exists()


def test_report_errors(tmp_path, capsys):
    assert main(["report", "--state", str(tmp_path / "nope")]) == 2
    assert capsys.readouterr().err.strip() == f"error: --state {tmp_path / 'nope'}: no such folder"
    assert main(["report", "--state", str(tmp_path)]) == 2
    assert "no decisions.jsonl here" in capsys.readouterr().err


@pytest.mark.parametrize("args,msg", [
    (["--interval", "soon"], "error: --interval: expected a duration like 30s, 5m, 1h or 1h30m, got 'soon'"),
    (["--duration", "-1h"], "error: --duration: expected a duration like 30s, 5m, 1h or 1h30m, got '-1h'"),
    (["--carbon", "nope:x"], "error: carbon source 'nope:x': unknown kind 'nope'"),
    (["--policy", "wizard"], "error: unknown policy 'wizard'"),
    (["--policy", "base", "--learn"], "error: --learn needs a MaskablePPO run folder as --policy (got base)"),
    (["--policy", "/no/such/run"], "error: checkpoint not found: /no/such/run"),
    (["--device", "tpu"], "error: --device must be cpu or cuda, got 'tpu'"),
    (["--models", "fake"], "error: --models must be one of real, emulated, got 'fake'"),
    (["--scenario", "nosuch"], "error: unknown scenario 'nosuch'"),
])
def test_deploy_bad_arguments(args, msg, tmp_path, capsys):
    base = {"--scenario": "efficientnet", "--policy": "base", "--carbon": "file:caiso_pge,speed=60",
            "--state": str(tmp_path / "s"), "--port": "0"}
    flags = [a for a in args if a.startswith("--")]
    argv = ["deploy"]
    for k, v in base.items():
        if k not in flags:
            argv += [k, v]
    assert main(argv + args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(msg) and "\n" not in err
