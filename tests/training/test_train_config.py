"""TrainConfig as data: field descriptions drive ``clover-rl train --help``; a bad value in a
training YAML is one line naming the file, the field and the value (CLI exit 2, no traceback)."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from clover_rl.cli import main
from clover_rl.errors import ConfigError
from clover_rl.paths import configs_dir
from clover_rl.training import TrainConfig, load_train_config

SMOKE = configs_dir() / "train" / "smoke.yaml"


def test_help_lists_every_field_description(capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "400")  # one description per line, unwrapped
    assert main(["train", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    for name, f in TrainConfig.model_fields.items():
        assert f"{name} (default " in out
        assert " ".join((f.description or "").split()) in out, name
    assert "overrides seed -- " + TrainConfig.model_fields["seed"].description in out  # type: ignore[operator]


@pytest.mark.parametrize(("line", "needle"), [
    ("n_envs: -2", "field n_envs: Input should be greater than or equal to 1 (got -2)"),
    ("algo: sac", "field algo: Input should be 'maskable_ppo', 'ppo' or 'dqn' (got 'sac')"),
    ("eval_oracle: maybe", "field eval_oracle: Input should be a valid boolean (got 'maybe')"),
    ("n_timesteps: 1.5", "field n_timesteps: Input should be a valid integer (got 1.5)"),
    ("seed: -1", "field seed: Input should be greater than or equal to 0 (got -1)"),
    ("pretrain: {rounds: 0}", "field pretrain.rounds: Input should be greater than or equal to 1 (got 0)"),
    ("pretrain: {batch_size: true}", "field pretrain.batch_size: Input should be a valid integer (got True)"),
    ("n_envz: 2", "field n_envz: unknown field"),
    ("env_kwargs: {randomization: {synthetic_prob: 2}}",
     "env_kwargs.randomization: field synthetic_prob: Input should be less than or equal to 1 (got 2)"),
])
def test_cli_bad_value_names_file_field_value(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                              line: str, needle: str) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(SMOKE.read_text() + "\n" + line + "\n")
    assert main(["train", "--config", str(bad), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {bad}: {needle}"]
    assert not [p for p in tmp_path.iterdir() if p.is_dir()]  # nothing trained


def test_command_line_override_is_validated(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--config", str(SMOKE), "--exp-name", "a__b", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == "error: command line: exp_name must be a non-empty name " \
                                              "without '__' or '/' (got 'a__b')"


def test_replace_and_round_trip() -> None:
    cfg = load_train_config(SMOKE)
    new = cfg.replace(seed=7, exp_name=None)  # None: keep
    assert (new.seed, new.exp_name, cfg.seed) == (7, cfg.exp_name, yaml.safe_load(SMOKE.read_text()).get("seed", 0))
    assert TrainConfig.model_validate(yaml.safe_load(new.to_yaml())) == new
    with pytest.raises(ConfigError, match=r"^--n-envs: field n_envs"):
        cfg.replace(n_envs=0, where="--n-envs")
    with pytest.raises(Exception):  # noqa: B017 -- frozen: settings change only through replace()
        cfg.seed = 3  # type: ignore[misc]


def test_pretrain_episodes_override(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--pretrain-episodes needs a pretrain: block (smoke has none) and otherwise changes only it."""
    assert main(["train", "--config", str(SMOKE), "--pretrain-episodes", "1", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == f"error: --pretrain-episodes: {SMOKE} has no pretrain: block"
    cfg = load_train_config(configs_dir() / "train" / "llm.yaml")
    assert cfg.pretrain is not None and cfg.pretrain.episodes > 1
    small = cfg.replace(pretrain={**cfg.pretrain.to_dict(), "episodes": 1})
    assert small.pretrain is not None and small.pretrain.episodes == 1
    assert small.pretrain.rounds == cfg.pretrain.rounds and small.n_timesteps == cfg.n_timesteps
