"""A training run's whole configuration as one documented pydantic model, loaded from RL-Zoo-style YAML.

One YAML file (``configs/train/*.yaml``) holds everything needed to reproduce a run; the run
folder keeps a copy (``config.yml``) with the command-line overrides applied, so
``clover-rl train --config RUN/config.yml`` retrains the same thing. Each field's
``description`` is its documentation: ``clover-rl train --help`` prints it.
"""
from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    field_validator,
    model_validator,
)

from clover_rl.config_io import Count, NonNegInt, load_yaml_mapping, parse_model
from clover_rl.errors import ConfigError
from clover_rl.training.pretrain_config import PretrainConfig

Algo = Literal["maskable_ppo", "ppo", "dqn"]
ALGOS: tuple[str, ...] = get_args(Algo)
ACTIVATIONS = ("tanh", "relu", "elu", "leaky_relu", "gelu", "silu")
_MAPPINGS = ("hyperparams", "policy_kwargs", "env_kwargs", "eval_env_kwargs")


class TrainConfig(BaseModel):
    """Everything a training run needs (CleanRL-style: one model, every field documented).

    Built only through validation (YAML, :func:`config_from_dict`, :meth:`replace`), so an
    instance is always a valid configuration; a bad value raises ConfigError naming the field.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    scenario: str = Field("efficientnet", min_length=1, description=(
        "Shipped scenario name (efficientnet, yolo, albert) or a scenario YAML path."))
    exp_name: str = Field("maskable_ppo", description=(
        "Experiment label; run folders are named {scenario}__{exp_name}__{seed}__{time}."))
    algo: Algo = Field("maskable_ppo", description=(
        "maskable_ppo (sb3-contrib, uses action masks), ppo or dqn (SB3; meet infeasible actions "
        "through the environment's refusal and penalty)."))
    policy: Literal["MlpPolicy", "GraphMlpPolicy", "ProfileGraphPolicy"] = Field("MlpPolicy", description=(
        "MlpPolicy (SB3's: one logit/Q-value row per configuration) or GraphMlpPolicy (PPO family: "
        "scores configurations by an embedding of their MIG graph, so learning transfers between "
        "similar configurations; see clover_rl.training.policies) or ProfileGraphPolicy (PPO family: "
        "also reads per-configuration profile features -- objective value and its slope in the "
        "intensity, carbon, accuracy, p95/SLA at the load -- so it scores any configuration at any "
        "intensity; see clover_rl.training.profile_policy)."))
    n_envs: Count = Field(1, description=(
        "Parallel training environments (SubprocVecEnv when > 1 unless vec_env: dummy)."))
    vec_env: Literal["auto", "dummy", "subproc", "ray"] = Field("auto", description=(
        "auto (subproc for n_envs > 1), dummy (in-process), subproc or ray (Ray actors: "
        "clover_rl.distributed.vec_env.RayVecEnv; needs the ray extra)."))
    n_timesteps: Count = Field(100_000, description=(
        "Total environment steps (one step = one control interval of one environment)."))
    seed: NonNegInt = Field(0, description=(
        "Seeds SB3 (torch, action sampling) and every environment (seed + rank)."))
    hyperparams: dict[str, Any] = Field(default_factory=dict, description=(
        "Algorithm constructor arguments (learning_rate, n_steps, batch_size, gamma, ...). "
        "Schedules as in RL Zoo: lin_3e-4 decays linearly to 0."))
    policy_kwargs: dict[str, Any] = Field(default_factory=dict, description=(
        "Policy arguments: net_arch (list or {pi: [...], vf: [...]}), activation_fn (tanh, relu, ...), "
        "ortho_init etc."))
    normalize: bool | dict[str, Any] = Field(False, description=(
        "Wrap in VecNormalize (true or its kwargs, e.g. {norm_obs: true, norm_reward: false}); the "
        "statistics are saved as vecnormalize.pkl and applied by load_policy."))
    env_kwargs: dict[str, Any] = Field(default_factory=dict, description=(
        "CloverServingEnv arguments for training: trace_period, episode_hours, carbon_trace, "
        "randomization {traces (names, or train: every training grid), period, synthetic_prob, "
        "synthetic_levels, synthetic_shapes, rate_scale, load_patterns, rate_traces, snap_rate}, "
        "scenario field overrides (e.g. penalties)."))
    eval_env_kwargs: dict[str, Any] = Field(default_factory=lambda: {"trace_period": "eval"}, description=(
        "CloverServingEnv arguments for periodic evaluation (default: the scenario's trace in its "
        "evaluation period, 2021), or validation: {traces, windows, synthetic, loads}: a validation "
        "set over several grids' evaluation periods (clover_rl.training.envs.validation_episodes). "
        "Scenario overrides in env_kwargs apply here too unless set again."))
    eval_freq: NonNegInt = Field(10_000, description=(
        "Evaluate every this many total environment steps (0 disables; then the final model is the "
        "run's model)."))
    n_eval_episodes: Count = Field(4, description=(
        "Evaluation episodes, at fixed windows spread evenly over the evaluation trace."))
    eval_oracle: StrictBool = Field(True, description=(
        "Log eval/oracle_gap_pct: needs the replay model's steady state of every configuration at "
        "the evaluation load, computed once per run (seconds to a minute)."))
    best_metric: Literal["reward", "objective"] = Field("reward", description=(
        "Which evaluation figure picks the best model: reward (mean episode reward, penalties "
        "included) or objective (mean paper score)."))
    device: str = Field("cpu", description="Torch device for the networks (small MLPs: the CPU is fastest).")
    torch_threads: Count = Field(1, description=(
        "torch.set_num_threads for this process (the machine is shared; 1 is fastest for small nets)."))
    progress_bar: StrictBool = Field(True, description="Show a tqdm/rich progress bar.")
    verbose: NonNegInt = Field(0, description="SB3 verbosity (0 quiet, 1 info).")
    out_dir: str = Field("runs", description="Where run folders are created.")
    pretrain: PretrainConfig | None = Field(None, description=(
        "Imitation warm start before PPO (PPO family): {expert: mpc, rounds, episodes, epochs, "
        "batch_size, learning_rate, value_coef, beta, expert_kwargs}, behaviour cloning with DAgger "
        "rounds of the forecast-driven mpc on the training envs (clover_rl.training.pretrain); "
        "absent or null: PPO from scratch."))

    # ------------------------------------------------------------------ validation
    @field_validator(*_MAPPINGS, mode="before")
    @classmethod
    def _none_is_empty(cls, v: Any) -> Any:
        return {} if v is None else v

    @field_validator("normalize", mode="before")
    @classmethod
    def _bool_or_kwargs(cls, v: Any) -> Any:
        if not isinstance(v, (bool, dict)):
            raise ConfigError("must be true/false or VecNormalize kwargs")
        return v

    @model_validator(mode="after")
    def _cross_checks(self) -> TrainConfig:
        """Checks that need several fields or SB3's signatures; each names its field."""
        if self.pretrain is not None and self.algo == "dqn":
            raise ConfigError("pretrain is for maskable_ppo and ppo, not dqn")
        if self.policy != "MlpPolicy" and self.algo == "dqn":
            raise ConfigError(f"policy {self.policy} is for maskable_ppo and ppo, not dqn")
        if "__" in self.exp_name or "/" in self.exp_name or not self.exp_name:
            raise ConfigError(f"exp_name must be a non-empty name without '__' or '/' (got {self.exp_name!r})")
        if isinstance(self.normalize, dict):
            _check_kwargs(self.normalize, _vecnormalize_params(), "normalize")
        _check_kwargs(self.hyperparams, algo_params(self.algo), f"hyperparams ({self.algo})")
        act = self.policy_kwargs.get("activation_fn")
        if act is not None and act not in ACTIVATIONS:
            raise ConfigError(f"policy_kwargs.activation_fn must be one of {', '.join(ACTIVATIONS)} (got {act!r})")
        for key in ("scenario", "render_mode", "backend"):
            for kw in ("env_kwargs", "eval_env_kwargs"):
                if key in getattr(self, kw):
                    raise ConfigError(f"{kw}.{key} is not allowed here (use the top-level scenario; "
                                      "training runs on trace replay)")
        if self.env_kwargs.get("randomization"):  # checked with the file, not when the envs start
            from clover_rl.envs.randomization import Randomization

            Randomization.from_dict(self.env_kwargs["randomization"], "env_kwargs.randomization")
        return self

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        """The fields as plain data (a deep copy; what ``config.yml`` holds)."""
        return self.model_dump()

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
        return self.replace(env_kwargs=env, eval_env_kwargs={**ev, "carbon_trace": spec}, where="--carbon-trace")

    def replace(self, *, where: str = "command line", **changes: Any) -> TrainConfig:
        """A validated copy with the non-None ``changes`` applied (command-line overrides); a bad
        value raises ConfigError prefixed with ``where``."""
        return config_from_dict({**self.to_dict(), **{k: v for k, v in changes.items() if v is not None}}, where)


def field_help(name: str) -> str:
    """A TrainConfig field's description (``--help`` of the options that override it)."""
    return TrainConfig.model_fields[name].description or ""


def fields_epilog() -> str:
    """Every TrainConfig field with its default and description, for ``clover-rl train --help``."""
    lines = ["Training YAML fields (configs/train/*.yaml; clover_rl.training.config.TrainConfig):", ""]
    for name, f in TrainConfig.model_fields.items():
        default = f.default_factory() if f.default_factory is not None else f.default  # type: ignore[call-arg]
        lines.append(f"{name} (default {default!r}): {f.description}")
        lines.append("")
    return "\n".join(lines)


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


def config_from_dict(data: Any, where: str = "config") -> TrainConfig:
    """Build and validate a TrainConfig from a mapping; any problem (an unknown field, a bad value)
    raises a one-line ConfigError ``{where}: field F: <problem> (got V)``."""
    return parse_model(TrainConfig, data, where)


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
