"""Carbon trace files: formats, validation (one-line errors naming file/line/value), units,
gap filling, resampling, summaries and save/load round trips."""
from __future__ import annotations

import gzip

import numpy as np
import pytest

from clover_rl.carbon.base import CarbonTrace
from clover_rl.carbon.trace import (
    DEFAULT_START,
    TraceWarning,
    apply_pue,
    canonical_units,
    load_trace,
    resample,
    save_trace,
    summarize,
)
from clover_rl.errors import ConfigError, TraceError

CISO_49 = [124.57, 135.6, 148.61, 166.42] + [150.0 + i for i in range(45)]


def write(tmp_path, text: str, name: str = "t.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


def hourly_csv(values, start_hour: int = 0, header: str = "timestamp,g_per_kwh") -> str:
    rows = [f"2021-03-01T{start_hour + i:02d}:00:00Z,{v}" for i, v in enumerate(values)]
    return header + "\n" + "\n".join(rows) + "\n"


def trace(values, step_s: int = 3600) -> CarbonTrace:
    t = np.datetime64("2021-01-01T00:00:00", "s") + (np.arange(len(values)) * step_s).astype("timedelta64[s]")
    return CarbonTrace(t, np.asarray(values, dtype=float), "t", "test")


# ---------------------------------------------------------------- formats


def test_single_column_ciso_format_is_hourly_from_default_start(tmp_path):
    p = write(tmp_path, "CISO_March\n" + "\n".join(str(v) for v in CISO_49) + "\n",
              "carbon_intensity.csv")
    tr = load_trace(p)
    assert len(tr) == 49 and tr.resolution_s == 3600.0
    assert tr.times[0] == DEFAULT_START
    assert tr.times[-1] == DEFAULT_START + np.timedelta64(48, "h")
    np.testing.assert_allclose(tr.values, CISO_49)
    assert tr.name == "carbon_intensity" and not tr.synthetic
    assert "CISO_March" in tr.provenance


def test_single_column_start_and_interval_are_configurable(tmp_path):
    p = write(tmp_path, "ci\n100\n200\n300\n")
    tr = load_trace(p, start="2021-03-01T08:00:00Z", interval_s=900, name="x")
    assert tr.times[0] == np.datetime64("2021-03-01T08:00:00")
    assert tr.resolution_s == 900.0 and tr.name == "x"


def test_headerless_single_column_and_headerless_pairs(tmp_path):
    assert list(load_trace(write(tmp_path, "100\n200\n", "a.csv")).values) == [100, 200]
    tr = load_trace(write(tmp_path, "2021-03-01T00:00Z,10\n2021-03-01T01:00Z,20\n", "b.csv"))
    assert tr.times[1] == np.datetime64("2021-03-01T01:00:00") and list(tr.values) == [10, 20]


def test_timestamp_csv_with_timezone_offsets_is_converted_to_utc(tmp_path):
    p = write(tmp_path, "time,carbon_intensity\n2021-03-01 01:00:00+01:00,10\n"
                        "2021-03-01 02:00:00+01:00,20\n")
    tr = load_trace(p)
    assert tr.times[0] == np.datetime64("2021-03-01T00:00:00")
    assert tr.times.dtype == np.dtype("datetime64[s]")


def test_columns_are_chosen_by_name_or_explicitly(tmp_path):
    p = write(tmp_path, "region,datetime,forecast,carbon_intensity\n"
                        "CISO,2021-03-01T00:00Z,9,100\nCISO,2021-03-01T01:00Z,9,110\n")
    assert list(load_trace(p).values) == [100, 110]
    assert list(load_trace(p, value_column="forecast").values) == [9, 9]
    with pytest.raises(TraceError, match="no value column 'nope'"):
        load_trace(p, value_column="nope")
    with pytest.raises(TraceError, match="no time column 'when'"):
        load_trace(p, time_column="when")


def test_ambiguous_value_column_asks_for_value_column(tmp_path):
    p = write(tmp_path, "timestamp,a,b\n2021-03-01T00:00Z,1,2\n")
    with pytest.raises(TraceError, match=r"t.csv: cannot tell which column .*'FILE,column=NAME'"):
        load_trace(p)


def test_gzip_and_unix_seconds(tmp_path):
    p = tmp_path / "t.csv.gz"
    p.write_bytes(gzip.compress(b"timestamp,g_per_kwh\n1614556800,5\n1614560400,6\n"))
    tr = load_trace(p)
    assert tr.times[0] == np.datetime64("2021-03-01T00:00:00") and list(tr.values) == [5, 6]
    assert tr.name == "t"


# ---------------------------------------------------------------- units


@pytest.mark.parametrize("header,units,factor", [
    ("timestamp,moer_kg_per_kwh", None, 1000.0),
    ("timestamp,co2_lbs_mwh", None, 0.453592),
    ("timestamp,value", "kg/kWh", 1000.0),
    ("timestamp,value", "lbs/MWh", 0.453592),
    ("timestamp,value", "lb_per_mwh", 0.453592),
    ("timestamp,value", "t/MWh", 1000.0),
    ("timestamp,gco2_per_kwh", None, 1.0),
])
def test_units_are_converted_to_g_per_kwh(tmp_path, header, units, factor):
    raw = [0.2, 0.5, 1.1] if factor == 1000.0 else [150.0, 900.0, 1500.0]  # plausible in the unit
    p = write(tmp_path, hourly_csv(raw, header=header))
    tr = load_trace(p, units=units)
    np.testing.assert_allclose(tr.values, np.array(raw) * factor)


def test_units_param_overrides_column_name_and_unknown_units_fail(tmp_path):
    p = write(tmp_path, hourly_csv([100, 200], header="timestamp,moer_kg_per_kwh"))
    assert list(load_trace(p, units="g/kWh").values) == [100, 200]
    assert canonical_units("gCO2/kWh") == "g/kWh"
    with pytest.raises(ConfigError, match="units: unknown unit 'furlongs'"):
        load_trace(p, units="furlongs")


def test_kg_looking_values_read_as_grams_are_refused_naming_the_unit(tmp_path):
    p = write(tmp_path, hourly_csv([0.2, 0.3]))
    with pytest.raises(TraceError, match=r"all <= 2 g/kWh when read as g/kWh \(assumed; max 0.3\).*"
                                         r"look like kg/kWh: add ',unit=kg/kWh'.*--carbon-trace"):
        load_trace(p)


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize("cell,match", [
    ("", "line 3: empty carbon-intensity value"),
    ("NaN", "line 3: NaN carbon-intensity value 'NaN'"),
    ("abc", "line 3: non-numeric carbon-intensity value 'abc'"),
    ("-4.5", "line 3: negative carbon-intensity value -4.5"),
    ("inf", "line 3: infinite carbon-intensity value 'inf'"),
])
def test_bad_cells_name_file_line_and_value(tmp_path, cell, match):
    p = write(tmp_path, hourly_csv([100, cell, 120]))
    with pytest.raises(TraceError, match=match) as e:
        load_trace(p)
    assert str(p) in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("cell", ["", "nan", "x1", "-1"])
def test_bad_cells_in_single_column_format(tmp_path, cell):
    p = write(tmp_path, f"CISO_March\n100\n110\n{cell}\n130\n")
    with pytest.raises(TraceError, match=r"t.csv: line 4: "):
        load_trace(p)


def test_comment_lines_shift_reported_line_numbers(tmp_path):
    p = write(tmp_path, "# name: x\n# synthetic: false\n" + hourly_csv([1, "bad"]))
    with pytest.raises(TraceError, match="line 5: non-numeric"):
        load_trace(p)


def test_unsorted_timestamps(tmp_path):
    p = write(tmp_path, "timestamp,g_per_kwh\n2021-03-01T00:00Z,1\n2021-03-01T02:00Z,2\n"
                        "2021-03-01T01:00Z,3\n")
    with pytest.raises(TraceError, match=r"line 4: timestamp 2021-03-01T01:00:00Z is earlier .* line 3; rows must be sorted"):
        load_trace(p)


def test_duplicate_timestamps(tmp_path):
    p = write(tmp_path, "timestamp,g_per_kwh\n2021-03-01T00:00Z,1\n2021-03-01T01:00Z,2\n"
                        "2021-03-01T01:00Z,3\n")
    with pytest.raises(TraceError, match=r"line 4: duplicate timestamp 2021-03-01T01:00:00Z \(also on line 3\)"):
        load_trace(p)


def test_big_gap_is_an_error(tmp_path):
    p = write(tmp_path, "timestamp,g_per_kwh\n2021-03-01T00:00Z,1\n2021-03-01T01:00Z,2\n"
                        "2021-03-01T02:00Z,2\n2021-03-01T06:00Z,3\n")
    with pytest.raises(TraceError, match=r"line 5: gap of 3 missing steps between 2021-03-01T02:00:00Z \(line 4\)"):
        load_trace(p)


def test_small_gap_is_interpolated_with_a_warning(tmp_path):
    p = write(tmp_path, "timestamp,g_per_kwh\n2021-03-01T00:00Z,100\n2021-03-01T01:00Z,100\n"
                        "2021-03-01T04:00Z,400\n2021-03-01T05:00Z,500\n")
    with pytest.warns(TraceWarning, match=r"interpolated 2 missing step\(s\) before line\(s\) 4"):
        tr = load_trace(p)
    assert list(tr.values) == [100, 100, 200, 300, 400, 500]
    assert np.all(np.diff(tr.times) == np.timedelta64(1, "h"))
    assert summarize(tr)["interpolated_steps"] == 2


def test_irregular_step_is_an_error(tmp_path):
    p = write(tmp_path, "timestamp,g_per_kwh\n2021-03-01T00:00Z,1\n2021-03-01T01:00Z,2\n"
                        "2021-03-01T02:00Z,2\n2021-03-01T02:30Z,3\n")
    with pytest.raises(TraceError, match="line 5: irregular step"):
        load_trace(p)


def test_unparseable_timestamp(tmp_path):
    p = write(tmp_path, "timestamp,g_per_kwh\n2021-03-01T00:00Z,1\nyesterday,2\n")
    with pytest.raises(TraceError, match="line 3: cannot parse timestamp 'yesterday'"):
        load_trace(p)


def test_short_row(tmp_path):
    p = write(tmp_path, "timestamp,region,g_per_kwh\n2021-03-01T00:00Z,CISO,1\n2021-03-01T01:00Z\n")
    with pytest.raises(TraceError, match="line 3: expected 3 columns, got 1"):
        load_trace(p)


@pytest.mark.parametrize("text,match", [
    ("", "empty file"),
    ("\n\n", "empty file"),
    ("timestamp,g_per_kwh\n", r"no data rows after the header \(line 1\)"),
])
def test_empty_files(tmp_path, text, match):
    with pytest.raises(TraceError, match=match):
        load_trace(write(tmp_path, text))


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(TraceError, match=r"nope.csv: file not found"):
        load_trace(tmp_path / "nope.csv")
    with pytest.raises(TraceError, match="is a directory"):
        load_trace(tmp_path)


def test_binary_garbage_is_a_one_line_error(tmp_path):
    p = tmp_path / "bin.csv"
    p.write_bytes(b"\xff\xfe\x00\x81garbage")
    with pytest.raises(TraceError, match="not UTF-8"):
        load_trace(p)


# ---------------------------------------------------------------- resample / pue / summary


def test_downsampling_takes_means():
    tr = trace([1, 2, 3, 4, 5, 6, 7], step_s=900)
    r = resample(tr, 3600)
    assert r.resolution_s == 3600.0 and r.times[0] == tr.times[0]
    np.testing.assert_allclose(r.values, [2.5, 6.0])  # trailing partial hour = mean of what it has


def test_downsampling_preserves_time_weighted_mean():
    rng = np.random.default_rng(0)
    tr = trace(rng.uniform(0, 500, 288), step_s=300)
    r = resample(tr, 3600)
    assert len(r) == 24
    assert r.values.mean() == pytest.approx(tr.values.mean())


def test_upsampling_step_and_linear():
    tr = trace([100, 200, 400])
    step = resample(tr, 1800)
    np.testing.assert_allclose(step.values, [100, 100, 200, 200, 400, 400])
    lin = resample(tr, 1800, upsample="linear")
    np.testing.assert_allclose(lin.values, [100, 150, 200, 300, 400, 400])
    assert "resampled to 1800 s" in lin.provenance


def test_resample_same_interval_and_bad_arguments():
    tr = trace([1, 2])
    assert resample(tr, 3600) is tr
    with pytest.raises(ConfigError, match="interval_s"):
        resample(tr, 0)
    with pytest.raises(ConfigError, match="upsample"):
        resample(tr, 60, upsample="cubic")  # type: ignore[arg-type]


def test_apply_pue():
    tr = apply_pue(trace([100, 200]), 1.5)
    assert list(tr.values) == [150, 300] and "PUE 1.5" in tr.provenance
    with pytest.raises(ConfigError, match="pue"):
        apply_pue(tr, 0.5)


def test_summarize_fields():
    d = summarize(trace([100, 300, 200]))
    assert d["start"] == "2021-01-01T00:00:00Z" and d["end"] == "2021-01-01T02:00:00Z"
    assert d["resolution_s"] == 3600.0 and d["n"] == 3 and d["duration_h"] == 3.0
    assert (d["min"], d["mean"], d["max"]) == (100.0, 200.0, 300.0)
    assert d["gaps"] == 0 and d["provenance"] == "test" and d["synthetic"] is False
    t = np.array(["2021-01-01T00", "2021-01-01T01", "2021-01-01T04"], dtype="datetime64[s]")
    assert summarize(CarbonTrace(t, np.ones(3)))["gaps"] == 2


# ---------------------------------------------------------------- save / load


@pytest.mark.parametrize("name", ["out.csv", "out.csv.gz"])
def test_save_then_load_round_trips(tmp_path, name):
    rng = np.random.default_rng(1)
    tr = CarbonTrace(trace(rng.uniform(0, 600, 30)).times, rng.uniform(0, 600, 30), "syn",
                     "made up", synthetic=True)
    p = save_trace(tr, tmp_path / name)
    back = load_trace(p)
    np.testing.assert_array_equal(back.times, tr.times)
    np.testing.assert_array_equal(back.values, tr.values)
    assert back.name == "syn" and back.synthetic and "made up" in back.provenance


def test_save_plain_csv_header_and_rounding(tmp_path):
    p = save_trace(trace([123.456, 7.0]), tmp_path / "x.csv", metadata=False, decimals=1)
    assert p.read_text().splitlines() == ["timestamp,g_per_kwh", "2021-01-01T00:00:00Z,123.5",
                                          "2021-01-01T01:00:00Z,7"]
