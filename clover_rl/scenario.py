"""Scenarios: everything an episode needs, as validated data (``configs/scenarios/*.yaml``).

Everywhere a scenario is taken, a shipped name (``efficientnet``) or a file path works.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from clover_rl.carbon.resolve import TraceSpec, parse_trace_spec
from clover_rl.config_io import load_yaml_mapping, parse_model
from clover_rl.errors import ConfigError
from clover_rl.llm.service import LLMScenarioSpec, LLMService
from clover_rl.mig.catalog import GpuModel, get_gpu
from clover_rl.paths import configs_dir, resolve_named
from clover_rl.services import ServiceSpec, load_service, service_kind
from clover_rl.serving.profile import Profile, load_default_profile, load_profile
from clover_rl.workload.build import WorkloadSpec
from clover_rl.workload.workload import Workload


class CarbonSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    trace: str = Field("caiso_pge", description="shipped trace name or file path (a trace spec: "
                                                "PATH[,column=..][,time_column=..][,unit=..])")
    column: str | None = Field(None, description="value column or layout choice (lca, direct, forecast)")
    time_column: str | None = Field(None, description="time column of the file")
    unit: str | None = Field(None, description="g/kWh, kg/kWh, t/MWh or lbs/MWh")
    period: Literal["train", "eval", "all"] = "eval"
    pue: float = Field(1.5, ge=1.0, le=3.0)
    forecast_hours: int = Field(6, ge=0, le=48)
    forecaster: Literal["auto", "model", "perfect"] = Field(
        "auto", description="where forecast features come from (clover_rl.carbon.forecast); "
        "'perfect' is hindsight, for analysis only")

    @model_validator(mode="after")
    def _spec_parses(self) -> CarbonSpec:
        self.trace_spec()  # unknown keys or units fail when the scenario loads
        return self

    def trace_spec(self) -> TraceSpec:
        """The ``trace`` string with ``column``/``time_column``/``unit`` folded in."""
        return parse_trace_spec({"trace": self.trace, "column": self.column,
                                 "time_column": self.time_column, "unit": self.unit}, "carbon.trace")


class ObjectiveSpec(BaseModel):
    """What the controller maximises (:mod:`clover_rl.objectives` has the formulas)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    kind: Literal["paper", "carbon_budget", "accuracy_floor"] = Field(
        "paper", description="paper: the Clover score; carbon_budget: max accuracy under a carbon "
                             "budget per window; accuracy_floor: min carbon above an accuracy floor")
    lam: float = Field(0.1, ge=0, le=1, alias="lambda", description="paper: weight of carbon")
    reference_intensity: float = Field(250.0, gt=0, description="g/kWh of C_ref (BASE's carbon per request)")
    reference_pue: float = Field(1.5, ge=1.0)
    budget_g: float | None = Field(None, gt=0, description="carbon_budget: grams per window")
    budget_fraction: float | None = Field(
        None, gt=0, description="carbon_budget: budget as a fraction of BASE's carbon per window at "
                                "the nominal load and the reference intensity (instead of budget_g)")
    window_hours: float = Field(24.0, gt=0, description="carbon_budget: the budget's window (h)")
    overspend_penalty: float = Field(
        1.0, ge=0, description="carbon_budget: value lost per interval-allowance (budget / intervals) overspent")
    floor: float | None = Field(None, gt=0, le=1, description="accuracy_floor: minimum accuracy / BASE's")
    shortfall_penalty: float = Field(10.0, ge=0, description="accuracy_floor: value lost per unit of "
                                                             "(floor - accuracy) / BASE's accuracy")

    @model_validator(mode="after")
    def _kind_fields(self) -> ObjectiveSpec:
        if self.kind == "carbon_budget" and (self.budget_g is None) == (self.budget_fraction is None):
            raise ConfigError("objective: carbon_budget needs exactly one of budget_g, budget_fraction")
        if self.kind == "accuracy_floor" and self.floor is None:
            raise ConfigError("objective.floor: required for kind accuracy_floor (e.g. 0.98 of BASE's accuracy)")
        return self


class PenaltySpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    sla: float = Field(0.05, ge=0, description="reward penalty of an SLA-violating interval: sla x (1 + min(p95/SLA - 1, 10))")
    infeasible: float = Field(0.05, ge=0, description="reward penalty for a refused action")
    reconfiguration: float = Field(0.0, ge=0, description="reward penalty per applied reconfiguration (probes included; a failed apply is not counted)")


class NodeSpecModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(description="node name (a Ray node / Kubernetes node, or a label)")
    gpus: int = Field(ge=1, le=64, description="GPUs on this node")


