"""A training run's whole configuration in one documented dataclass, loaded from RL-Zoo-style YAML.

One YAML file (``configs/train/*.yaml``) holds everything needed to reproduce a run; the run
folder keeps a copy (``config.yml``) with the command-line overrides applied, so
``clover-rl train --config RUN/config.yml`` retrains the same thing.
"""
from __future__ import annotations

import dataclasses
import inspect
import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from clover_rl.config_io import load_yaml_mapping
from clover_rl.errors import ConfigError

ALGOS = ("maskable_ppo", "ppo", "dqn")
VEC_ENVS = ("auto", "dummy", "subproc", "ray")
POLICIES = ("MlpPolicy", "GraphMlpPolicy", "ProfileGraphPolicy")
ACTIVATIONS = ("tanh", "relu", "elu", "leaky_relu", "gelu", "silu")


@dataclass
class TrainConfig:
    """Everything a training run needs (CleanRL-style: one dataclass, every field documented)."""

    scenario: str = "efficientnet"
    """Shipped scenario name (``efficientnet``, ``yolo``, ``albert``) or a scenario YAML path."""
    exp_name: str = "maskable_ppo"
    """Experiment label; run folders are named ``{scenario}__{exp_name}__{seed}__{time}``."""
    algo: str = "maskable_ppo"
    """``maskable_ppo`` (sb3-contrib, uses action masks), ``ppo`` or ``dqn`` (SB3; meet
    infeasible actions through the environment's refusal and penalty)."""
    policy: str = "MlpPolicy"
    """``MlpPolicy`` (SB3's: one logit/Q-value row per configuration) or ``GraphMlpPolicy``
    (PPO family: scores configurations by an embedding of their MIG graph, so learning
    transfers between similar configurations; see clover_rl.training.policies) or
    ``ProfileGraphPolicy`` (PPO family: also reads per-configuration profile features -- objective
    value and its slope in the intensity, carbon, accuracy, p95/SLA at the load -- so it scores
    any configuration at any intensity; see clover_rl.training.profile_policy)."""
    n_envs: int = 1
    """Parallel training environments (SubprocVecEnv when > 1 unless ``vec_env: dummy``)."""
    vec_env: str = "auto"
    """``auto`` (subproc for n_envs > 1), ``dummy`` (in-process), ``subproc`` or ``ray`` (Ray actors:
    ``clover_rl.distributed.vec_env.RayVecEnv``; needs the ``ray`` extra)."""
    n_timesteps: int = 100_000
    """Total environment steps (one step = one control interval of one environment)."""
    seed: int = 0
    """Seeds SB3 (torch, action sampling) and every environment (seed + rank)."""
    hyperparams: dict[str, Any] = field(default_factory=dict)
    """Algorithm constructor arguments (learning_rate, n_steps, batch_size, gamma, ...).
    Schedules as in RL Zoo: ``lin_3e-4`` decays linearly to 0."""
    policy_kwargs: dict[str, Any] = field(default_factory=dict)
    """Policy arguments: ``net_arch`` (list or {pi: [...], vf: [...]}), ``activation_fn``
    (tanh, relu, ...), ``ortho_init`` etc."""
    normalize: bool | dict[str, Any] = False
    """Wrap in VecNormalize (True or its kwargs, e.g. {norm_obs: true, norm_reward: false});
    the statistics are saved as ``vecnormalize.pkl`` and applied by ``load_policy``."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """CloverServingEnv arguments for training: trace_period, episode_hours, carbon_trace,
    randomization {traces (names, or ``train``: every training grid), period, synthetic_prob,
    synthetic_levels, synthetic_shapes, rate_scale, load_patterns, rate_traces, snap_rate},
    scenario field overrides (e.g. penalties)."""
    eval_env_kwargs: dict[str, Any] = field(default_factory=lambda: {"trace_period": "eval"})
    """CloverServingEnv arguments for periodic evaluation (default: the scenario's trace in
    its evaluation period, 2021), or ``validation: {traces, windows, synthetic, loads}``: a
    validation set over several grids' evaluation periods (clover_rl.training.envs.
    validation_episodes). Scenario overrides in ``env_kwargs`` apply here too unless set again."""
    eval_freq: int = 10_000
    """Evaluate every this many total environment steps (0 disables; then the final model is
    the run's model)."""
    n_eval_episodes: int = 4
    """Evaluation episodes, at fixed windows spread evenly over the evaluation trace."""
    eval_oracle: bool = True
    """Log ``eval/oracle_gap_pct``: needs the replay model's steady state of every
    configuration at the evaluation load, computed once per run (seconds to a minute)."""
    best_metric: str = "reward"
    """Which evaluation figure picks the best model: ``reward`` (mean episode reward,
    penalties included) or ``objective`` (mean paper score)."""
    device: str = "cpu"
    """Torch device for the networks (small MLPs: the CPU is fastest)."""
    torch_threads: int = 1
    """torch.set_num_threads for this process (the machine is shared; 1 is fastest for small nets)."""
    progress_bar: bool = True
    """Show a tqdm/rich progress bar."""
    verbose: int = 0
    """SB3 verbosity (0 quiet, 1 info)."""
    out_dir: str = "runs"
    """Where run folders are created."""

    # ------------------------------------------------------------------ validation
    def validate(self, where: str = "config") -> TrainConfig:
        """Check types and values; raise ConfigError naming the field."""
        if self.algo not in ALGOS:
            raise ConfigError(f"{where}: algo must be one of {', '.join(ALGOS)} (got {self.algo!r})")
        if self.best_metric not in ("reward", "objective"):
            raise ConfigError(f"{where}: best_metric must be reward or objective (got {self.best_metric!r})")
        if not isinstance(self.eval_oracle, bool) or not isinstance(self.progress_bar, bool):
            raise ConfigError(f"{where}: eval_oracle and progress_bar must be true or false")
        if self.policy not in POLICIES:
            raise ConfigError(f"{where}: policy must be one of {', '.join(POLICIES)} (got {self.policy!r})")
        if self.policy != "MlpPolicy" and self.algo == "dqn":
            raise ConfigError(f"{where}: policy {self.policy} is for maskable_ppo and ppo, not dqn")
        if self.vec_env not in VEC_ENVS:
            raise ConfigError(f"{where}: vec_env must be one of {', '.join(VEC_ENVS)} (got {self.vec_env!r})")
        for name in ("n_envs", "n_timesteps", "n_eval_episodes", "torch_threads"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"{where}: {name} must be a positive integer (got {v!r})")
        for name in ("eval_freq", "seed", "verbose"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ConfigError(f"{where}: {name} must be a non-negative integer (got {v!r})")
        for name in ("hyperparams", "policy_kwargs", "env_kwargs", "eval_env_kwargs"):
            if not isinstance(getattr(self, name), dict):
                raise ConfigError(f"{where}: {name} must be a mapping (got {type(getattr(self, name)).__name__})")
        if not isinstance(self.normalize, (bool, dict)):
            raise ConfigError(f"{where}: normalize must be true/false or VecNormalize kwargs (got {self.normalize!r})")
        if isinstance(self.normalize, dict):
            _check_kwargs(self.normalize, _vecnormalize_params(), f"{where}: normalize")
        if not isinstance(self.scenario, str) or not self.scenario:
            raise ConfigError(f"{where}: scenario must be a scenario name or YAML path (got {self.scenario!r})")
        if not isinstance(self.exp_name, str) or not self.exp_name or "__" in self.exp_name or "/" in self.exp_name:
            raise ConfigError(f"{where}: exp_name must be a non-empty name without '__' or '/' (got {self.exp_name!r})")
        _check_kwargs(self.hyperparams, algo_params(self.algo), f"{where}: hyperparams ({self.algo})")
        act = self.policy_kwargs.get("activation_fn")
        if act is not None and act not in ACTIVATIONS:
            raise ConfigError(f"{where}: policy_kwargs.activation_fn must be one of {', '.join(ACTIVATIONS)} (got {act!r})")
        for key in ("scenario", "render_mode", "backend"):
            for kw in ("env_kwargs", "eval_env_kwargs"):
                if key in getattr(self, kw):
                    raise ConfigError(f"{where}: {kw}.{key} is not allowed here (use the top-level scenario; "
                                      "training runs on trace replay)")
        return self

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None)

    def with_carbon_trace(self, spec: str) -> TrainConfig:
        """Train and evaluate on one trace spec (``FILE[,column=..][,unit=..]``; a file has no
        train/eval split): sets ``carbon_trace`` in both env kwargs, drops ``randomization.traces``
        and the evaluation's ``validation`` set."""
        from clover_rl.carbon.resolve import parse_trace_spec

        parse_trace_spec(spec, "--carbon-trace")  # bad keys fail before any training
        env = dict(self.env_kwargs)
        rnd = dict(env.get("randomization") or {})
        rnd.pop("traces", None)
        if "randomization" in env:
            env["randomization"] = rnd
        env["carbon_trace"] = spec
        ev = {k: v for k, v in self.eval_env_kwargs.items() if k != "validation"}
        return dataclasses.replace(self, env_kwargs=env, eval_env_kwargs={**ev, "carbon_trace": spec})

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with the non-None ``changes`` applied (command-line overrides)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


def field_docs() -> dict[str, str]:
    """Each field's documentation (the string under it in the source), for ``--help`` and docs."""
    import ast

    src = inspect.getsource(TrainConfig)
    body = ast.parse(src).body[0].body  # type: ignore[attr-defined]
    docs: dict[str, str] = {}
    for node, nxt in itertools.pairwise(body):
        if isinstance(node, ast.AnnAssign) and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant):
            docs[node.target.id] = " ".join(str(nxt.value.value).split())  # type: ignore[union-attr]
    return docs


