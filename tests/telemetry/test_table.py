"""The shared table renderer: fits the width by dropping ranked columns, then stacking."""
from __future__ import annotations

import math

import pytest

from clover_rl.telemetry.table import (
    Column,
    format_pairs,
    format_table,
    short_name,
    short_names,
    terminal_width,
)

COLS = [
    Column("policy", "policy", align="left", drop=0),
    Column("objective", "objective", "{:+.4f}", drop=0),
    Column("saving", "carbon saving %", "{:+.1f}", drop=0),
    Column("gap", "oracle gap %", "{:.1f}", drop=1),
    Column("reconf", "reconfigurations", "{:d}", drop=2),
    Column("g", "g/request", "{:.5f}", drop=3),
]
ROWS = [
    {"policy": "efficientnet__maskable_ppo__0", "objective": 0.0385, "saving": 46.1, "gap": 0.0,
     "reconf": 1, "g": 0.00388},
    {"policy": "clover", "objective": -0.0361, "saving": 44.0, "gap": math.nan, "reconf": 103.0, "g": None},
]


def test_wide_table_keeps_every_column_and_full_cells():
    text = format_table(ROWS, COLS, width=200, title="window")
    lines = text.splitlines()
    assert lines[0] == "window"
    assert "reconfigurations" in text and "g/request" in text
    assert "+0.0385" in text and "-0.0361" in text and "0.00388" in text
    assert "103" in text  # {:d} takes a float count
    row = next(ln for ln in lines if ln.startswith("clover"))
    assert row.split()[3] == "-" and row.split()[-1] == "-"  # NaN and None as '-'
    assert "not shown" not in text


@pytest.mark.parametrize("width", [80, 60, 45])
def test_narrow_table_fits_and_names_what_it_left_out(width):
    text = format_table(ROWS, COLS, width=width, title="t " * 60, notes=["a note " * 20], more="--json")
    assert all(len(ln) <= width for ln in text.splitlines()), text
    # numbers are never cut: each shown value appears whole
    assert "+0.0385" in text and "+46.1" in text and "efficientnet__maskable_ppo__0" in text
    if "g/request" not in text.split("not shown")[0]:
        assert "not shown at" in text and "(--json)" in text.replace("\n", " ")


def test_drop_order_highest_rank_first():
    text = format_table(ROWS, COLS, width=70)
    head = text.split("not shown")[0]
    assert "g/request" not in head  # rank 3 goes first
    assert "objective" in head and "saving" in head


def test_stacked_layout_when_essentials_do_not_fit():
    text = format_table(ROWS, COLS, width=30)
    lines = text.splitlines()
    assert all(len(ln) <= 30 for ln in lines), text
    assert lines[0] == "efficientnet__maskable_ppo__0"
    assert "objective +0.0385" in text and "reconfigurations 1" in text.replace("\n  ", " ")


def test_terminal_width_follows_columns(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    assert terminal_width() == 80
    assert all(len(ln) <= 80 for ln in format_table(ROWS, COLS).splitlines())


def test_pairs_wrap_values():
    text = format_pairs([("scenario", "efficientnet"), ("configuration now", "1g:b5," * 20)], width=50)
    assert all(len(ln) <= 50 for ln in text.splitlines())
    assert text.splitlines()[0].startswith("scenario ")


def test_short_names():
    assert short_name("checkpoints/efficientnet") == "efficientnet"
    assert short_name("checkpoints/efficientnet/") == "efficientnet"
    assert short_name("runs/eff__maskable_ppo__0__20261130-101500") == "eff__maskable_ppo__0"
    assert short_name("runs/eff__ppo__1__20261130-101500/model.zip") == "eff__ppo__1"
    assert short_name("clover") == "clover"
    assert short_name("./") == "policy"
    assert short_names(["a/x", "b/x", "x"]) == {"a/x": "x", "b/x": "x_2", "x": "x_3"}