class FleetSpec(BaseModel):
    """A fleet with a configuration per GPU (:mod:`clover_rl.fleet`); without it every GPU runs
    the same configuration, as in the paper."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    nodes: list[NodeSpecModel] = Field(min_length=1, description="nodes in order; GPUs numbered across them")
    candidates: int = Field(10, ge=2, le=32, description="per-GPU configurations that may be mixed "
                                                          "(Pareto-pruned from the configuration table)")
    levels: int = Field(8, ge=2, le=64, description="fraction levels of a two-configuration mix")

    @property
    def n_gpus(self) -> int:
        return sum(n.gpus for n in self.nodes)


class Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    name: str
    service: str
    gpu: str = "a100-40gb"
    gpus: int = Field(2, ge=1, le=64)
    profile: str = "default"
    carbon: CarbonSpec = CarbonSpec()
    workload: WorkloadSpec
    sla_ms: float | None = Field(None, gt=0, description="default: BASE's p95 at the scenario load")
    objective: ObjectiveSpec = ObjectiveSpec()
    control_interval_s: float = Field(3600.0, gt=0)
    episode_hours: int = Field(48, ge=1)
    probe_s: float = Field(30.0, gt=0, description="an optimizer's measurement window")
    reconfiguration: bool = Field(True, description="charge re-partition/model-load downtime")
    penalties: PenaltySpec = PenaltySpec()
    timeout_s: float = Field(30.0, gt=0, description="queued requests are dropped after this wait")
    llm: LLMScenarioSpec | None = Field(None, description="LLM services (kind: llm): variants, batching, "
                                                          "request lengths, TPOT SLA (sla_ms is TTFT's)")
    allowed_layouts: str | None = Field(None, description="NVIDIA mig-parted config YAML: only its layouts "
                                        "are allowed partitions (the action mask); relative to this file")
    fleet: FleetSpec | None = Field(None, description="a configuration per GPU over these nodes (gpus = their sum)")
    source_path: str | None = Field(None, exclude=True)

    @field_validator("gpu")
    @classmethod
    def _gpu(cls, v: str) -> str:
        return get_gpu(v).name

    @model_validator(mode="after")
    def _fleet_gpus(self) -> Scenario:
        if self.fleet is not None and self.fleet.n_gpus != self.gpus:
            raise ConfigError(f"fleet.nodes hold {self.fleet.n_gpus} GPUs but gpus is {self.gpus}")
        return self

    @model_validator(mode="after")
    def _workload(self) -> Scenario:
        """Build the workload now (a missing trace file fails at load) and pin a relative trace
        path to the scenario file's folder, so a saved scenario reloads the same workload."""
        base = Path(self.source_path).parent if self.source_path else None
        w = self.workload
        if w.path is not None and base is not None and not Path(w.path).expanduser().is_absolute() \
                and (base / w.path).exists():
            w = w.model_copy(update={"path": str((base / w.path).resolve())})
            object.__setattr__(self, "workload", w)
        al = self.allowed_layouts
        if al is not None and base is not None and not Path(al).expanduser().is_absolute() and (base / al).exists():
            object.__setattr__(self, "allowed_layouts", str((base / al).resolve()))
        w.build(base)
        return self

    def build_workload(self) -> Workload:
        """The scenario's workload (``t = 0`` at the episode's start)."""
        return self.workload.build(Path(self.source_path).parent if self.source_path else None)

    # Resolved objects (cached per scenario file).
    @property
    def is_llm(self) -> bool:
        """Whether the service is an LLM service (``kind: llm``, see ``clover_rl.llm``)."""
        base = Path(self.source_path).parent if self.source_path else None
        return service_kind(_relative(self.service, base)) == "llm"

    def service_spec(self) -> ServiceSpec:
        """The service (an LLM service: an ``LLMService`` with the same fields the env reads)."""
        base = Path(self.source_path).parent if self.source_path else None
        if self.is_llm:
            from clover_rl.llm.catalog import load_llm_service

            return LLMService(load_llm_service(_relative(self.service, base)),  # type: ignore[return-value]
                              self.llm or LLMScenarioSpec())
        if self.llm is not None:
            raise ConfigError(f"scenario {self.name}: llm: is for LLM services; {self.service} is not one")
        return load_service(_relative(self.service, base))

    def gpu_model(self) -> GpuModel:
        return get_gpu(self.gpu)

    def load_profile(self) -> Profile:
        if self.profile == "default":
            return load_default_profile(self.service_spec().name, self.gpu)
        base = Path(self.source_path).parent if self.source_path else None
        return load_profile(_relative(self.profile, base))

    @property
    def steps_per_episode(self) -> int:
        return max(1, int(round(self.episode_hours * 3600.0 / self.control_interval_s)))


def _relative(value: str, base: Path | None) -> str:
    p = Path(value)
    if base is not None and not p.is_absolute() and (base / p).exists():
        return str(base / p)
    return value


@lru_cache(maxsize=64)
def _load(path: Path) -> Scenario:
    data = load_yaml_mapping(path)
    data.setdefault("name", path.stem)
    sc = parse_model(Scenario, {**data, "source_path": str(path)}, str(path))
    try:
        _ = sc.service_spec().variant_names  # fail early on an unknown service or variant
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
    return sc


def load_scenario(name_or_path: str | Path | Scenario, **overrides: object) -> Scenario:
    """A shipped scenario name, a YAML path, or a Scenario; ``overrides`` replace fields."""
    if isinstance(name_or_path, Scenario):
        sc = name_or_path
    else:
        path = resolve_named("scenarios", str(name_or_path))
        if not path.exists():
            text = str(name_or_path)
            what = (f"scenario file not found: {text}" if text.endswith((".yaml", ".yml")) or "/" in text
                    else f"unknown scenario {text!r}")
            raise ConfigError(f"{what} (shipped: {', '.join(list_scenarios())}; or a YAML path)")
        sc = _load(path.resolve())
    if overrides:
        sc = parse_model(Scenario, {**sc.model_dump(by_alias=True), **overrides, "source_path": sc.source_path},
                         f"scenario {sc.name}")
    return sc


def list_scenarios() -> list[str]:
    return sorted(p.stem for p in (configs_dir() / "scenarios").glob("*.yaml"))