def algo_class(algo: str) -> type:
    """The SB3 class of an algorithm name."""
    if algo == "maskable_ppo":
        from sb3_contrib import MaskablePPO

        return MaskablePPO
    if algo == "ppo":
        from stable_baselines3 import PPO

        return PPO
    if algo == "dqn":
        from stable_baselines3 import DQN

        return DQN
    raise ConfigError(f"algo must be one of {', '.join(ALGOS)} (got {algo!r})")


_RESERVED = {"policy", "env", "policy_kwargs", "seed", "device", "verbose", "tensorboard_log", "_init_setup_model"}


def algo_params(algo: str) -> set[str]:
    """Constructor arguments a YAML ``hyperparams`` block may set for ``algo``."""
    return set(inspect.signature(algo_class(algo).__init__).parameters) - _RESERVED - {"self"}


def _vecnormalize_params() -> set[str]:
    from stable_baselines3.common.vec_env import VecNormalize

    return set(inspect.signature(VecNormalize.__init__).parameters) - {"self", "venv"}


def _check_kwargs(given: dict, allowed: set[str], where: str) -> None:
    bad = sorted(set(given) - allowed)
    if bad:
        raise ConfigError(f"{where}: unknown key(s) {bad} (allowed: {', '.join(sorted(allowed))})")


