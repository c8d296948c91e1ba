"""``clover-rl deploy --ray``: the extra is optional, and its absence or a bad cluster address is one
clear line (no Ray cluster is started here)."""
from __future__ import annotations

import sys

import pytest

from clover_rl.cli import main
from clover_rl.errors import ConfigError

ARGS = ["deploy", "--scenario", "efficientnet", "--policy", "base", "--carbon", "file:caiso_pge:eval",
        "--models", "emulated", "--duration", "5s", "--port", "0"]


def test_without_ray_flag_nothing_imports_ray() -> None:
    import subprocess

    code = ("import sys; from clover_rl.cli import main; import clover_rl.commands.deploy, "
            "clover_rl.controller.deployment; print('ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_missing_extra_is_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, tmp_path) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    from clover_rl.serving.ray import require_ray

    with pytest.raises(ConfigError, match=r"pip install 'clover-rl\[ray\]'"):
        require_ray()
    rc = main([*ARGS, "--state", str(tmp_path / "s"), "--ray", "auto"])
    err = capsys.readouterr().err
    assert rc == 2 and err.strip() == "error: the Ray serving plane needs Ray: pip install 'clover-rl[ray]'"
    assert not (tmp_path / "s").exists() or not any((tmp_path / "s").iterdir())


def test_bad_max_down(capsys: pytest.CaptureFixture, tmp_path) -> None:
    pytest.importorskip("ray")
    rc = main([*ARGS, "--state", str(tmp_path / "s"), "--ray", "auto", "--max-down", "1.5"])
    assert rc == 2 and "--max-down must be in (0, 1], got 1.5" in capsys.readouterr().err


def test_learned_fleet_policy_steps_aside_while_the_fleet_is_another_size() -> None:
    """A fleet checkpoint fits the GPU count it was trained for: with a node lost, mpc decides
    until the GPUs are back; built-in policies and one-configuration scenarios keep theirs."""
    from clover_rl.serving.ray.deploy import fleet_policy

    ckpt = "/abs/checkpoints/efficientnet-fleet"
    assert fleet_policy(ckpt, True, 4, 8) == "mpc"
    assert fleet_policy(ckpt, True, 8, 8) == ckpt
    assert fleet_policy(ckpt, False, 4, 8) == ckpt
    assert fleet_policy("greedy-carbon", True, 4, 8) == "greedy-carbon"
