"""The persistent steady-state store: a stored steady state is the computed one, bit for bit;
the store can be turned off, and a broken file only turns it off."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from clover_rl.serving import simulator as sim
from clover_rl.serving import steady
from clover_rl.serving.steady_store import SteadyStore


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SteadyStore:
    s = SteadyStore(tmp_path / "steady.sqlite")
    monkeypatch.setattr(steady, "STORE", s)
    steady.clear_steady_cache()
    return s


def _fields(st: steady.SteadyState) -> tuple:
    return (st.p50_ms, st.p95_ms, st.p99_ms, st.mean_ms, st.drop_fraction, st.active_j_per_request,
            st.accuracy, st.utilization, st.variant_share, st.n_requests, st.capacity_rps, st.idle_power_w)


def test_stored_steady_state_is_the_computed_one(store, mk_cfg, profile, service) -> None:
    sv = sim.build_servers(mk_cfg(("4g", "big"), ("2g", "small"), ("1g", "small")), profile, service, 2)
    rate = 0.55 * sv.capacity_rps
    computed = steady.steady_state_servers(sv, rate)
    store.flush()
    assert store.path.stat().st_size > 0
    steady.clear_steady_cache()
    fresh = SteadyStore(store.path)  # as a new process would open it
    steady.STORE = fresh  # type: ignore[attr-defined]  (restored by monkeypatch)
    loaded = steady.steady_state_servers(sv, rate)
    assert fresh._loaded and loaded is not computed
    assert _fields(loaded) == _fields(computed)
    np.testing.assert_array_equal(loaded.latency_q_ms, computed.latency_q_ms)


def test_store_off_by_environment(tmp_path, monkeypatch, mk_cfg, profile, service) -> None:
    monkeypatch.setenv("CLOVER_RL_STEADY_STORE", "0")
    s = SteadyStore(tmp_path / "off.sqlite")
    monkeypatch.setattr(steady, "STORE", s)
    steady.clear_steady_cache()
    sv = sim.build_servers(mk_cfg(("7g", "big")), profile, service, 1)
    steady.steady_state_servers(sv, 0.3 * sv.capacity_rps)
    s.flush()
    assert s.disabled and not (tmp_path / "off.sqlite").exists()


def test_broken_store_file_turns_the_store_off(tmp_path, monkeypatch, caplog, mk_cfg, profile, service) -> None:
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"this is not a database" * 100)
    s = SteadyStore(bad)
    monkeypatch.setattr(steady, "STORE", s)
    steady.clear_steady_cache()
    sv = sim.build_servers(mk_cfg(("7g", "big")), profile, service, 1)
    with caplog.at_level(logging.WARNING):
        st = steady.steady_state_servers(sv, 0.3 * sv.capacity_rps)
    assert st.p95_ms > 0 and s.disabled
    assert "turned off" in caplog.text
