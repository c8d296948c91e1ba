"""`clover-rl traces`: show (files, shipped names, --json), list, synth; one-line errors."""
from __future__ import annotations

import json

import numpy as np

from clover_rl.carbon.trace import load_trace
from clover_rl.cli import main


def test_show_single_column_file(tmp_path, capsys):
    p = tmp_path / "ciso.csv"
    p.write_text("CISO_March\n" + "\n".join(str(100 + i) for i in range(49)) + "\n")
    assert main(["traces", "show", str(p)]) == 0
    out = capsys.readouterr().out
    assert "2000-01-01T00:00:00Z .. 2000-01-03T00:00:00Z" in out and "49 samples" in out
    assert "resolution:  1 h" in out and "min 100.0  mean 124.0  max 148.0" in out
    assert "gaps:        0 missing" in out and "CISO_March" in out


def test_show_json_reports_interpolation_and_warns(tmp_path, capsys):
    p = tmp_path / "gap.csv"
    p.write_text("timestamp,g_per_kwh\n2021-03-01T00:00Z,100\n2021-03-01T02:00Z,300\n"
                 "2021-03-01T03:00Z,300\n")
    assert main(["traces", "show", str(p), "--json"]) == 0
    cap = capsys.readouterr()
    d = json.loads(cap.out)
    assert d["n"] == 4 and d["interpolated_steps"] == 1 and d["resolution_s"] == 3600.0
    assert d["min"] == 100.0 and d["max"] == 300.0
    assert "warning:" in cap.err and "interpolated 1 missing step" in cap.err


def test_show_shipped_name_and_period(capsys):
    assert main(["traces", "show", "caiso_pge", "--period", "eval", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["start"].startswith("2021-01-01") and d["end"].startswith("2021")
    assert "SGIP" in d["provenance"] and d["synthetic"] is False
    assert main(["traces", "show", "caiso_sce:train", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["end"].startswith("2020-12-31")


def test_list(capsys):
    assert main(["traces", "list"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    by_name = {r[0]: r for r in rows}
    assert {"caiso_pge", "caiso_sce", "fr", "pl", "se"} <= set(by_name)
    assert by_name["caiso_pge"][1:3] == ["marginal", "train"]
    assert by_name["se"][1:3] == ["average", "heldout"]


def test_show_every_shipped_grid(capsys):
    from clover_rl.carbon.shipped import list_shipped

    for name in list_shipped():
        assert main(["traces", "show", name, "--period", "eval", "--json"]) == 0
        d = json.loads(capsys.readouterr().out)
        assert d["name"] == name and d["gaps"] == 0 and d["n"] > 24 * 200


def test_synth_writes_a_labelled_trace_that_show_reads(tmp_path, capsys):
    out = tmp_path / "s.csv"
    assert main(["traces", "synth", "--shape", "wind", "--days", "2", "--seed", "3",
                 "--out", str(out)]) == 0
    assert "48 hourly samples" in capsys.readouterr().out
    tr = load_trace(out)
    assert len(tr) == 48 and tr.synthetic
    assert main(["traces", "synth", "--shape", "wind", "--days", "2", "--seed", "3",
                 "--out", str(tmp_path / "t.csv")]) == 0
    np.testing.assert_array_equal(load_trace(tmp_path / "t.csv").values, tr.values)
    capsys.readouterr()
    assert main(["traces", "show", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["synthetic"] is True


def test_errors_are_one_line_with_exit_code_2(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,g_per_kwh\n2021-03-01T00:00Z,1\n2021-03-01T01:00Z,-5\n")
    cases = [
        (["traces", "show", str(bad)], "line 3: negative carbon-intensity value -5"),
        (["traces", "show", "no_such_trace"], "carbon trace not found: no_such_trace"),
        (["traces", "show", "caiso_pge", "--period", "test"], "--period: expected one of"),
        (["traces", "show", f"{bad},unit=furlongs"], "units: unknown unit"),
        (["traces", "synth", "--shape", "tidal", "--out", str(tmp_path / "x.csv")], "shape: expected one of"),
        (["traces", "synth", "--days", "0", "--out", str(tmp_path / "x.csv")], "days: expected an integer"),
    ]
    for argv, msg in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and msg in err and "\n" not in err and "Traceback" not in err
