"""clover_rl.progress: the one stderr progress bar (off without a terminal, text above it with one)."""

from __future__ import annotations

import pytest

from clover_rl.progress import ProgressBar


def test_off_without_terminal_prints_plain_stdout(capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("TTY_COMPATIBLE", "FORCE_COLOR"):
        monkeypatch.delenv(var, raising=False)
    with ProgressBar(True, "job", total=3) as bar:  # pytest's captured stderr is not a terminal
        assert not bar.on
        bar.advance(name="case-a")
        bar.print("table")
    out, err = capsys.readouterr()
    assert out == "table\n" and err == ""


def test_disabled_even_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TTY_COMPATIBLE", "1")  # rich: treat stderr as a terminal
    assert not ProgressBar(False, "job", total=1).on
    assert ProgressBar(True, "job", total=1).on


def test_advance_counts_default_and_named_tasks(monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TTY_COMPATIBLE", "1")  # rich: treat stderr as a terminal
    with ProgressBar(True, "job", total=5) as bar:
        bar.advance(2)
        bar.advance(name="case-b")
        other = bar.add_task("policy", 10)
        bar.advance(4, task=other)
        bar.print("above the bar")
        tasks = {t.id: t for t in bar.bar.tasks}
        assert tasks[bar.task].completed == 3 and tasks[bar.task].description == "case-b"
        assert tasks[other].completed == 4 and tasks[other].description == "policy"
    out, err = capsys.readouterr()
    assert "above the bar" in err and "above the bar" not in out  # stdout stays clean for tables/JSON
