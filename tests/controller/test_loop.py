"""The control loop over the ReplayBackend under a fake clock: decisions, dry run, rollback,
SLA guard, carbon outages, persistence and resume, observation/reward parity with the env."""
from __future__ import annotations

import json

import numpy as np
import pytest

from clover_rl.errors import ConfigError
from clover_rl.serving.metrics import IntervalMetrics
from tests.support.apis import ElectricityMapsFake, Fault
from tests.support.controller import BAD, FixedPolicy, Rig

GOOD = "4g:b5,3g:b5"


def idx(env, label: str) -> int:
    return env.catalog.lookup(label)


def run(ctl, intervals: float) -> None:
    ctl.options.duration_s = intervals * 3600
    ctl.run()


# ---------------------------------------------------------------------------- basics
def test_intervals_are_decided_served_logged_and_persisted(rig, env):
    ctl = rig.controller(FixedPolicy(idx(env, GOOD)))
    run(ctl, 3)
    kinds = [r["kind"] for r in rig.records()]
    assert kinds == ["start"] + ["decision", "interval"] * 3 + ["stop"]
    dec = rig.records("decision")
    assert [d["index"] for d in dec] == [0, 1, 2]
    assert dec[0]["previous"] == "7g:b7" and dec[0]["config"] == GOOD and dec[0]["applied"]
    assert dec[1]["config"] == GOOD and not dec[1]["applied"] and dec[1]["reasons"]
    assert len(dec[0]["observation"]) == env.observation_space.shape[0]
    iv = rig.records("interval")
    assert all(r["metrics"]["served"] > 0 and r["outcome"]["carbon_g"] > 0 for r in iv)
    st = json.loads((rig.state / "state.json").read_text())
    assert st["config"] == GOOD and st["counters"]["intervals"] == 3 and st["counters"]["reconfigurations"] == 1
    assert st["interval"] is None and st["pending"] is None
    assert any(line.startswith("[2021-06-01 00:00:00] #0 CI ") and f"7g:b7 -> {GOOD}" in line for line in rig.lines)
    assert rig.backend.applies == 2  # bring-up + one reconfiguration


def test_observation_is_the_envs(rig, env):
    """A policy trained on replay sees the same vector live (same trace, load, configuration)."""
    ctl = rig.controller()
    ctl.start()
    live = ctl.observation(ctl._read_carbon())
    ref, _ = env.reset(options={"start": 0})
    assert np.allclose(live, ref, atol=1e-6), dict(zip(env.observation_names, np.round(live - ref, 4)))
    ctl.close()


@pytest.mark.parametrize("label", [GOOD, BAD, "infeasible"])
def test_reward_is_the_envs(env, label):
    env.reset(options={"start": 5})
    a = int(np.flatnonzero(~env.catalog.feasible)[0]) if label == "infeasible" else idx(env, label)
    _, reward, _, _, info = env.step(a)
    m = IntervalMetrics(3600.0, info["arrived"], info["served"], info["dropped"], info["p50_ms"], info["p95_ms"],
                        info["p99_ms"], 0.0, 0.0, info["energy_j"], info["accuracy"])
    out = env.model.outcome(m, info["ci"], refused=info["refused"], reconfigurations=info["reconfigurations"])
    assert out.reward == pytest.approx(reward, rel=1e-9, abs=1e-12)
    assert out.carbon_g == pytest.approx(info["carbon_g"])
    assert out.sla_violated == info["sla_violated"]


