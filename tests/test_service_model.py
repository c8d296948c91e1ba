"""ServiceModel: one scoring implementation (scalar == vectorised), the typed policy contract
that the env and the controller both implement, and scenario fields that reach the backend."""
from __future__ import annotations

import numpy as np
import pytest

from clover_rl.contracts import ControlContext, context_of
from clover_rl.envs.serving_env import CloverServingEnv
from clover_rl.service_model import LastRatios, ServiceModel


@pytest.fixture(scope="module")
def model() -> ServiceModel:
    return ServiceModel.from_scenario("efficientnet")


def test_vectorised_scores_equal_the_scalar_score(model):
    table = model.config_table(model.mean_rate)
    scores = table.scores(300.0, model.pue, model.objective)
    for i in np.flatnonzero(np.isfinite(scores))[:50]:
        m = model.steady_state(model.mean_rate, model.catalog.configs[i]).interval(model.scenario.control_interval_s)
        assert scores[i] == pytest.approx(model.score(m, 300.0).value, rel=1e-9, abs=1e-12)
    assert np.all(scores[~model.catalog.feasible] == -np.inf)


def test_env_stands_on_a_given_model_and_observes_through_it(model):
    env = CloverServingEnv(model)
    obs, _ = env.reset(options={"start": 3})
    ref = model.observe(ci_now=env.intensity(), forecast=env.forecast(), rate_rps=env.rate(),
                        last=LastRatios(), config_index=model.catalog.base_index, hour_of_day=env._hour())
    assert np.array_equal(obs, ref)
    assert env.reference is model.reference and env.catalog is model.catalog
    with pytest.raises(Exception, match="cannot change a built ServiceModel"):
        CloverServingEnv(model, episode_hours=4)


def test_env_and_controller_are_control_contexts(model, tmp_path):
    from clover_rl.controller.clock import FakeClock
    from clover_rl.controller.loop import Controller, ControllerOptions
    from clover_rl.controller.plane import ReplayPlane
    from clover_rl.controller.supervisor import make_carbon_source
    from clover_rl.serving.replay import ReplayBackend

    env = CloverServingEnv(model)
    assert isinstance(env, ControlContext) and context_of(env) is env
    clock = FakeClock()
    plane = ReplayPlane(ReplayBackend(model.service, model.profile, model.gpu, model.scenario.gpus), clock,
                        model.mean_rate)
    ctl = Controller(model.scenario, "base", plane, make_carbon_source("file:caiso_pge:eval", start=clock.time(),
                                                                       clock=clock),
                     tmp_path / "state", ControllerOptions(echo=None, tensorboard=False), clock=clock, model=model)
    assert isinstance(ctl, ControlContext) and ctl.model is model
    assert ctl.policy.env is ctl
    with pytest.raises(TypeError, match="not a ControlContext"):
        context_of(object())


@pytest.mark.parametrize("charged", [True, False])
def test_scenario_reconfiguration_reaches_the_replay_backend(charged):
    env = CloverServingEnv("efficientnet", reconfiguration=charged)
    env.reset(options={"start": 0})
    _, _, _, _, info = env.step(env.catalog.lookup("4g:b5,3g:b5"))
    assert (info["downtime_s"] > 0) == charged and info["reconfigurations"] == 1
