"""State folder: atomic writes, round trips, the single-controller lock, a torn log line."""
from __future__ import annotations

import json
import os

import pytest

from clover_rl.controller.state import ControllerState, StateStore, atomic_write_text, read_log
from clover_rl.errors import ConfigError


def _state() -> ControllerState:
    return ControllerState(scenario="efficientnet", catalog_signature="abc", policy="base", config_index=3,
                           config="7g:b7", carbon={"value": 250.0, "time": "2021-01-01T00:00:00+00:00"})


def test_round_trip(tmp_path):
    store = StateStore(tmp_path)
    st = _state()
    st.count("reconfigurations", 2)
    st.last = {"p95_over_sla": float("nan"), "rate_rps": 2.5}  # NaN is not JSON: stored as null
    store.save(st)
    back = store.load()
    assert back is not None and back.config == "7g:b7" and back.counters["reconfigurations"] == 2
    assert back.last["p95_over_sla"] is None and back.last["rate_rps"] == 2.5
    assert json.loads(store.state_path.read_text())["format"] == "clover-rl/controller-state/v1"


def test_atomic_write_keeps_old_file_when_replace_fails(tmp_path, monkeypatch):
    path = tmp_path / "state.json"
    atomic_write_text(path, "old")

    def boom(src, dst):
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        atomic_write_text(path, "new")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # no temp file left behind


def test_atomic_write_goes_through_a_temp_file_and_replace(tmp_path, monkeypatch):
    seen = []
    real = os.replace
    monkeypatch.setattr(os, "replace", lambda s, d: (seen.append((s, d)), real(s, d)))
    StateStore(tmp_path).save(_state())
    (src, dst), = seen
    assert os.path.dirname(src) == str(tmp_path) and str(dst).endswith("state.json")


def test_unreadable_or_foreign_state_is_a_clear_error(tmp_path):
    store = StateStore(tmp_path)
    store.state_path.write_text("{not json")
    with pytest.raises(ConfigError, match="unreadable controller state"):
        store.load()
    store.state_path.write_text('{"format": "something else"}')
    with pytest.raises(ConfigError, match="not a clover-rl controller state"):
        store.load()


def test_lock_refuses_a_second_controller(tmp_path):
    a, b = StateStore(tmp_path), StateStore(tmp_path)
    a.lock()
    with pytest.raises(ConfigError, match=rf"in use by another controller \(pid {os.getpid()}\)"):
        b.lock()
    a.unlock()
    b.lock()
    b.unlock()


def test_torn_last_log_line_is_skipped(tmp_path):
    store = StateStore(tmp_path)
    store.append({"kind": "decision", "index": 0})
    store.append({"kind": "interval", "index": 0})
    with open(store.log_path, "a") as f:
        f.write('{"kind": "decision", "ind')  # crash mid-write
    assert [r["kind"] for r in read_log(store.log_path)] == ["decision", "interval"]
    assert [r["index"] for r in store.records("interval")] == [0]


def test_state_dir_errors(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(ConfigError, match="--state .*cannot create"):
        StateStore(f / "sub")
