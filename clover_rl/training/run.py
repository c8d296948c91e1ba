"""Train an SB3 agent on trace replay into an RL-Zoo-style run folder, or resume one.

Run folder ``{out_dir}/{scenario}__{exp_name}__{seed}__{time}/``:

* ``model.zip`` (+ ``vecnormalize.pkl``) -- the policy to deploy: the best on the periodic
  evaluation (or the final model when evaluation is off);
* ``last_model.zip`` (+ ``last_vecnormalize.pkl``) -- the latest state, for ``--resume``;
* ``config.yml`` (the TrainConfig with overrides applied), ``command.txt`` (every command
  that trained it), ``metadata.json`` (scenario, spaces, catalog signature, library
  versions, evaluation results, timing);
* ``tb/`` -- TensorBoard events (a resumed run appends to the same curves);
* ``evaluations.npz`` -- SB3's evaluation log.
"""
from __future__ import annotations

import json
import platform
import shlex
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from clover_rl.errors import CheckpointError, ConfigError
from clover_rl.heap import frozen_setup
from clover_rl.training.config import (
    TrainConfig,
    algo_class,
    build_hyperparams,
    build_policy_kwargs,
    load_train_config,
)
from clover_rl.training.policies import (
    GRAPH_POLICY,
    PROFILE_POLICY,
    graph_features,
    resolve_policy,
    strip_features,
)
from clover_rl.training.pretrain import pretrain
from clover_rl.training.profile_policy import strip_profile

CONFIG_FILE = "config.yml"
COMMAND_FILE = "command.txt"
METADATA_FILE = "metadata.json"
MODEL_FILE = "model.zip"
LAST_MODEL_FILE = "last_model.zip"
VECNORM_FILE = "vecnormalize.pkl"
LAST_VECNORM_FILE = "last_vecnormalize.pkl"
TB_DIR = "tb"


@dataclass
class TrainResult:
    """What a finished training call produced."""

    run_dir: Path
    timesteps: int  # total steps of the run (including earlier sessions when resumed)
    trained_steps: int  # steps trained by this call
    wall_s: float
    best: dict[str, Any] | None  # evaluation figures of the model in model.zip
    last_eval: dict[str, Any] | None


def run_name(cfg: TrainConfig, when: datetime | None = None) -> str:
    """``{scenario}__{exp_name}__{seed}__{time}`` (CleanRL's naming, scenario for env)."""
    when = when or datetime.now(timezone.utc)
    scen = Path(cfg.scenario).stem if cfg.scenario.endswith((".yaml", ".yml")) else cfg.scenario
    return f"{scen}__{cfg.exp_name}__{cfg.seed}__{when.strftime('%Y%m%d-%H%M%S')}"


def library_versions() -> dict[str, str]:
    import gymnasium
    import numpy
    import sb3_contrib
    import stable_baselines3
    import torch

    import clover_rl

    return {"python": platform.python_version(), "clover_rl": clover_rl.__version__,
            "stable_baselines3": stable_baselines3.__version__, "sb3_contrib": sb3_contrib.__version__,
            "torch": torch.__version__, "gymnasium": gymnasium.__version__, "numpy": numpy.__version__}


def env_metadata(env: Any) -> dict[str, Any]:
    """The spaces and scenario a policy is tied to (checked by ``load_policy``)."""
    from clover_rl.agents.sb3 import env_spaces

    u = env.unwrapped
    sc = u.scenario
    return {
        "scenario": sc.name,
        "scenario_config": sc.model_dump(mode="json", by_alias=True),
        **env_spaces(u),
        "observation_space": {"low": u.observation_space.low.tolist(), "high": u.observation_space.high.tolist()},
        "base_action": int(u.catalog.base_index),
        "sla_ms": float(u.sla_ms),
        "estimated": True,
    }


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    tmp.replace(path)


