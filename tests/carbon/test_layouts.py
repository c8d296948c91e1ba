"""Published carbon-file layouts and the one trace spec, in every place a trace is named.

Faults from issue 10 part 1: an Electricity Maps export was refused ("cannot tell which
column") everywhere but ``traces show --value-column``; a kg/kWh SGIP MOER file was read as
g/kWh (every figure 1000x too small) with only a raw Python warning; no unit could be set
for ``evaluate``.
"""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import yaml

from clover_rl.carbon.providers.registry import parse_source
from clover_rl.carbon.resolve import TraceSpec, parse_trace_spec, resolve_trace
from clover_rl.carbon.trace import load_trace
from clover_rl.cli import main
from clover_rl.errors import ConfigError, TraceError
from tests.support.published import (
    em_export,
    em_older,
    sgip_moer,
    uk_csv,
    uk_json,
    watttime_csv,
    watttime_json,
)

# ---------------------------------------------------------------- layouts


def test_electricity_maps_export_reads_lca_by_default_and_says_so(tmp_path):
    p = em_export(tmp_path / "DE_2023_hourly.csv")
    tr = load_trace(p)
    assert len(tr) == 48 and tr.resolution_s == 3600
    assert tr.values.min() == pytest.approx(260) and tr.values.max() == pytest.approx(460)
    assert "Electricity Maps export" in tr.provenance and "(LCA)" in tr.provenance
    assert "lca by default" in tr.provenance and "column=direct" in tr.provenance


@pytest.mark.parametrize("column", ["direct", "Direct", "Carbon Intensity gCO₂eq/kWh (direct)"])
def test_electricity_maps_direct_by_choice_or_header(tmp_path, column):
    tr = load_trace(em_export(tmp_path / "DE.csv"), value_column=column)
    assert tr.values.max() == pytest.approx(400) and "(direct)" in tr.provenance


def test_electricity_maps_ascii_and_older_exports(tmp_path):
    p = em_export(tmp_path / "a.csv")
    p.write_text(p.read_text(encoding="utf-8").replace("CO₂", "CO2"))
    assert load_trace(p).values.max() == pytest.approx(460)
    old = load_trace(em_older(tmp_path / "old.csv"))
    assert old.values.max() == pytest.approx(500) and "older" in old.provenance


def test_watttime_lbs_per_mwh_csv_and_json(tmp_path):
    tr = load_trace(watttime_csv(tmp_path / "wt.csv"))
    assert tr.resolution_s == 300 and tr.values.max() == pytest.approx(1400 * 0.453592)
    assert "WattTime" in tr.provenance and "lbs/MWh (layout)" in tr.provenance
    js = load_trace(watttime_json(tmp_path / "wt.json"))
    assert js.values[0] == pytest.approx(900 * 0.453592) and len(js) == 12


def test_sgip_moer_kg_per_kwh_gzip_is_converted(tmp_path):
    tr = load_trace(sgip_moer(tmp_path / "SGIP_PGE.csv.gz"))
    assert tr.resolution_s == 300 and len(tr) == 576
    assert 200 < tr.values.min() and tr.values.max() == pytest.approx(660)  # not 0.66
    assert "SGIP MOER" in tr.provenance and "kg/kWh (layout), converted to g/kWh" in tr.provenance


def test_sgip_moer_forced_to_grams_is_refused_with_the_likely_unit(tmp_path):
    p = sgip_moer(tmp_path / "m.csv.gz")
    with pytest.raises(TraceError, match=r"all <= 2 g/kWh when read as g/kWh \(given; max 0.66\).*"
                                         r"look like kg/kWh: add ',unit=kg/kWh'"):
        load_trace(p, units="g/kWh")


def test_unnamed_moer_column_in_kg_is_refused_not_read_as_grams(tmp_path):
    p = tmp_path / "moer.csv"
    p.write_text("timestamp,moer\n2021-03-01T00:00Z,0.31\n2021-03-01T01:00Z,0.42\n")
    with pytest.raises(TraceError, match=r"assumed.*kg/kWh.*--carbon-trace 'FILE,unit=kg/kWh'"):
        load_trace(p)
    assert list(resolve_trace(f"{p},unit=kg/kWh").values) == [310, 420]


