"""What a new user sees first: `clover-rl` alone, help texts, usage lines."""
from __future__ import annotations

import re

import pytest

from clover_rl.cli import main


def test_no_arguments_prints_help_and_exits_0(capsys):
    assert main([]) == 0
    out = capsys.readouterr()
    assert "Usage: clover-rl" in out.out and "evaluate" in out.out
    assert "error" not in out.err


@pytest.mark.parametrize("argv, flag", [(["deploy", "--help"], "--dry-run"),
                                        (["evaluate", "--help"], "--json"),
                                        (["traces", "show", "--help"], "--json")])
def test_flags_are_shown_without_a_value_type(capsys, monkeypatch, argv, flag):
    monkeypatch.setenv("COLUMNS", "120")
    assert main(argv) == 0
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if f" {flag} " in ln)
    assert "<bool>" not in line, line
    assert "<bool>" not in out


def test_required_argument_usage_is_plain(capsys):
    assert main(["traces", "show", "--help"]) == 0
    usage = next(ln for ln in capsys.readouterr().out.splitlines() if "Usage:" in ln)
    assert re.search(r"traces show \[OPTIONS\] SOURCE\s*$", usage), usage


def test_synth_says_level_and_realised_mean(tmp_path, capsys):
    assert main(["traces", "synth", "--shape", "solar", "--days", "2", "--mean", "250",
                 "--out", str(tmp_path / "s.csv")]) == 0
    out = capsys.readouterr().out
    realised = float(re.search(r"realised g/kWh: min [\d.]+, mean ([\d.]+)", out).group(1))
    assert "mean=250" in out and "base level" in out
    assert realised != 250.0  # the two are different figures and both are named


def test_list_argument_usage_is_plain(capsys):
    assert main(["store", "--help"]) == 0
    usage = next(ln for ln in capsys.readouterr().out.splitlines() if "Usage:" in ln)
    assert re.search(r"store \[OPTIONS\] SCENARIO\.\.\.\s*$", usage), usage


def test_long_help_paragraphs_are_rewrapped(capsys, monkeypatch):
    """A docstring's source line breaks must not survive into the help: lines fill the width."""
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["store", "--help"]) == 0
    lines = [ln.strip() for ln in capsys.readouterr().out.splitlines()]
    start = next(i for i, ln in enumerate(lines) if ln.startswith("Fills the steady-state store"))
    end = next(i for i in range(start, len(lines)) if not lines[i])
    paragraph = lines[start:end]
    assert len(paragraph) >= 3
    assert all(len(ln) >= 60 for ln in paragraph[:-1]), paragraph


def test_command_list_gives_one_short_summary_each(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "Fills the steady-state store" not in out  # only the first paragraph is listed
    assert "LLM services (--service llm)" not in out