def test_telemetry_tensorboard_and_prometheus(rig, env):
    from prometheus_client import CollectorRegistry, generate_latest
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from clover_rl.controller.telemetry import register_collector

    run(rig.controller(FixedPolicy(idx(env, GOOD))), 2)
    acc = EventAccumulator(str(rig.state / "tb"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    for t in ("carbon_intensity", "carbon_g", "energy_j", "accuracy", "p95_ms", "sla_ms", "config_index", "reward",
              "stale"):
        assert f"deploy/{t}" in tags
    assert [e.step for e in acc.Scalars("deploy/reward")] == [0, 1]
    reg = CollectorRegistry()
    register_collector(reg, lambda: rig.plane.published)
    text = generate_latest(reg).decode()
    assert "clover_controller_up 1.0" in text
    assert f'clover_controller_info{{configuration="{GOOD}",policy="fixed"}} 1.0' in text
    assert 'clover_controller_events_total{event="intervals"} 2.0' in text
    assert "clover_controller_carbon_intensity " in text and "clover_controller_interval_reward " in text


# ---------------------------------------------------------------------------- safety
def test_dry_run_decides_but_never_reconfigures(rig, env):
    ctl = rig.controller(FixedPolicy(idx(env, GOOD)), dry_run=True)
    run(ctl, 3)
    assert rig.backend.applies == 1  # the start-up bring-up only
    assert rig.plane.configuration.label() == "7g:b7"
    dec = rig.records("decision")
    assert all(not d["applied"] and d["decided"] == GOOD and d["config"] == "7g:b7" for d in dec)
    assert all(d["message"] == f"dry run: would reconfigure 7g:b7 -> {GOOD}" for d in dec)
    assert "(dry run; policy: 4g:b5,3g:b5)" in rig.lines[1]


def test_failed_reconfiguration_rolls_back_and_the_loop_continues(rig, env):
    ctl = rig.controller(FixedPolicy(idx(env, GOOD)), quarantine_intervals=1)
    ctl.start()
    rig.backend.fail_next(1)
    run(ctl, 3)
    dec = rig.records("decision")
    assert dec[0]["config"] == "7g:b7" and not dec[0]["applied"] and "failed" in dec[0]["message"]
    assert dec[1]["source"] == "refused" and "quarantined" in dec[1]["reasons"][0]  # masked for one interval
    assert dec[2]["config"] == GOOD and dec[2]["applied"]
    (rb,) = rig.records("rollback")
    assert rb["target_config"] == GOOD and rb["serving"] == "7g:b7" and "injected fault" in rb["message"]
    st = json.loads((rig.state / "state.json").read_text())
    assert st["counters"]["failed_reconfigurations"] == 1 and st["counters"]["intervals"] == 3
    assert len(rig.records("interval")) == 3 and all(r["metrics"]["served"] for r in rig.records("interval"))


def test_part_way_failure_is_restored_once_by_the_backend(rig, env):
    """The backend owns rollback: the controller applies once, the old configuration serves,
    and the failure is reported once (one rollback event, one count)."""
    ctl = rig.controller(FixedPolicy(idx(env, GOOD)))
    ctl.start()
    before = rig.backend.applies
    rig.backend.fail_next(1, leave="restored")  # moved part-way, then rolled itself back
    run(ctl, 1)
    assert rig.backend.applies - before == 1  # no second rollback level in the controller
    assert rig.plane.configuration.label() == "7g:b7" and ctl.configuration.label() == "7g:b7"
    dec = rig.records("decision")[0]
    assert not dec["applied"] and dec["config"] == "7g:b7" and "restored 7g:b7" in dec["message"]
    (rb,) = rig.records("rollback")
    assert rb["serving"] == "7g:b7" and rb["target_config"] == GOOD
    c = ctl.state.counters
    assert (c["failed_reconfigurations"], c["rollbacks"], c["reconfigurations"]) == (1, 1, 0)
    assert rig.records("interval")[0]["config"] == "7g:b7"


def test_backend_that_cannot_restore_is_reported_as_serving_the_target(rig, env):
    ctl = rig.controller(FixedPolicy(idx(env, GOOD)))
    ctl.start()
    before = rig.backend.applies
    rig.backend.fail_next(1, leave="target")  # the broken target serves; the report says so
    ctl.run_interval()
    assert rig.backend.applies - before == 1
    assert ctl.configuration.label() == GOOD == rig.plane.configuration.label()
    (rb,) = rig.records("rollback")
    assert rb["serving"] == GOOD and "could not restore" in rig.records("decision")[0]["message"]
    assert ctl.state.counters["rollbacks"] == 0 and ctl.state.counters["failed_reconfigurations"] == 1
    ctl.close()


def test_sla_guard_triggers_holds_and_recovers(rig, env):
    ctl = rig.controller(FixedPolicy(idx(env, BAD)), guard_windows=2, guard_recover=5)
    run(ctl, 3)
    guard = [(g["event"], g.get("action", "")) for g in rig.records("guard")]
    assert guard == [("trigger", "switched to 7g:b7"), ("release", ""), ("trigger", "switched to 7g:b7")]
    dec = rig.records("decision")
    assert [d["source"] for d in dec] == ["policy", "guard", "policy"]
    assert "SLA guard holds the safe configuration" in dec[1]["reasons"][0]
    trig = rig.records("guard")[0]
    assert "SLA violated in 2 consecutive windows" in trig["reason"] and trig["p95_ms"] > trig["sla_ms"]
    assert any("SLA GUARD:" in line for line in rig.lines)
    st = json.loads((rig.state / "state.json").read_text())
    assert st["counters"]["guard_triggers"] == 2 and st["counters"]["guard_releases"] == 1
    assert st["config"] == "7g:b7" and st["guard"]["active"]


def test_guard_uses_the_configured_safe_configuration(rig, env):
    ctl = rig.controller(FixedPolicy(idx(env, BAD)), guard_windows=1, safe_config="7g:b5")
    run(ctl, 1)
    assert rig.records("guard")[0]["action"] == "switched to 7g:b5"
    with pytest.raises(ConfigError, match="--safe-config '7g:b9'"):
        rig.controller(safe_config="7g:b9")


def test_policy_failures_and_masked_choices_keep_the_service_running(rig, env):
    pol = FixedPolicy(int(np.flatnonzero(~env.catalog.feasible)[0]))
    ctl = rig.controller(pol)
    ctl.start()
    ctl.run_interval()
    pol.fail = True
    ctl.run_interval()
    ctl.close()
    d0, d1 = rig.records("decision")
    assert d0["source"] == "refused" and d0["refused"] and "masked" in d0["reasons"][0]
    assert d1["source"] == "fallback" and "policy exploded" in d1["reasons"][0]
    assert rig.plane.configuration.label() == "7g:b7"


def test_online_optimizer_probes_are_paid_in_the_interval(rig):
    ctl = rig.controller(spec="clover")
    run(ctl, 1)
    (d,) = rig.records("decision")
    assert d["policy"]["reoptimized"] and d["policy"]["probes"] >= 1
    assert rig.backend.applies >= 2  # probes reconfigure the service


# ---------------------------------------------------------------------------- carbon source faults
def _em_source(fake):
    from clover_rl.carbon.providers import ElectricityMapsSource

    return ElectricityMapsSource("DE", token=fake.token, base_url=fake.url, timeout_s=0.3, retries=0,
                                 cache_ttl_s=0, failure_ttl_s=0, sleep=lambda s: None)


def test_carbon_outage_gives_stale_readings_and_the_loop_continues(env, clock, tmp_path):
    with ElectricityMapsFake() as fake:
        rig = Rig(env, clock, tmp_path / "s", carbon=_em_source(fake))
        ctl = rig.controller()
        ctl.start()
        faults = [None, Fault.status(500), Fault.body("<html>garbage</html>"), Fault.sleep(0.6), None]
        for f in faults:
            fake.down = f
            ctl.run_interval()
        ctl.close()
    dec = rig.records("decision")
    assert [d["stale"] for d in dec] == [False, True, True, True, False]
    assert all(d["ci"] == 300.0 for d in dec)  # the last good value is held
    for d, why in zip(dec[1:4], ("HTTP 500", "", "")):
        assert d["carbon_message"] and why in d["carbon_message"]
        assert any(r.startswith("carbon reading stale") for r in d["reasons"])
    assert any("(STALE)" in line for line in rig.lines)
    assert len(rig.records("interval")) == 5
    st = json.loads((rig.state / "state.json").read_text())
    assert st["counters"]["stale_readings"] == 3 and st["carbon"]["stale"] is False


def test_carbon_source_down_from_the_start_uses_the_reference(env, clock, tmp_path):
    with ElectricityMapsFake() as fake:
        fake.down = Fault.status(503)
        rig = Rig(env, clock, tmp_path / "s", carbon=_em_source(fake))
        run(rig.controller(), 1)
    (d,) = rig.records("decision")
    assert d["stale"] and d["ci"] == 250.0 and "before any good value" in d["carbon_message"]


# ---------------------------------------------------------------------------- persistence / resume
def test_restart_resumes_without_reconfiguring(rig, env):
    run(rig.controller(FixedPolicy(idx(env, GOOD))), 2)
    assert rig.backend.applies == 2
    ctl = rig.controller(FixedPolicy(idx(env, GOOD)))
    run(ctl, 1)
    assert rig.backend.applies == 2  # the live layout already matched: nothing applied
    (resume,) = rig.records("resume")
    assert resume["note"] == f"live layout already serves {GOOD}; not reconfiguring"
    assert [d["index"] for d in rig.records("decision")] == [0, 1, 2]
    st = json.loads((rig.state / "state.json").read_text())
    assert st["counters"]["restarts"] == 1 and st["counters"]["intervals"] == 3


def test_restart_on_a_fresh_service_brings_up_the_saved_configuration(env, clock, tmp_path):
    a = Rig(env, clock, tmp_path / "s")
    run(a.controller(FixedPolicy(idx(env, GOOD))), 1)
    b = Rig(env, clock, tmp_path / "s")  # the serving plane restarted too (empty)
    ctl = b.controller(FixedPolicy(idx(env, GOOD)))
    ctl.start()
    ctl.close()
    assert b.backend.applies == 1 and b.plane.configuration.label() == GOOD  # not BASE first


def test_restart_mid_interval_keeps_its_decision(rig, env):
    pol = FixedPolicy(idx(env, GOOD))
    run(rig.controller(pol), 1.5)
    st = json.loads((rig.state / "state.json").read_text())
    assert st["interval"]["index"] == 1 and st["interval"]["partial_logged"]
    pol2 = FixedPolicy(idx(env, "7g:b5"))
    run(rig.controller(pol2), 0.5)
    assert pol2.calls == 0  # the interval in progress kept its decision
    assert [r["index"] for r in rig.records("resume_interval")] == [1]
    parts = [r for r in rig.records("interval") if r["index"] == 1]
    assert [p["partial"] for p in parts] == [True, False]
    assert sum(p["metrics"]["duration_s"] for p in parts) == pytest.approx(3600)


def test_pending_reconfiguration_is_completed_on_restart(rig, env):
    run(rig.controller(), 1)
    st = json.loads((rig.state / "state.json").read_text())
    st["pending"] = {"action": idx(env, GOOD), "config": GOOD, "previous": env.catalog.base_index}
    (rig.state / "state.json").write_text(json.dumps(st))
    ctl = rig.controller()
    ctl.start()
    ctl.close()
    assert rig.plane.configuration.label() == GOOD
    assert rig.records("pending")[0]["config"] == GOOD
    assert json.loads((rig.state / "state.json").read_text())["pending"] is None


def test_state_of_another_deployment_is_refused(rig):
    run(rig.controller(), 1)
    st = json.loads((rig.state / "state.json").read_text())
    st["catalog_signature"] = "0000"
    (rig.state / "state.json").write_text(json.dumps(st))
    with pytest.raises(ConfigError, match="holds a deployment of scenario 'efficientnet' with another"):
        rig.controller().start()


def test_whole_gpu_only_masks_mig_configurations(rig, env):
    ctl = rig.controller(FixedPolicy(idx(env, GOOD)), whole_gpu_only=True)
    ctl.start()
    m = ctl.mask()
    assert m[idx(env, "7g:b5")] and not m[idx(env, GOOD)]
    ctl.run_interval()
    ctl.close()
    assert rig.records("decision")[0]["source"] == "refused"


# ---------------------------------------------------------------------------- carbon budget
def test_deployment_books_the_carbon_budget_and_restores_it(clock, tmp_path):
    from clover_rl.envs.serving_env import CloverServingEnv

    env = CloverServingEnv("efficientnet", objective={"kind": "carbon_budget", "budget_fraction": 0.6,
                                                      "window_hours": 24})
    rig = Rig(env, clock, tmp_path / "state")
    ctl = rig.controller(FixedPolicy(idx(env, GOOD)))
    assert ctl.step_index == 0
    run(ctl, 2)
    intervals = rig.records("interval")
    spent = sum(r["outcome"]["carbon_g"] for r in intervals)
    assert spent > 0 and env.objective.ledger() == (0, pytest.approx(spent))
    assert intervals[-1]["budget"]["budget_spent_g"] == pytest.approx(spent)
    st = json.loads((rig.state / "state.json").read_text())
    assert st["budget"] == {"window": 0, "spent_g": pytest.approx(spent)}
    obs = ctl.observation(ctl._read_carbon())
    names = env.observation_names
    assert obs[names.index("budget_left")] == pytest.approx(1 - spent / env.objective.budget_g, abs=1e-5)
    assert obs[names.index("window_left")] == pytest.approx(1 - 2 / 24, abs=1e-5)
    ctl.close()
    env.objective.reset()
    again = rig.controller(FixedPolicy(idx(env, GOOD)))  # a restart restores the window's spending
    again.start()
    assert env.objective.ledger() == (0, pytest.approx(spent))
    assert again.step_index == 2
    again.close()


def test_overspending_the_budget_costs_reward(clock, tmp_path):
    """A budget far below what the service emits: each booked interval pays the overspend
    penalty, so the interval's reward is below the paper-free accuracy value."""
    from clover_rl.envs.serving_env import CloverServingEnv

    env = CloverServingEnv("efficientnet", objective={"kind": "carbon_budget", "budget_g": 1e-3,
                                                      "window_hours": 24})
    rig = Rig(env, clock, tmp_path / "state")
    run(rig.controller(FixedPolicy(idx(env, GOOD))), 2)
    outs = [r["outcome"] for r in rig.records("interval")]
    assert all(r["budget"]["overspend_penalty"] > 0 for r in rig.records("interval"))
    assert all(o["objective"] < -1.0 for o in outs)


def test_observation_carries_the_load_trend(rig, env):
    ctl = rig.controller(FixedPolicy())
    run(ctl, 2)
    st = ctl.state
    st.last = type(st.last)(1.0, 1.0, 1.0, rate_rps=env.mean_rate * 1.5, prev_rate_rps=env.mean_rate)
    ctl.measured_rate = env.mean_rate * 1.5
    obs = ctl.observation(ctl._read_carbon())
    assert obs[env.observation_names.index("request_rate_trend")] == pytest.approx(0.5, abs=1e-5)
    ctl.close()



def test_replay_plane_publishes_the_controller_figures(rig):
    rig.plane.publish({"sla_ms": 700.0, "configuration": "7g:b7"})  # raised AttributeError before
    assert rig.plane.published == {"sla_ms": 700.0, "configuration": "7g:b7"}


def test_mpc_plans_on_the_readings_forecast_and_history(rig, env):
    """MPC reads the ControlContext only: in a deployment the provider's forecast and the online
    forecaster's hourly history (no probing of env attributes)."""
    from clover_rl.agents.mpc import MPCPolicy

    ctl = rig.controller(FixedPolicy())
    run(ctl, 3)
    past = ctl.past_intensities(48)
    assert len(past) == 3 and past[-1] == ctl.intensity()
    assert [r["ci"] for r in rig.records("decision")] == pytest.approx(list(past))
    fc = ctl.forecast()
    assert fc.shape == (env.scenario.carbon.forecast_hours,)
    planned = MPCPolicy(ctl).forecast(len(fc) + 1)
    assert planned[0] == ctl.intensity() and list(planned[1:]) == pytest.approx(list(fc))
