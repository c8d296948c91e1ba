"""make_policy: names, parameters, checkpoint paths (lazy SB3 import) and one-line errors."""
from __future__ import annotations

import sys
import types

import pytest

from clover_rl.agents.annealing import CloverPolicy
from clover_rl.agents.base import Policy
from clover_rl.agents.baselines import (
    BasePolicy,
    GreedyCarbonPolicy,
    OraclePolicy,
    RandomSearchPolicy,
)
from clover_rl.agents.registry import POLICY_NAMES, make_policy
from clover_rl.errors import CheckpointError, ConfigError
from tests.support.agents import ScriptedEnv, smooth_figures


def test_names() -> None:
    assert POLICY_NAMES == ("base", "clover", "random", "oracle", "oracle-identical", "oracle-plan",
                            "greedy-carbon", "mpc")


@pytest.mark.parametrize("name, cls", [("base", BasePolicy), ("clover", CloverPolicy),
                                       ("random", RandomSearchPolicy), ("oracle", OraclePolicy),
                                       ("greedy-carbon", GreedyCarbonPolicy), ("Clover", CloverPolicy)])
def test_make_by_name_binds(name, cls) -> None:
    env = ScriptedEnv(smooth_figures)
    pol = make_policy(name, env, seed=3)
    assert isinstance(pol, cls) and isinstance(pol, Policy)
    assert pol.env is env and pol.name == name.lower()
    assert pol.seed == 3


def test_parameters_reach_the_policy() -> None:
    pol = make_policy("clover", ScriptedEnv(smooth_figures), max_explored=20, neighbour_distance=3)
    assert pol.max_explored == 20 and pol.neighbour_distance == 3
    with pytest.raises(ConfigError, match="clover"):
        make_policy("clover", ScriptedEnv(smooth_figures), no_such_option=1)
    with pytest.raises(ConfigError, match="max_explored"):
        make_policy("random", ScriptedEnv(smooth_figures), max_explored=0)


def test_unknown_name_lists_names() -> None:
    with pytest.raises(ConfigError) as e:
        make_policy("anneal", ScriptedEnv(smooth_figures))
    msg = str(e.value)
    assert "\n" not in msg and "'anneal'" in msg
    assert all(n in msg for n in POLICY_NAMES)


def test_missing_checkpoint_path() -> None:
    with pytest.raises(CheckpointError, match="no such"):
        make_policy("runs/nothing-here/model.zip", ScriptedEnv(smooth_figures))


def test_path_goes_to_sb3_loader_lazily(tmp_path, monkeypatch) -> None:
    calls = []

    class Loaded:
        name = "sb3"

        def reset(self) -> None: ...

        def act(self, observation, info) -> int:
            return 0

    fake = types.ModuleType("clover_rl.agents.sb3")

    def load_policy(path, env):
        calls.append((path, env))
        return Loaded()

    fake.load_policy = load_policy
    monkeypatch.setitem(sys.modules, "clover_rl.agents.sb3", fake)
    run = tmp_path / "run1"
    run.mkdir()
    env = ScriptedEnv(smooth_figures)
    pol = make_policy(str(run), env)
    assert isinstance(pol, Loaded) and calls == [(str(run), env)]
    (run / "model.zip").write_bytes(b"")
    make_policy(str(run / "model.zip"), env)
    assert calls[-1][0].endswith("model.zip")
    # a shipped checkpoint by name (checkpoints/<name>/)
    shipped = tmp_path / "shipped"
    (shipped / "my-ppo").mkdir(parents=True)
    monkeypatch.setattr("clover_rl.paths.checkpoints_dir", lambda: shipped)
    make_policy("my-ppo", env)
    assert calls[-1][0] == "my-ppo"
    with pytest.raises(ConfigError, match="my-ppo"):  # listed in the unknown-name message
        make_policy("nope", env)
    with pytest.raises(ConfigError, match="no parameters"):
        make_policy("my-ppo", env, seed=1, max_explored=3)


def test_registry_import_does_not_import_sb3() -> None:
    import subprocess

    code = ("import sys, clover_rl.agents.registry; "
            "sys.exit(1 if 'clover_rl.agents.sb3' in sys.modules or 'stable_baselines3' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
