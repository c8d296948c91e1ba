"""The MPC baseline: registered, plans on the forecast (never the future), respects a budget,
hedges it against the forecast's past errors, forecasts the load it has seen, and knows what a
switch's own interval loses."""
from __future__ import annotations

import numpy as np
import pytest

from clover_rl.agents.mpc import MPCPolicy, forecast_errors, model_ahead
from clover_rl.agents.registry import POLICY_NAMES, make_policy
from clover_rl.agents.switching import SwitchModel
from clover_rl.carbon.base import CarbonTrace
from clover_rl.carbon.forecast import model_forecast
from clover_rl.envs.serving_env import CloverServingEnv
from clover_rl.objectives import TableValues
from clover_rl.service_model import ServiceModel

CONST = {"kind": "constant", "rate_rps": 2.5}


def _trace(values: np.ndarray) -> CarbonTrace:
    t0 = np.datetime64("2021-01-01T00:00:00", "s")
    return CarbonTrace(t0 + np.arange(len(values)).astype("timedelta64[h]"), values.astype(float), "t", "test")


def _run(env, policy, steps):
    obs, info = env.reset(seed=0, options={"start": 30})
    policy.reset()
    acts = []
    for _ in range(steps):
        a = policy.act(obs, info)
        acts.append(a)
        obs, _, _, _, info = env.step(a)
    return acts


def test_model_ahead_is_the_documented_model_on_the_past():
    rng = np.random.default_rng(1)
    past = rng.uniform(50, 400, 24 * 9)
    f = model_ahead(past, 6, 24)
    assert f[0] == past[-1] and f.shape == (6,)
    assert f[1:] == pytest.approx(model_forecast(past, 5, 24, 7, 24.0)[-1])
    assert np.all(model_ahead(past[:1], 3, 24) == past[0])  # one value: persistence


def test_forecast_errors_are_the_models_past_errors():
    day = np.r_[np.full(12, 100.0), np.full(12, 300.0)]
    periodic = np.tile(day, 16)
    err = forecast_errors(periodic, 6, 24, days=2)
    assert err.shape == (48, 5) and np.allclose(err, 0.0)  # a repeating day is forecast exactly
    noisy = periodic + np.random.default_rng(0).normal(0, 20, periodic.size)
    err = forecast_errors(noisy, 4, 24, days=1)
    t = len(noisy) - 3 - 1  # the last issue time whose 3 offsets are known
    expected = noisy[t + 1: t + 4] - model_forecast(noisy[: t + 1], 3, 24, 7, 24.0)[-1]
    assert err[-1] == pytest.approx(expected)
    assert forecast_errors(noisy[:20], 4, 24).shape == (0, 3)  # under a day of history: none


def test_mpc_is_registered():
    assert "mpc" in POLICY_NAMES


def test_mpc_decisions_do_not_depend_on_the_future():
    rng = np.random.default_rng(0)
    vals = rng.uniform(50, 500, 24 * 4)
    future = vals.copy()
    future[30 + 4:] = rng.uniform(50, 500, len(vals) - 34)  # a different future from step 4 on
    acts = []
    model = ServiceModel.from_scenario(  # one model (and one config table) for both futures
        "efficientnet-budget", episode_hours=4, workload=CONST,
        objective={"kind": "carbon_budget", "budget_fraction": 0.7, "window_hours": 4})
    for v in (vals, future):
        env = CloverServingEnv(model, carbon_trace=_trace(v))
        acts.append(_run(env, make_policy("mpc", env), 4))
    assert acts[0][:4] == acts[1][:4]  # decisions at steps 0..3 see only intensities up to then


def test_mpc_saves_when_dirty_and_spends_when_clean():
    # alternating clean / dirty hours under a tight budget: MPC prices carbon and moves accuracy
    vals = np.tile([60.0, 600.0], 60)
    env = CloverServingEnv("efficientnet-budget", carbon_trace=_trace(vals), episode_hours=6, workload=CONST,
                           objective={"kind": "carbon_budget", "budget_fraction": 0.5, "window_hours": 6})
    pol = MPCPolicy(env, horizon=6)
    obs, info = env.reset(seed=0, options={"start": 30})
    acc = {60.0: [], 600.0: []}
    for _ in range(6):
        ci = env.intensity()
        obs, _, _, _, info = env.step(pol.act(obs, info))
        acc[ci].append(info["accuracy"])
    assert np.mean(acc[60.0]) > np.mean(acc[600.0])


