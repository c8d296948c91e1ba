"""`clover-rl store` fills the steady-state store once; a second run finds every row there."""
from __future__ import annotations

from clover_rl.cli import main
from clover_rl.serving import steady, steady_store
from clover_rl.serving.steady_store import SteadyStore, stored_rows


def test_store_fills_once_then_reads(capsys, monkeypatch, tmp_path) -> None:
    store = SteadyStore(tmp_path / "steady.sqlite")
    monkeypatch.setattr(steady_store, "STORE", store)
    monkeypatch.setattr(steady, "STORE", store)
    steady.clear_steady_cache()
    assert main(["store", "yolo", "--nominal-only", "--no-progress"]) == 0
    first = capsys.readouterr().out
    rows = stored_rows(store)
    assert rows > 400 and f"{rows:,} new rows" in first  # every feasible yolo configuration, two grid points (208 feasible)
    steady.clear_steady_cache()
    store.forget_loaded()
    assert main(["store", "yolo", "--nominal-only", "--no-progress"]) == 0
    assert " 0 new rows" in capsys.readouterr().out and stored_rows(store) == rows