def test_lbs_read_as_grams_too_high_names_lbs(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("timestamp,ci\n2021-03-01T00:00Z,2600\n2021-03-01T01:00Z,3100\n")
    with pytest.raises(TraceError, match=r"up to 3100 g/kWh.*look like lbs/MWh"):
        load_trace(p)


def test_gb_json_uses_actual_then_forecast_and_csv(tmp_path):
    tr = load_trace(uk_json(tmp_path / "gb.json"))
    assert tr.resolution_s == 1800 and len(tr) == 8
    assert list(tr.values[:6]) == [200, 205, 210, 215, 220, 225]
    assert list(tr.values[6:]) == [240, 245]  # forecasts where no actual is published yet
    assert "GB carbonintensity" in tr.provenance and "2 row(s) from 'intensity.forecast'" in tr.provenance
    fc = load_trace(tmp_path / "gb.json", value_column="forecast")
    assert fc.values[0] == 210
    assert load_trace(uk_csv(tmp_path / "gb.csv")).values[0] == 200


def test_json_errors_name_the_record(tmp_path):
    p = tmp_path / "bad.json"
    p.write_text(json.dumps({"data": [{"point_time": "2022-06-01T00:00Z", "value": 900},
                                      {"point_time": "2022-06-01T00:05Z", "value": -1}]}))
    with pytest.raises(TraceError, match=r"bad.json: record 2: negative carbon-intensity value"):
        load_trace(p)
    (tmp_path / "e.json").write_text('{"meta": {}}')
    with pytest.raises(TraceError, match="JSON holds no list of records"):
        load_trace(tmp_path / "e.json")


# ---------------------------------------------------------------- the spec


def test_spec_strings_and_mappings_mean_the_same():
    a = parse_trace_spec("x.csv,column=direct,unit=kgCO2/kWh")
    b = parse_trace_spec({"trace": "x.csv", "column": "direct", "unit": "kg/kWh"})
    assert a == b == TraceSpec("x.csv", "direct", None, "kg/kWh")
    assert str(a) == "x.csv,column=direct,unit=kg/kWh" and parse_trace_spec(str(a)) == a
    assert parse_trace_spec({"path": "y.csv,unit=lbs/MWh"}).unit == "lbs/MWh"


@pytest.mark.parametrize("spec,match", [
    ("x.csv,colum=direct", r"unknown option 'colum' \(valid: column, time_column, unit\)"),
    ("x.csv,unit=furlongs", "unknown unit 'furlongs'"),
    ("x.csv,unit=kg/kWh,oops", "expected key=value after the path"),
    ({"column": "lca"}, "needs 'trace'"),
    ("", "empty"),
])
def test_bad_specs_are_one_line_config_errors(spec, match):
    with pytest.raises(ConfigError, match=match):
        parse_trace_spec(spec)


def test_shipped_names_refuse_file_options():
    with pytest.raises(ConfigError, match="apply to files, not shipped traces"):
        resolve_trace("caiso_pge,unit=kg/kWh")


def test_scenario_carbon_block_takes_column_and_unit(tmp_path):
    from clover_rl.scenario import load_scenario

    p = em_export(tmp_path / "DE.csv")
    sc_path = tmp_path / "sc.yaml"
    sc_path.write_text(yaml.safe_dump({"name": "de", "service": "efficientnet",
                                       "carbon": {"trace": str(p), "column": "direct"},
                                       "workload": {"kind": "constant", "rate_rps": 1.0}}))
    sc = load_scenario(str(sc_path))
    assert resolve_trace(sc.carbon.trace_spec()).values.max() == pytest.approx(400)
    bad = yaml.safe_load(sc_path.read_text())
    bad["carbon"]["unit"] = "furlongs"
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    with pytest.raises(ConfigError, match="carbon.trace.*unknown unit 'furlongs'"):
        load_scenario(str(tmp_path / "bad.yaml"))


def test_env_constructor_and_reset_options_take_specs(tmp_path):
    from clover_rl.envs.serving_env import CloverServingEnv

    moer = sgip_moer(tmp_path / "m.csv.gz")
    env = CloverServingEnv("efficientnet", episode_hours=4, carbon_trace=f"{moer},unit=kg/kWh")
    try:
        env.reset(seed=0)
        assert 400 < env._trace.values.max() <= 660  # hourly means of 210..660 g/kWh
        em = em_export(tmp_path / "DE.csv")
        env.reset(seed=0, options={"trace": {"trace": str(em), "column": "direct"}})
        assert env._episode_trace.values.max() <= 400 + 1e-9
        with pytest.raises(TraceError, match="look like kg/kWh"):
            env.reset(seed=0, options={"trace": f"{moer},unit=g/kWh"})
    finally:
        env.close()


def test_file_source_takes_the_same_options(tmp_path):
    moer = sgip_moer(tmp_path / "m.csv.gz")
    src = parse_source(f"file:{moer},unit=kg/kWh,speed=60")
    assert 200 < src.read().value <= 660
    em = em_export(tmp_path / "DE.csv")
    assert parse_source(f"file:{em},column=direct").trace.values.max() == pytest.approx(400)
    with pytest.raises(TraceError, match="look like kg/kWh"):
        parse_source(f"file:{moer},unit=g/kWh")


def test_train_command_line_trace_reaches_both_env_kwargs(tmp_path):
    from clover_rl.training import load_train_config

    cfg = load_train_config("efficientnet").with_carbon_trace("x.csv,column=direct")
    assert cfg.env_kwargs["carbon_trace"] == "x.csv,column=direct"
    assert cfg.eval_env_kwargs["carbon_trace"] == "x.csv,column=direct"
    assert "traces" not in (cfg.env_kwargs.get("randomization") or {})
    assert "validation" not in cfg.eval_env_kwargs
    with pytest.raises(ConfigError, match="--carbon-trace.*unknown option 'units2'"):
        cfg.with_carbon_trace("x.csv,units2=g")


# ---------------------------------------------------------------- command line


def test_traces_show_names_the_column_read(tmp_path, capsys):
    p = em_export(tmp_path / "DE.csv")
    assert main(["traces", "show", f"{p},column=direct", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["max"] == pytest.approx(400) and "(direct)" in d["provenance"]


def test_evaluate_reads_electricity_maps_and_kg_moer_files(tmp_path, capsys):
    em = em_export(tmp_path / "DE.csv")
    assert main(["evaluate", "--scenario", "efficientnet", "--policy", "base", "--hours", "2",
                 "--carbon-trace", f"{em},column=direct", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "carbon trace file" in out and "(direct)" in out
    moer = sgip_moer(tmp_path / "m.csv.gz")
    argv = ["evaluate", "--scenario", "efficientnet", "--policy", "base", "--hours", "2", "--json"]
    assert main(argv + ["--carbon-trace", f"{moer},unit=kg/kWh"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["base"]["carbon_g"] > 1.0  # g, not mg: 1000x the old misreading
    assert main(argv + ["--carbon-trace", f"{moer},unit=g/kWh"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "--carbon-trace" in err


def test_cli_warnings_are_one_clean_line(tmp_path):
    p = tmp_path / "gap.csv"
    p.write_text("timestamp,g_per_kwh\n2021-03-01T00:00Z,100\n2021-03-01T02:00Z,300\n"
                 "2021-03-01T03:00Z,300\n")
    code = ("import sys; from clover_rl.cli import main; main(['traces', 'list']); "
            "from clover_rl.carbon.resolve import resolve_trace; resolve_trace(sys.argv[1])")
    r = subprocess.run([sys.executable, "-c", code, str(p)], capture_output=True, text=True,
                       timeout=120, check=True)
    assert r.stderr == f"warning: {p}: interpolated 1 missing step(s) before line(s) 3\n"


def test_spec_with_comma_in_an_existing_path(tmp_path):
    p = tmp_path / "a,b.csv"
    p.write_text("timestamp,g_per_kwh\n2021-03-01T00:00Z,100\n2021-03-01T01:00Z,200\n")
    assert np.array_equal(resolve_trace(str(p)).values, [100, 200])
