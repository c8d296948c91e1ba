"""`clover-rl train` on tiny budgets: run folder contents, TensorBoard tags, resume, errors."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from clover_rl.cli import main
from clover_rl.errors import ConfigError
from clover_rl.paths import configs_dir
from clover_rl.training import TrainConfig, config_from_dict, load_train_config

SMOKE = configs_dir() / "train" / "smoke.yaml"
EVAL_TAGS = {f"eval/{k}" for k in ("carbon_saving_pct", "accuracy_drop_pct", "sla_violation_pct",
                                   "reconfigurations", "objective", "oracle_gap_pct", "mean_reward")}


def _events(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """All scalars of every event file under RUN/tb, plus '__hparams__' when present."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.util import tensor_util

    out: dict[str, list[tuple[int, float]]] = {}
    files = sorted((run_dir / "tb").glob("events.out.tfevents.*"))
    assert files, "no TensorBoard event file"
    for f in files:
        for ev in EventFileLoader(str(f)).Load():
            for v in ev.summary.value:
                if v.metadata.plugin_data.plugin_name == "hparams":
                    out.setdefault("__hparams__", []).append((ev.step, 0.0))
                elif v.HasField("tensor"):
                    out.setdefault(v.tag, []).append((ev.step, float(tensor_util.make_ndarray(v.tensor))))
                elif v.HasField("simple_value"):
                    out.setdefault(v.tag, []).append((ev.step, v.simple_value))
    return out


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs")
    rc = main(["train", "--config", str(SMOKE), "--out", str(out), "--timesteps", "128", "--no-progress"])
    assert rc == 0
    (run,) = list(out.iterdir())
    return run


def test_run_folder_has_all_files(run_dir: Path) -> None:
    assert run_dir.name.startswith("yolo__smoke__0__")
    for name in ("model.zip", "last_model.zip", "config.yml", "command.txt", "metadata.json"):
        assert (run_dir / name).is_file(), name
    cfg = load_train_config(run_dir / "config.yml")
    assert cfg.n_timesteps == 128 and cfg.algo == "maskable_ppo"
    assert "train" in (run_dir / "command.txt").read_text()
    meta = json.loads((run_dir / "metadata.json").read_text())
    assert meta["scenario"] == "yolo" and meta["status"] == "complete"
    assert meta["observation_shape"] == [len(meta["observation_names"])]
    assert meta["action_count"] == 438 and len(meta["catalog_signature"]) == 16
    assert {"stable_baselines3", "sb3_contrib", "torch", "clover_rl"} <= set(meta["libraries"])
    best = meta["evaluation"]["best"]
    assert {"objective", "oracle_gap_pct", "sla_violation_pct", "reconfigurations"} <= set(best)
    assert meta["training"]["total_timesteps"] == 128


def test_tensorboard_has_custom_scalars_and_hparams(run_dir: Path) -> None:
    ev = _events(run_dir)
    assert EVAL_TAGS <= set(ev), sorted(ev)
    assert any(t.startswith("charts/") for t in ev), sorted(ev)
    assert "charts/objective" in ev
    assert "__hparams__" in ev
    assert any(t.startswith("train/") for t in ev)  # SB3's own scalars


def test_resume_continues_step_count_and_curves(run_dir: Path, tmp_path: Path) -> None:
    import shutil

    run = tmp_path / run_dir.name
    shutil.copytree(run_dir, run)
    n_files = len(list((run / "tb").glob("events.*")))
    # n_timesteps is already reached: resuming needs --timesteps
    assert main(["train", "--resume", str(run), "--no-progress"]) == 2
    assert main(["train", "--resume", str(run), "--timesteps", "64", "--no-progress"]) == 0
    meta = json.loads((run / "metadata.json").read_text())
    assert meta["training"]["total_timesteps"] == 192
    assert len(meta["training"]["sessions"]) == 2
    assert len((run / "command.txt").read_text().splitlines()) == 2
    ev = _events(run)
    steps = [s for s, _ in ev["eval/objective"]]
    assert max(steps) == 192 and min(steps) <= 128
    assert len(list((run / "tb").glob("events.*"))) == n_files + 1  # same folder, same curves


