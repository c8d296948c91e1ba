"""Replay and the live plane score the same interval the same way: a total outage, partial
service, and a failed reconfiguration (issue 9's reproduced faults)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from clover_rl.controller.faults import FlakyBackend
from clover_rl.controller.plane import LivePlane
from clover_rl.serving.live.pool import RequestRecord
from clover_rl.serving.metrics import IntervalMetrics, merge_metrics
from clover_rl.serving.replay import ReplayBackend
from tests.support.controller import FixedPolicy

GOOD = "4g:b5,3g:b5"


@dataclass
class _Pool:
    records: list[RequestRecord] = field(default_factory=list)
    configuration: Any = None

    def drain_records(self) -> list[RequestRecord]:
        out, self.records = self.records, []
        return out


@dataclass
class _Meter:
    joules: float = 0.0
    estimated: bool = True

    def read_joules(self) -> float:
        return self.joules


class _LiveBackendDouble:
    """What LivePlane reads of a LiveBackend: the pool's records and the meter."""

    device = "cpu"
    outage_timeout_s = 60.0

    def __init__(self, service: Any) -> None:
        self.service = service
        self.pool = _Pool()
        self.meter = _Meter()

    def close(self) -> None:
        pass


def _records(n_ok: int, n_fail: int, variant: str, latency_s: float = 0.05) -> list[RequestRecord]:
    ok = [RequestRecord(200, "gpu0/7g@0", variant, 0.0, 0.0, latency_s, latency_s) for _ in range(n_ok)]
    bad = [RequestRecord(503, None, None, 0.0, 30.0, 0.0, 30.0) for _ in range(n_fail)]
    return ok + bad


TIMEOUT_S = 1.0  # short, so that requests queued behind reconfiguration downtime time out


def _replay_outage(env: Any) -> IntervalMetrics:
    """Replay with nothing served: every slice down for longer than the window."""
    sc = env.scenario
    b = ReplayBackend(env.model.service, env.model.profile, env.model.gpu, sc.gpus, seed=0, timeout_s=TIMEOUT_S, mode="exact")
    b.apply(env.catalog.configs[env.catalog.base_index])
    b.apply(env.catalog.configs[env.catalog.lookup(GOOD)])
    m = b.run(min(b.pending_downtime_s.values()) - TIMEOUT_S - 0.5, env.mean_rate)
    assert m.served == 0 and m.arrived > 0
    return m


def test_total_outage_scores_the_same_in_replay_and_live(env):
    replay = _replay_outage(env)
    plane = LivePlane(_LiveBackendDouble(env.model.service), timeout_s=TIMEOUT_S)
    plane.begin_interval()
    plane.pool.records = _records(0, 100, "b7")
    plane.meter.joules = replay.energy_j
    live = plane.interval()
    assert live.served == 0 and live.dropped == 100
    assert live.p95_ms == replay.p95_ms == TIMEOUT_S * 1000.0
    outs = [env.model.outcome(m, 300.0) for m in (replay, live)]
    for out in outs:
        assert out.sla_violated and out.reward < 0 and out.p95_over_sla > 1
    assert outs[0].reward_sla_penalty == outs[1].reward_sla_penalty
    assert outs[0].p95_over_sla == outs[1].p95_over_sla
    assert outs[0].accuracy_over_base == outs[1].accuracy_over_base == 0.0


def test_no_traffic_is_not_an_outage(env):
    plane = LivePlane(_LiveBackendDouble(env.model.service), timeout_s=env.scenario.timeout_s)
    plane.begin_interval()
    m = plane.interval()
    assert m.arrived == m.served == 0 and m.p95_ms == 0.0
    assert not env.model.outcome(m, 300.0).sla_violated


def test_partial_service_scores_like_the_same_replay_figures(env):
    plane = LivePlane(_LiveBackendDouble(env.model.service), timeout_s=env.scenario.timeout_s)
    plane.begin_interval()
    plane.pool.records = _records(60, 40, "b7", latency_s=0.08)
    plane.meter.joules = 5000.0
    live = plane.interval()
    assert (live.served, live.dropped, live.arrived) == (60, 40, 100)
    assert live.p95_ms == pytest.approx(80.0) and live.latency == "pool"  # enqueue -> answer
    assert merge_metrics([live, plane.interval()]).latency == "pool"
    # the same figures as a replay interval: identical outcome
    replay = IntervalMetrics(live.duration_s, 100, 60, 40, live.p50_ms, live.p95_ms, live.p99_ms, live.mean_ms,
                             live.throughput_rps, live.energy_j, live.accuracy)
    a, b = env.model.outcome(replay, 300.0), env.model.outcome(live, 300.0)
    assert a.reward == b.reward and a.p95_over_sla == b.p95_over_sla and a.accuracy_over_base == b.accuracy_over_base


def _flaky_env(env: Any) -> Any:
    from clover_rl.envs.serving_env import CloverServingEnv

    sc = env.scenario
    flaky = FlakyBackend(ReplayBackend(env.model.service, env.model.profile, env.model.gpu, sc.gpus, seed=0, timeout_s=sc.timeout_s))
    return CloverServingEnv(sc, backend=flaky), flaky


def test_env_honours_a_failed_reconfiguration(env):
    e, flaky = _flaky_env(env)
    e.reset(options={"start": 0})
    base = e.configuration.label()
    flaky.fail_next(1)
    _, reward, _, _, info = e.step(e.catalog.lookup(GOOD))
    assert info["config"] == base and e.configuration.label() == base
    assert info["reconfigurations"] == 0 and info["reward_reconfig_penalty"] == 0.0
    assert info["reconfig_failed"] and "injected fault" in info["reconfig_message"]
    _, _, _, _, info = e.step(e.catalog.lookup(GOOD))  # the next try succeeds
    assert info["config"] == GOOD and info["reconfigurations"] == 1 and not info["reconfig_failed"]


def test_failed_reconfiguration_same_in_env_and_controller(env, rig):
    e, flaky = _flaky_env(env)
    e.reset(options={"start": 0})
    flaky.fail_next(1)
    _, _, _, _, info = e.step(e.catalog.lookup(GOOD))
    ctl = rig.controller(FixedPolicy(env.catalog.lookup(GOOD)))
    ctl.start()
    rig.backend.fail_next(1)
    ctl.run_interval()
    iv = rig.records("interval")[-1]
    dec = rig.records("decision")[-1]
    assert not dec["applied"] and dec["config"] == info["config"]
    assert iv["outcome"]["reward_reconfig_penalty"] == info["reward_reconfig_penalty"] == 0.0
    ctl.close()
