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