@pytest.mark.parametrize("algo", ["ppo", "dqn"])
def test_ppo_and_dqn_train(algo: str, tmp_path: Path) -> None:
    data = yaml.safe_load(SMOKE.read_text())
    data.update(algo=algo, exp_name=algo, eval_freq=0, out_dir=str(tmp_path))
    data["hyperparams"] = ({"n_steps": 32, "batch_size": 32, "n_epochs": 1} if algo == "ppo"
                           else {"learning_starts": 16, "buffer_size": 1000, "batch_size": 16, "train_freq": 4})
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text(yaml.safe_dump(data))
    assert main(["train", "-c", str(cfg_path), "--timesteps", "64", "--no-progress"]) == 0
    (run,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    meta = json.loads((run / "metadata.json").read_text())
    assert meta["algo"] == algo and (run / "model.zip").exists()


def test_normalized_run_saves_and_applies_statistics(tmp_path: Path) -> None:
    from clover_rl.agents.sb3 import load_policy
    from clover_rl.envs.serving_env import CloverServingEnv

    data = yaml.safe_load(SMOKE.read_text())
    data.update(normalize={"norm_obs": True, "norm_reward": False}, eval_freq=32, n_eval_episodes=1,
                eval_oracle=False, out_dir=str(tmp_path), hyperparams={"n_steps": 32, "batch_size": 32, "n_epochs": 1})
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text(yaml.safe_dump(data))
    assert main(["train", "-c", str(cfg_path), "--timesteps", "32", "--no-progress"]) == 0
    (run,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert (run / "vecnormalize.pkl").exists() and (run / "last_vecnormalize.pkl").exists()
    assert main(["train", "--resume", str(run), "--timesteps", "32", "--no-progress"]) == 0
    env = CloverServingEnv("yolo", episode_hours=4)
    try:
        policy = load_policy(run, env)
        assert policy.vecnormalize is not None
        obs, info = env.reset(seed=0)
        assert not np.allclose(policy.normalize(obs), obs)
        assert env.action_masks()[policy.act(obs, info)]
    finally:
        env.close()


def test_subproc_vec_env(tmp_path: Path) -> None:
    data = yaml.safe_load(SMOKE.read_text())
    data.update(eval_freq=0, out_dir=str(tmp_path), hyperparams={"n_steps": 16, "batch_size": 32, "n_epochs": 1})
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text(yaml.safe_dump(data))
    assert main(["train", "-c", str(cfg_path), "--timesteps", "32", "--n-envs", "2", "--no-progress"]) == 0
    (run,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert json.loads((run / "metadata.json").read_text())["training"]["sessions"][0]["n_envs"] == 2


@pytest.mark.parametrize(("change", "needle"), [
    ({"algo": "a2c"}, "x.yaml: field algo: Input should be 'maskable_ppo', 'ppo' or 'dqn' (got 'a2c')"),
    ({"bogus": 1}, "x.yaml: field bogus: unknown field"),
    ({"hyperparams": {"n_step": 8}}, "unknown key(s) ['n_step']"),
    ({"n_envs": 0}, "x.yaml: field n_envs: Input should be greater than or equal to 1 (got 0)"),
    ({"n_envs": True}, "field n_envs: Input should be a valid integer (got True)"),
    ({"normalize": "yes"}, "field normalize: must be true/false or VecNormalize kwargs (got 'yes')"),
    ({"policy_kwargs": {"activation_fn": "sigmoid"}}, "activation_fn"),
    ({"normalize": {"clip_ob": 5}}, "normalize: unknown key"),
    ({"env_kwargs": {"scenario": "yolo"}}, "env_kwargs.scenario is not allowed"),
])
def test_config_errors(change: dict, needle: str) -> None:
    data = {**yaml.safe_load(SMOKE.read_text()), **change}
    with pytest.raises(ConfigError) as e:
        config_from_dict(data, "x.yaml")
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_cli_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--config", str(tmp_path / "missing.yaml")]) == 2
    assert main(["train"]) == 2
    assert main(["train", "--resume", str(tmp_path)]) == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text("algo: [unclosed\n")
    assert main(["train", "--config", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 4 and all(line.startswith("error: ") for line in err)


def test_every_field_is_documented() -> None:
    docs = {name: f.description or "" for name, f in TrainConfig.model_fields.items()}
    assert all(len(d) > 10 for d in docs.values()), [n for n, d in docs.items() if len(d) <= 10]


def test_shipped_train_configs_validate() -> None:
    names = sorted(p.stem for p in (configs_dir() / "train").glob("*.yaml"))
    assert {"efficientnet", "yolo", "albert"} <= set(names)
    for n in names:
        cfg = load_train_config(n)
        assert cfg.algo in ("maskable_ppo", "ppo", "dqn")
