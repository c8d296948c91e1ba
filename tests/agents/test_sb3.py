"""SB3 checkpoints as Policies: masked prediction, and one-line errors when spaces differ."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from clover_rl.agents.base import Policy
from clover_rl.agents.sb3 import MaskedPredictor, load_policy
from clover_rl.envs.serving_env import CloverServingEnv
from clover_rl.errors import CheckpointError
from clover_rl.paths import checkpoints_dir
from clover_rl.training.config import algo_class
from clover_rl.training.policies import graph_features, resolve_policy, strip_features
from clover_rl.training.run import env_metadata

SMALL = {"maskable_ppo": {"n_steps": 16, "batch_size": 16}, "ppo": {"n_steps": 16, "batch_size": 16},
         "dqn": {"learning_starts": 0, "buffer_size": 100}}


@pytest.fixture(scope="module")
def yolo_env() -> CloverServingEnv:
    env = CloverServingEnv("yolo", episode_hours=4)
    yield env
    env.close()


def _model(algo: str, env: CloverServingEnv, seed: int = 0, graph: bool = False):
    kwargs: dict = {"net_arch": [8]}
    if graph:
        kwargs.update(action_features=graph_features(env), action_embed_dim=4, action_hidden=8)
    policy = resolve_policy("GraphMlpPolicy" if graph else "MlpPolicy", algo)
    model = algo_class(algo)(policy, env, seed=seed, policy_kwargs=kwargs, device="cpu", **SMALL[algo])
    strip_features(model)
    return model


def _run_folder(tmp: Path, algo: str, env: CloverServingEnv, graph: bool = False) -> Path:
    run = tmp / f"run_{algo}"
    run.mkdir()
    _model(algo, env, graph=graph).save(str(run / "model.zip"))
    (run / "metadata.json").write_text(json.dumps({"algo": algo, **env_metadata(env)}))
    return run


@pytest.mark.parametrize(("algo", "graph"), [("maskable_ppo", False), ("ppo", False), ("dqn", False),
                                            ("maskable_ppo", True), ("ppo", True)])
def test_masked_prediction_never_picks_a_masked_action(algo: str, graph: bool, yolo_env: CloverServingEnv) -> None:
    pred = MaskedPredictor(_model(algo, yolo_env, graph=graph))
    rng = np.random.default_rng(1)
    n = yolo_env.action_space.n
    obs = np.stack([yolo_env.observation_space.sample() for _ in range(64)])
    for density in (0.01, 0.1, 0.5):
        masks = rng.random((64, n)) < density
        masks[np.arange(64), rng.integers(0, n, 64)] = True  # at least one allowed per row
        acts, _ = pred.predict(obs, action_masks=masks)
        assert masks[np.arange(64), acts].all()
        single, _ = pred.predict(obs[0], action_masks=masks[0])
        assert masks[0, int(single)]


@pytest.mark.parametrize(("algo", "graph"), [("maskable_ppo", False), ("dqn", False), ("maskable_ppo", True)])
def test_load_policy_acts_within_the_env_mask(algo: str, graph: bool, yolo_env: CloverServingEnv,
                                              tmp_path: Path) -> None:
    policy = load_policy(_run_folder(tmp_path, algo, yolo_env, graph), yolo_env)
    assert isinstance(policy, Policy) and policy.name.startswith(f"{algo}:")
    if graph:  # the head's features are rebuilt from the saved policy kwargs
        head = policy.model.policy.action_net
        assert tuple(head.features.shape) == (438, 15)
        assert np.array_equal(head.features.numpy(), np.rint(yolo_env.catalog.graphs))
    obs, info = yolo_env.reset(seed=0)
    policy.reset()
    for _ in range(4):
        a = policy.act(obs, info)
        assert yolo_env.action_masks()[a]
        obs, _, _, _, info = yolo_env.step(a)
        assert not info["refused"]


def test_space_mismatches_are_one_line_errors(yolo_env: CloverServingEnv, tmp_path: Path) -> None:
    run = _run_folder(tmp_path, "maskable_ppo", yolo_env)
    other = CloverServingEnv("efficientnet", episode_hours=4)
    try:
        with pytest.raises(CheckpointError) as e:
            load_policy(run, other)
        msg = str(e.value)
        assert "\n" not in msg
        for needle in ("observation shape 31 (checkpoint) != 36 (env)", "action count 438 (checkpoint) != 1282 (env)",
                       "signature", "scenario service yolo (checkpoint) != efficientnet (env)"):
            assert needle in msg, msg
    finally:
        other.close()
    shorter = CloverServingEnv("yolo", episode_hours=4,
                               carbon={"trace": "caiso_pge", "period": "eval", "pue": 1.5, "forecast_hours": 3})
    try:
        with pytest.raises(CheckpointError, match="observation shape 31 .checkpoint. != 28 .env."):
            load_policy(run, shorter)
    finally:
        shorter.close()
    meta = json.loads((run / "metadata.json").read_text())
    meta["catalog_signature"] = "0123456789abcdef"
    (run / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="configuration catalog signature 0123456789abcdef"):
        load_policy(run, yolo_env)


def test_bare_zip_without_metadata_is_checked_against_the_model(yolo_env: CloverServingEnv, tmp_path: Path) -> None:
    _model("ppo", yolo_env).save(str(tmp_path / "m.zip"))
    assert load_policy(tmp_path / "m.zip", yolo_env).metadata == {}
    other = CloverServingEnv("albert", episode_hours=4)
    try:
        with pytest.raises(CheckpointError, match="action count 438 .checkpoint. != 1282 .env."):
            load_policy(tmp_path / "m.zip", other)
    finally:
        other.close()


def test_missing_and_corrupt_checkpoints(yolo_env: CloverServingEnv, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_policy(tmp_path / "nope", yolo_env)
    with pytest.raises(CheckpointError, match="no model.zip"):
        load_policy(tmp_path, yolo_env)
    (tmp_path / "model.zip").write_bytes(b"not a zip")
    with pytest.raises(CheckpointError, match="cannot load|not an SB3 model"):
        load_policy(tmp_path, yolo_env)


@pytest.mark.parametrize("scenario", ["efficientnet", "yolo", "albert"])
def test_shipped_checkpoints_load_and_act(scenario: str) -> None:
    folder = checkpoints_dir() / scenario
    if not (folder / "model.zip").exists():
        pytest.skip(f"no shipped checkpoint for {scenario}")
    assert (folder / "model.zip").stat().st_size < 1_000_000
    env = CloverServingEnv(scenario, episode_hours=4)
    try:
        policy = load_policy(folder, env)
        obs, info = env.reset(seed=0)
        a = policy.act(obs, info)
        assert env.action_masks()[a]
        meta = json.loads((folder / "metadata.json").read_text())
        assert meta["catalog_signature"] == env.catalog.signature
        assert "best" in meta["evaluation"]
    finally:
        env.close()


def test_evaluate_cli_runs_the_shipped_policy(monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    from clover_rl.cli import main

    folder = checkpoints_dir() / "efficientnet"
    if not (folder / "model.zip").exists():
        pytest.skip("no shipped checkpoint for efficientnet")
    monkeypatch.chdir(checkpoints_dir().parent)
    rc = main(["evaluate", "--scenario", "efficientnet", "--policy", "checkpoints/efficientnet",
               "--hours", "3", "--json", "--no-progress"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["checkpoints/efficientnet"]["intervals"] == 3