def test_mpc_forecasts_a_diurnal_load_from_the_rates_it_has_seen():
    env = CloverServingEnv("efficientnet", episode_hours=40,
                           workload={"kind": "diurnal", "mean_rps": 2.5, "amplitude": 0.3, "peak_hour": 14})
    pol = MPCPolicy(env, switch_model=False)
    env.reset(seed=0, options={"start": 30})
    pol.reset()
    for _ in range(30):  # what act() records, without planning (no tables at every load)
        pol._observe_rate()
        env.step(env.catalog.base_index)
    pol._observe_rate()
    truth = np.array([env.rate(o) for o in range(8)])
    err_model = np.abs(pol.rates(8) - truth).max()
    err_persistence = np.abs(truth[0] - truth).max()
    assert err_model < 0.25 * err_persistence


def test_a_switch_to_base_breaks_the_sla_in_its_interval():
    # BASE's steady p95 is the SLA: the backlog of the switch's downtime pushes that interval over
    env = CloverServingEnv("efficientnet", episode_hours=4, workload=CONST)
    env.reset(seed=0)
    sw = SwitchModel.of(env)
    cat = env.catalog
    cheap = int(np.flatnonzero(cat.feasible)[0])
    m = sw.interval(cheap, cat.base_index, 2.5)
    assert m.p95_ms > env.sla_ms
    steady = float(env.objective_table(rate_rps=2.5, intensity=250.0).value[cat.base_index])
    loss = sw.loss(cheap, cat.base_index, 2.5, 250.0, 0.0, steady)
    sla = SwitchModel.of(env, charge_sla=True).loss(cheap, cat.base_index, 2.5, 250.0, 0.0, steady)
    assert sla >= loss + env.scenario.penalties.sla


def test_mpc_with_the_sla_penalty_does_not_switch_into_a_violation_for_a_small_gain():
    # a clean grid makes BASE worth a little more per hour than a cheap configuration, not
    # enough to pay a violating switch interval: mpc(sla_penalty) stays, plain mpc switches
    env = CloverServingEnv("efficientnet", carbon_trace=_trace(np.full(24 * 4, 30.0)), episode_hours=8,
                           workload=CONST)
    cat = env.catalog
    tv = env.objective_table(rate_rps=2.5, intensity=30.0)
    ok = tv.allowed() & cat.feasible
    gap = tv.value[cat.base_index] - np.where(ok, tv.value, -np.inf)
    runner_up = int(np.argmin(np.where(ok & (gap > 0), gap, np.inf)))  # closest below BASE
    picks = {}
    for charge in (False, True):
        pol = MPCPolicy(env, horizon=6, switch_cost=0.0, sla_penalty=charge)
        obs, info = env.reset(seed=0, options={"start": 30})
        env.step(runner_up)  # now serving the runner-up
        pol.reset()
        picks[charge] = pol.act(obs, info)
    assert picks[False] == cat.base_index
    assert picks[True] != cat.base_index


def test_mpc_budget_hedges_against_its_forecasts_past_errors():
    # a volatile history (the model's errors are large) under a budget the point forecast just
    # fits: the hedged price is higher than the point forecast's
    rng = np.random.default_rng(3)
    vals = np.clip(200 + 150 * rng.standard_normal(24 * 20), 20, None)
    env = CloverServingEnv("efficientnet-budget", carbon_trace=_trace(vals), episode_hours=24, workload=CONST)
    prices = {}
    for hedge in (False, True):
        pol = MPCPolicy(env, hedge=hedge, switch_model=False)
        obs, info = env.reset(seed=0, options={"start": 24 * 15})
        pol.reset()
        pol.act(obs, info)
        prices[hedge] = pol.last_decision["carbon_price"]
    assert prices[True] > prices[False]


@pytest.mark.parametrize("scenario", ["efficientnet", "efficientnet-budget"])
def test_mpc_plans_through_hours_whose_forecast_load_nothing_serves(scenario):
    env = CloverServingEnv(scenario, episode_hours=24, workload=CONST)
    pol = MPCPolicy(env, switch_model=False)
    obs, info = env.reset(seed=0, options={"start": 24 * 15})
    pol.reset()
    table = env.objective_table

    def overloaded(offset=0, *, rate_rps=None, intensity=None):  # nothing serves a forecast burst
        tv = table(offset, rate_rps=2.5, intensity=intensity)
        if rate_rps <= 2.5:
            return tv
        none = np.zeros_like(tv.ok)
        return TableValues(np.full_like(tv.value, -np.inf), np.full_like(tv.carbon_g, np.inf), none, none)

    env.objective_table = overloaded
    pol.rates = lambda n: np.r_[2.5, np.full(n - 1, 50.0)]
    a = pol.act(obs, info)
    assert env.action_masks()[a] and np.isfinite(pol.last_decision["planned_value"])