def _hparams(cfg: TrainConfig) -> dict[str, Any]:
    hp: dict[str, Any] = {"algo": cfg.algo, "scenario": cfg.scenario, "n_envs": cfg.n_envs,
                          "n_timesteps": cfg.n_timesteps, "seed": cfg.seed, "normalize": str(cfg.normalize)}
    hp.update({f"hp/{k}": v for k, v in cfg.hyperparams.items()})
    hp.update({f"policy/{k}": str(v) for k, v in cfg.policy_kwargs.items()})
    rnd = cfg.env_kwargs.get("randomization") or {}
    hp.update({f"rand/{k}": str(v) for k, v in rnd.items()})
    return hp


def train(
    cfg: TrainConfig | None = None,
    *,
    resume: str | Path | None = None,
    timesteps: int | None = None,
    n_envs: int | None = None,
    command: list[str] | None = None,
    progress: bool | None = None,
) -> TrainResult:
    """Train ``cfg`` into a new run folder, or continue the run in ``resume``.

    Resuming loads ``last_model.zip`` (else ``model.zip``) and its normalisation statistics,
    keeps the step counter (``reset_num_timesteps=False``) and the TensorBoard folder, and
    trains ``timesteps`` more steps (default: what is left of ``n_timesteps``).
    """
    import torch
    from stable_baselines3.common.logger import configure
    from stable_baselines3.common.vec_env import VecNormalize

    from clover_rl.training.callbacks import (
        CloverEvalCallback,
        EpisodeChartsCallback,
        HParamCallback,
    )
    from clover_rl.training.envs import make_eval_env, make_vec_env

    if (cfg is None) == (resume is None):
        raise ConfigError("give a training config or a run folder to resume (not both)")
    prior_meta: dict[str, Any] = {}
    if resume is not None:
        run_dir = Path(resume).expanduser()
        if not (run_dir / CONFIG_FILE).exists():
            raise CheckpointError(f"{run_dir}: not a run folder (no {CONFIG_FILE})")
        cfg = load_train_config(run_dir / CONFIG_FILE)
        if (run_dir / METADATA_FILE).exists():
            try:
                prior_meta = json.loads((run_dir / METADATA_FILE).read_text())
            except json.JSONDecodeError as e:
                raise CheckpointError(f"{run_dir / METADATA_FILE}: unreadable ({e})") from None
    assert cfg is not None
    if n_envs is not None:
        cfg = cfg.replace(n_envs=n_envs, where="--n-envs")
    if progress is not None:
        cfg = cfg.replace(progress_bar=progress, where="--progress")
    if timesteps is not None and (isinstance(timesteps, bool) or timesteps < 1):
        raise ConfigError(f"--timesteps must be a positive integer (got {timesteps})")

    torch.set_num_threads(cfg.torch_threads)
    cls = algo_class(cfg.algo)
    start = time.perf_counter()

    if resume is None:
        if timesteps is not None:
            cfg = cfg.replace(n_timesteps=timesteps, where="--timesteps")
        run_dir = Path(cfg.out_dir).expanduser() / run_name(cfg)
        if run_dir.exists():
            raise ConfigError(f"run folder {run_dir} already exists")

    venv = make_vec_env(cfg)
    eval_env = None
    try:
        from clover_rl.training.envs import build_env

        twin = venv.envs[0] if hasattr(venv, "envs") else build_env(cfg.scenario, dict(cfg.env_kwargs))
        try:  # subprocess workers: an in-process twin describes them
            spaces_meta, features = env_metadata(twin), graph_features(twin)
            profile = None
            if cfg.policy == PROFILE_POLICY and resume is None:
                from clover_rl.training.profile_policy import profile_kwargs

                profile = profile_kwargs(twin, Path(cfg.out_dir).expanduser() / ".profile_cache")
        finally:
            if not hasattr(venv, "envs"):
                twin.close()
        norm_kwargs = cfg.normalize if isinstance(cfg.normalize, dict) else {}
        if resume is None:
            if cfg.normalize:
                venv = VecNormalize(venv, **{"norm_reward": False, **norm_kwargs})
            policy_kwargs = build_policy_kwargs(cfg)
            if cfg.policy == GRAPH_POLICY:
                policy_kwargs["action_features"] = features
            if profile is not None:
                policy_kwargs["profile"] = profile
            try:
                model = cls(resolve_policy(cfg.policy, cfg.algo), venv, seed=cfg.seed, device=cfg.device,
                            verbose=cfg.verbose, policy_kwargs=policy_kwargs, **build_hyperparams(cfg))
                strip_features(model)
                strip_profile(model)
            except (TypeError, ValueError, AssertionError) as e:
                raise ConfigError(f"cannot build {cfg.algo} from the config: {str(e).splitlines()[0]}") from None
            remaining = cfg.n_timesteps
        else:
            model_path = run_dir / LAST_MODEL_FILE
            vn_path = run_dir / LAST_VECNORM_FILE
            if not model_path.exists():
                model_path, vn_path = run_dir / MODEL_FILE, run_dir / VECNORM_FILE
            if not model_path.exists():
                raise CheckpointError(f"{run_dir}: nothing to resume (no {LAST_MODEL_FILE} or {MODEL_FILE})")
            if cfg.normalize:
                if not vn_path.exists():
                    raise CheckpointError(f"{run_dir}: config normalizes observations but {vn_path.name} is missing")
                venv = VecNormalize.load(str(vn_path), venv)
                venv.training = True
            try:
                model = cls.load(str(model_path), env=venv, device=cfg.device)
            except Exception as e:
                raise CheckpointError(f"{model_path}: cannot resume ({str(e).splitlines()[0]})") from None
            model.set_random_seed(cfg.seed + model.num_timesteps)
            done = int(model.num_timesteps)
            remaining = timesteps if timesteps is not None else cfg.n_timesteps - done
            if remaining <= 0:
                raise ConfigError(f"{run_dir}: already trained {done} of n_timesteps={cfg.n_timesteps} steps; "
                                  "pass --timesteps N to train N more")

        if resume is None:  # created only once the model is built: a bad config leaves nothing behind
            run_dir.mkdir(parents=True)
            (run_dir / CONFIG_FILE).write_text(cfg.to_yaml())
        cmd = shlex.join(command if command is not None else sys.argv)
        with open(run_dir / COMMAND_FILE, "a") as f:
            f.write(cmd + "\n")
        model.set_logger(configure(str(run_dir / TB_DIR), ["tensorboard"] + (["stdout"] if cfg.verbose else [])))

        meta: dict[str, Any] = {
            **prior_meta,
            "run": run_dir.name,
            "policy_name": f"{cfg.algo}:{run_dir.name}",
            "algo": cfg.algo,
            **spaces_meta,
            "normalize": bool(cfg.normalize),
            "libraries": library_versions(),
            "status": "training",
        }
        _write_json(run_dir / METADATA_FILE, meta)

        def save_best(m: Any) -> None:
            m.save(str(run_dir / MODEL_FILE))
            vn = m.get_vec_normalize_env()
            if vn is not None:
                vn.save(str(run_dir / VECNORM_FILE))

        callbacks: list[Any] = [EpisodeChartsCallback(), HParamCallback(_hparams(cfg))]
        eval_cb = None
        if cfg.eval_freq > 0:
            eval_env = make_eval_env(cfg, oracle=cfg.eval_oracle)
            if cfg.normalize:
                eval_env = VecNormalize(eval_env, training=False, norm_reward=False,
                                        **{k: v for k, v in norm_kwargs.items() if k not in ("training", "norm_reward")})
            prior_best = (prior_meta.get("evaluation") or {}).get("best") or {}
            best_key = "mean_reward" if cfg.best_metric == "reward" else "objective"
            eval_cb = CloverEvalCallback(
                eval_env, n_eval_episodes=cfg.n_eval_episodes, eval_freq=max(cfg.eval_freq // cfg.n_envs, 1),
                save_best=save_best, best_metric=cfg.best_metric,
                best_value=float(prior_best.get(best_key, float("-inf"))), verbose=cfg.verbose,
            )
            callbacks.append(eval_cb)

        pre = cfg.pretrain if resume is None else None
        if pre is not None:  # imitation warm start; the cloned policy competes for model.zip too
            with frozen_setup():  # the set-up's objects out of full GC scans (clover_rl.heap)
                meta["pretrain"] = pretrain(model, cfg, pre, progress=cfg.progress_bar)
            _write_json(run_dir / METADATA_FILE, meta)
            if eval_cb is not None:
                eval_cb.init_callback(model)
                eval_cb.evaluate()

        before = int(model.num_timesteps)
        t_learn = time.perf_counter()
        try:
            with frozen_setup():  # the set-up's objects out of full GC scans: ~10% of a new env step
                model.learn(total_timesteps=int(remaining), callback=callbacks, reset_num_timesteps=resume is None,
                            progress_bar=cfg.progress_bar, tb_log_name=TB_DIR)
        except KeyboardInterrupt:  # keep what was learned: `--resume RUN` continues from here
            _save_last(model, run_dir)
            _write_json(run_dir / METADATA_FILE, {**meta, "status": "interrupted",
                                                   "interrupted_at": int(model.num_timesteps)})
            raise
        learn_s = time.perf_counter() - t_learn

        _save_last(model, run_dir)
        if eval_cb is None or (eval_cb.best is None and not (run_dir / MODEL_FILE).exists()):
            save_best(model)

        wall = time.perf_counter() - start
        sessions = list(prior_meta.get("training", {}).get("sessions", []))
        sessions.append({"steps": int(model.num_timesteps) - before, "wall_s": round(wall, 2),
                         "learn_s": round(learn_s, 2), "n_envs": cfg.n_envs, "command": cmd,
                         "finished": datetime.now(timezone.utc).isoformat(timespec="seconds")})
        meta["training"] = {"total_timesteps": int(model.num_timesteps), "sessions": sessions,
                            "wall_s": round(sum(s["wall_s"] for s in sessions), 2)}
        evaluation = dict(prior_meta.get("evaluation") or {})
        if eval_cb is not None:
            if eval_cb.best is not None:
                evaluation["best"] = eval_cb.best
            evaluation["last"] = eval_cb.last
            evaluation["history"] = list(evaluation.get("history", [])) + eval_cb.history
            evaluation["windows"] = {"n": cfg.n_eval_episodes, "env_kwargs": _jsonable(eval_env_kwargs_of(cfg)),
                                     "note": "fixed windows of the evaluation period, greedy masked actions"}
        meta["evaluation"] = evaluation
        meta["status"] = "complete"
        _write_json(run_dir / METADATA_FILE, meta)
        return TrainResult(run_dir=run_dir, timesteps=int(model.num_timesteps),
                           trained_steps=int(model.num_timesteps) - before, wall_s=wall,
                           best=evaluation.get("best"), last_eval=evaluation.get("last"))
    finally:
        venv.close()
        if eval_env is not None:
            eval_env.close()


def _save_last(model: Any, run_dir: Path) -> None:
    model.save(str(run_dir / LAST_MODEL_FILE))
    vn = model.get_vec_normalize_env()
    if vn is not None:
        vn.save(str(run_dir / LAST_VECNORM_FILE))


def eval_env_kwargs_of(cfg: TrainConfig) -> dict[str, Any]:
    from clover_rl.training.envs import eval_env_kwargs

    return eval_env_kwargs(cfg)


def _jsonable(v: Any) -> Any:
    return json.loads(json.dumps(v, default=str))
