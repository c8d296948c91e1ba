"""State folder: atomic writes, round trips, the single-controller lock, a torn log line."""
from __future__ import annotations

import json
import os

import pytest

from clover_rl.controller.state import (
    CarbonSnapshot,
    ControllerState,
    IntervalRecord,
    LastInterval,
    StateStore,
    atomic_write_text,
    read_log,
)
from clover_rl.errors import ConfigError


def _state() -> ControllerState:
    return ControllerState(scenario="efficientnet", catalog_signature="abc", policy="base", config_index=3,
                           config="7g:b7", carbon=CarbonSnapshot(250.0, "2021-01-01T00:00:00+00:00"))


def test_round_trip(tmp_path):
    store = StateStore(tmp_path)
    st = _state()
    st.count("reconfigurations", 2)
    st.last = LastInterval(p95_over_sla=float("nan"), rate_rps=2.5)  # NaN is not JSON: stored as null
    st.interval = IntervalRecord(4, 100.0, 3700.0, ci=310.0, forecast=[300.0, 290.0])
    store.save(st)
    back = store.load()
    assert back is not None and back.config == "7g:b7" and back.counters["reconfigurations"] == 2
    assert back.last.p95_over_sla is None and back.last.rate_rps == 2.5
    assert back.interval == st.interval and back.carbon == st.carbon
    assert json.loads(store.state_path.read_text())["format"] == "clover-rl/controller-state/v2"


def test_a_v1_state_folder_loads(tmp_path):
    """v1 wrote the same fields as untyped JSON objects: a deployment resumes across the upgrade."""
    store = StateStore(tmp_path)
    store.state_path.write_text(json.dumps({
        "format": "clover-rl/controller-state/v1", "scenario": "efficientnet", "catalog_signature": "abc",
        "policy": "base", "config_index": 3, "config": "7g:b7", "counters": {"intervals": 5},
        "carbon": {"value": 250.0, "time": None, "source": "file", "stale": False, "forecast": [1.0],
                   "message": "", "read_at": 9.0},
        "pending": {"action": 7, "config": "4g:b5,3g:b5", "previous": 3, "since": 1.0, "why": "policy"},
        "interval": {"index": 5, "started_at": 0.0, "ends_at": 3600.0, "ci": 250.0, "reconfigurations": 1},
        "last": {"p95_over_sla": 0.9, "accuracy_over_base": 1.0, "energy_over_base": 0.8, "rate_rps": 2.0},
        "quarantine": {"9": 7}, "guard": {}, "learner": None}))
    st = store.load()
    assert st is not None and st.pending.action == 7 and st.interval.index == 5 and st.interval.reconfigurations == 1
    assert st.carbon.value == 250.0 and st.last.rate_rps == 2.0 and st.counters["intervals"] == 5


def test_a_malformed_record_is_a_one_line_error(tmp_path):
    store = StateStore(tmp_path)
    store.state_path.write_text(json.dumps({
        "format": "clover-rl/controller-state/v2", "scenario": "s", "catalog_signature": "abc", "policy": "base",
        "interval": {"started_at": 0.0}}))
    with pytest.raises(ConfigError, match=r"state.json: interval: .*index") as e:
        store.load()
    assert "\n" not in str(e.value)


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
