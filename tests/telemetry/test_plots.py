"""Evaluation figure: a non-empty PNG with three panels, without pyplot."""
from __future__ import annotations

from clover_rl.telemetry.plots import plot_evaluation, variant_level


def test_plot_writes_png(tmp_path, fake_result):
    out = plot_evaluation(fake_result, tmp_path / "sub" / "eval.png")
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_variant_level():
    assert variant_level({"b1": 1.0}, ("b1", "b7")) == 0.0
    assert variant_level({"b1": 0.5, "b7": 0.5}, ("b1", "b3", "b7")) == 1.0
    assert variant_level({}, ("b1",)) != variant_level({}, ("b1",))  # NaN: nothing served


def test_plot_says_what_it_shows(fake_result, tmp_path):
    from matplotlib.figure import Figure

    from clover_rl.telemetry import plots

    captured: dict = {}
    real_savefig = Figure.savefig

    def grab(self, *a, **k):
        captured["fig"] = self
        return real_savefig(self, *a, **k)

    import pytest
    mp = pytest.MonkeyPatch()
    mp.setattr(Figure, "savefig", grab)
    try:
        plots.plot_evaluation(fake_result, tmp_path / "e.png")
    finally:
        mp.undo()
    fig = captured["fig"]
    title = fig._suptitle.get_text()
    assert "ciso" in title and "2021-03-01T00:00 .. 2021-03-01T03:00 UTC" in title and "4 h" in title
    assert "estimated" in title
    ax_ci, ax_mix, ax_lat, ax_c = fig.axes
    assert "p95" in ax_lat.get_ylabel()
    assert any(line.get_label().startswith("SLA") for line in ax_lat.get_lines())
    # no hidden offsets: the plotted levels are the variant levels themselves
    base_line = next(line for line in ax_mix.get_lines() if line.get_label() == "base")
    assert set(base_line.get_ydata()) == {1.0}
    # names as in the table (run folders shortened)
    assert {line.get_label() for line in ax_c.get_lines()} == {"base", "ppo 1".replace(" ", "_")}


def test_identical_lines_are_labelled_not_hidden(tmp_path, fake_result):
    import numpy as np
    from matplotlib.figure import Figure

    from clover_rl.telemetry.plots import _lines

    ax = Figure().subplots()
    t = np.arange(4)
    _lines(ax, t, {"a": np.array([1.0, 2, 3]), "b": np.array([1.0, 2, 3]), "c": np.array([0.0, 0, 0])})
    lines = ax.get_lines()
    assert [ln.get_label() for ln in lines] == ["a", "b (= a)", "c"]
    assert lines[0].get_linewidth() > lines[1].get_linewidth()  # the earlier one shows around it