def config_from_dict(data: dict[str, Any], where: str = "config") -> TrainConfig:
    """Build and validate a TrainConfig from a mapping (unknown keys are errors)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping at the top level")
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    bad = sorted(set(data) - names)
    if bad:
        raise ConfigError(f"{where}: unknown field(s) {bad} (fields: {', '.join(sorted(names))})")
    data = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    for k in ("hyperparams", "policy_kwargs", "env_kwargs", "eval_env_kwargs"):
        if k in data and data[k] is None:
            data[k] = {}
    return TrainConfig(**data).validate(where)


def load_train_config(path: str | Path) -> TrainConfig:
    """Load ``configs/train/NAME.yaml`` (or a run folder's ``config.yml``); a bare name works too."""
    from clover_rl.paths import resolve_named

    p = Path(path)
    if not p.exists() and p.suffix == "" and "/" not in str(path):
        p = resolve_named("train", str(path))
    if p.is_dir():
        p = p / "config.yml"
    if not p.exists():
        raise ConfigError(f"training config not found: {path}")
    return config_from_dict(load_yaml_mapping(p, empty_ok=True), str(p))


def linear_schedule(start: float):
    """RL-Zoo ``lin_X``: decays linearly from X to 0 over training (progress 1 -> 0)."""

    def schedule(progress_remaining: float) -> float:
        return progress_remaining * start

    return schedule


def build_hyperparams(cfg: TrainConfig) -> dict[str, Any]:
    """Algorithm kwargs with RL-Zoo schedule strings resolved."""
    out: dict[str, Any] = {}
    for k, v in cfg.hyperparams.items():
        if isinstance(v, str) and v.startswith("lin_"):
            try:
                v = linear_schedule(float(v[4:]))
            except ValueError:
                raise ConfigError(f"hyperparams.{k}: bad schedule {v!r} (expected lin_<number>)") from None
        out[k] = v
    return out


def build_policy_kwargs(cfg: TrainConfig) -> dict[str, Any]:
    """Policy kwargs with activation names turned into torch classes."""
    from torch import nn

    kw = dict(cfg.policy_kwargs)
    act = kw.get("activation_fn")
    if act is not None:
        kw["activation_fn"] = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU, "leaky_relu": nn.LeakyReLU,
                               "gelu": nn.GELU, "silu": nn.SiLU}[act]
    if isinstance(kw.get("net_arch"), dict) and cfg.algo == "dqn":
        raise ConfigError("policy_kwargs.net_arch: DQN takes a list of layer sizes, not {pi, vf}")
    return kw
