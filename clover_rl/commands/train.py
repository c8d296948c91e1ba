"""`clover-rl train`: train an SB3 agent on trace replay into a run folder (or resume one)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from clover_rl.training.config import field_help, fields_epilog


def train(
    config: Annotated[Path | None, typer.Option(
        "--config", "-c", help="training YAML (configs/train/NAME.yaml, a shipped name, or a run's config.yml); "
                               "its fields are listed below")] = None,
    timesteps: Annotated[int | None, typer.Option(
        "--timesteps", help="new run: overrides n_timesteps -- " + field_help("n_timesteps")
        + " With --resume: further steps (default: what is left of n_timesteps).")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="overrides seed -- " + field_help("seed"))] = None,
    n_envs: Annotated[int | None, typer.Option("--n-envs", help="overrides n_envs -- " + field_help("n_envs"))] = None,
    out: Annotated[Path | None, typer.Option(
        "--out", help="overrides out_dir -- " + field_help("out_dir"))] = None,
    resume: Annotated[Path | None, typer.Option(
        "--resume", help="continue this run folder (same TensorBoard curves)")] = None,
    exp_name: Annotated[str | None, typer.Option(
        "--exp-name", help="overrides exp_name -- " + field_help("exp_name"))] = None,
    progress: Annotated[bool | None, typer.Option(
        "--progress/--no-progress", help="overrides progress_bar -- " + field_help("progress_bar"))] = None,
    pretrain_episodes: Annotated[int | None, typer.Option(
        "--pretrain-episodes", min=1, help="overrides pretrain.episodes (a config with a pretrain: block) -- "
        "episodes per imitation round; 1 gives a quick smoke run of the warm start")] = None,
    carbon_trace: Annotated[str | None, typer.Option(
        "--carbon-trace", metavar="NAME|FILE[,column=C][,time_column=T][,unit=U]",
        help="train and evaluate on this trace instead of the config's (as in evaluate)")] = None,
) -> None:
    """Train MaskablePPO / PPO / DQN on trace replay; TensorBoard under RUN/tb."""
    from clover_rl.errors import ConfigError
    from clover_rl.training import load_train_config
    from clover_rl.training import train as run_training

    # The command as parsed (works the same from a shell or from ``main([...])``).
    argv = ["clover-rl", "train"]
    for flag, value in (("--config", config), ("--resume", resume), ("--timesteps", timesteps), ("--seed", seed),
                        ("--n-envs", n_envs), ("--out", out), ("--exp-name", exp_name),
                        ("--pretrain-episodes", pretrain_episodes), ("--carbon-trace", carbon_trace)):
        if value is not None:
            argv += [flag, str(value)]
    if progress is not None:
        argv.append("--progress" if progress else "--no-progress")
    if resume is not None:
        if config is not None or seed is not None or out is not None or exp_name is not None \
                or carbon_trace is not None or pretrain_episodes is not None:
            raise ConfigError("--resume continues a run with its own config.yml; "
                              "drop --config/--seed/--out/--exp-name/--carbon-trace/--pretrain-episodes")
        res = run_training(resume=resume, timesteps=timesteps, n_envs=n_envs, command=argv,
                           progress=progress)
    else:
        if config is None:
            raise ConfigError("give --config configs/train/NAME.yaml (or --resume RUN_DIR)")
        from clover_rl.paths import writable_dir

        if out is not None:
            writable_dir(out, "--out")  # before training, so no run is lost
        cfg = load_train_config(config)
        if carbon_trace is not None:
            cfg = cfg.with_carbon_trace(carbon_trace)
        cfg = cfg.replace(seed=seed, out_dir=str(out) if out is not None else None, exp_name=exp_name,
                          progress_bar=progress)
        if pretrain_episodes is not None:
            if cfg.pretrain is None:
                raise ConfigError(f"--pretrain-episodes: {config} has no pretrain: block")
            cfg = cfg.replace(pretrain={**cfg.pretrain.to_dict(), "episodes": pretrain_episodes})
        res = run_training(cfg, timesteps=timesteps, n_envs=n_envs, command=argv)
    best = res.best or {}
    figs = ", ".join(f"{k} {best[k]:.4g}" for k in ("objective", "oracle_gap_pct", "sla_violation_pct",
                                                     "reconfigurations") if k in best)
    print(f"run folder: {res.run_dir}")
    print(f"trained {res.trained_steps} steps (total {res.timesteps}) in {res.wall_s:.1f} s")
    if figs:
        print(f"best evaluation (at {best.get('timesteps')} steps): {figs}")
    print(f"tensorboard --logdir {res.run_dir / 'tb'}")


def register(app: typer.Typer) -> None:
    app.command("train", epilog=fields_epilog())(train)
