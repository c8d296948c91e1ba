"""Ray is optional: a clear error without the extra; with it, the suite's cases and SB3 rollouts
on Ray workers give exactly the sequential results."""
from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from clover_rl.errors import ConfigError


@pytest.fixture
def no_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError


def test_require_ray_names_the_extra(no_ray: None) -> None:
    from clover_rl.distributed.runtime import require_ray

    with pytest.raises(ConfigError, match=r"optional 'ray' extra.*clover-rl\[ray\]"):
        require_ray()


def test_benchmark_ray_without_the_extra_is_a_one_line_error(no_ray: None, capsys: pytest.CaptureFixture) -> None:
    from clover_rl.cli import main

    rc = main(["benchmark", "--ray", "auto", "--case", "yolo/se", "--policy", "base"])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.strip().splitlines() == [
        "error: --ray needs the optional 'ray' extra, which is not installed (pip install 'clover-rl[ray]')"]


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray")
    try:  # a private local cluster
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    except Exception as e:  # Ray's node start-up deadline on an overloaded machine: not our code
        pytest.skip(f"Ray could not start a local node here: {str(e).splitlines()[0]}")
    yield ray
    ray.shutdown()


@pytest.mark.slow
def test_suite_on_ray_gives_the_sequential_results(ray_local) -> None:
    from clover_rl.evaluation.benchmark import run_suite
    from clover_rl.evaluation.suite import Case

    cases = [Case("t/wind", "yolo", "synth:wind:2147484649", "2023-01-02", hours=3),
             Case("t/solar", "yolo", "synth:solar:2147484650", "2023-01-02", hours=3)]
    seq = run_suite(cases, ["base", "mpc"], workers=1)
    par = run_suite(cases, ["base", "mpc"], workers=2, ray_address="auto")  # uses the running cluster
    assert [c.case.name for c in par.cases] == ["t/wind", "t/solar"]
    # every figure exactly equal (JSON text, so an undefined gap -- NaN -- equals NaN)
    assert json.dumps([c.rows for c in par.cases], sort_keys=True) == json.dumps([c.rows for c in seq.cases],
                                                                                sort_keys=True)


@pytest.mark.slow
def test_ray_vec_env_matches_subproc_semantics(ray_local) -> None:
    import functools

    import gymnasium as gym
    from stable_baselines3.common.vec_env import DummyVecEnv

    from clover_rl.distributed.vec_env import RayVecEnv

    fns = [functools.partial(gym.make, "CartPole-v1")] * 2  # picklable by reference into the actors
    ray_env, ref = RayVecEnv(fns), DummyVecEnv(fns)
    try:
        for v in (ray_env, ref):
            v.seed(7)
        np.testing.assert_array_equal(ray_env.reset(), ref.reset())
        dones = 0
        for k in range(60):
            acts = np.array([k % 2, (k // 3) % 2])
            o1, r1, d1, i1 = ray_env.step(acts)
            o2, r2, d2, i2 = ref.step(acts)
            np.testing.assert_array_equal(o1, o2)
            np.testing.assert_array_equal(r1, r2)
            np.testing.assert_array_equal(d1, d2)
            dones += int(d2.sum())
            for a, b in zip(i1, i2):
                assert a["TimeLimit.truncated"] == b["TimeLimit.truncated"]
                if "terminal_observation" in b:
                    np.testing.assert_array_equal(a["terminal_observation"], b["terminal_observation"])
        assert dones > 0  # auto-reset was exercised
        r_ray = ray_env.env_method("reset", seed=3, indices=[1])
        r_ref = ref.env_method("reset", seed=3, indices=[1])
        np.testing.assert_array_equal(r_ray[0][0], r_ref[0][0])
        assert ray_env.get_attr("render_mode") == ref.get_attr("render_mode")
        assert ray_env.has_attr("np_random") and ray_env.env_is_wrapped(gym.Wrapper) == ref.env_is_wrapped(gym.Wrapper)
    finally:
        ray_env.close()
        ref.close()


def test_evaluate_ray_without_the_extra_is_a_one_line_error(no_ray: None, capsys: pytest.CaptureFixture) -> None:
    from clover_rl.cli import main

    rc = main(["evaluate", "--ray", "auto", "--scenario", "yolo", "--policy", "base", "--hours", "2"])
    assert rc == 2 and capsys.readouterr().err.strip().startswith("error: --ray needs the optional 'ray' extra")


@pytest.mark.slow
def test_evaluate_on_ray_gives_the_sequential_results(ray_local) -> None:
    """``evaluate --ray``: each policy on a Ray worker in its own env; every row and summary
    figure equals the sequential run's (wall/CPU times aside)."""
    from clover_rl.evaluation import evaluate_policies

    kw = {"hours": 4, "start": 30, "progress": False}
    seq = evaluate_policies("yolo", ["mpc", "clover"], **kw)
    par = evaluate_policies("yolo", ["mpc", "clover"], ray_address="auto", workers=2, **kw)
    assert list(par.runs) == list(seq.runs) == ["mpc", "clover", "base", "oracle"]
    for spec, run in seq.runs.items():
        assert json.dumps(par.runs[spec].rows, sort_keys=True) == json.dumps(run.rows, sort_keys=True)
        assert json.dumps(par.runs[spec].summary, sort_keys=True) == json.dumps(run.summary, sort_keys=True)
