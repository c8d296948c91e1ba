"""Scenarios: everything an episode needs, as validated data (``configs/scenarios/*.yaml``).

Everywhere a scenario is taken, a shipped name (``efficientnet``) or a file path works.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from clover_rl.config_io import first_validation_error, load_yaml_mapping
from clover_rl.errors import ConfigError
from clover_rl.mig.catalog import GpuModel, get_gpu
from clover_rl.paths import configs_dir, resolve_named
from clover_rl.services import ServiceSpec, load_service
from clover_rl.serving.profile import Profile, load_default_profile, load_profile


class CarbonSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    trace: str = Field("caiso_pge", description="shipped trace name or CSV path")
    period: Literal["train", "eval", "all"] = "eval"
    pue: float = Field(1.5, ge=1.0, le=3.0)
    forecast_hours: int = Field(6, ge=0, le=48)


class WorkloadSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["constant", "diurnal", "trace"] = "constant"
    rate_rps: float | None = Field(None, gt=0)
    mean_rps: float | None = Field(None, gt=0)
    amplitude: float = Field(0.0, ge=0, lt=1)
    peak_hour: float = Field(14.0, ge=0, lt=24)
    path: str | None = None

    def mean_rate(self) -> float:
        return float(self.rate_rps or self.mean_rps or 1.0)


class ObjectiveSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    lam: float = Field(0.1, ge=0, le=1, alias="lambda")
    reference_intensity: float = Field(250.0, gt=0)
    reference_pue: float = Field(1.5, ge=1.0)


class PenaltySpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    sla: float = Field(0.05, ge=0, description="reward penalty of an SLA-violating interval: sla x (1 + min(p95/SLA - 1, 10))")
    infeasible: float = Field(0.05, ge=0, description="reward penalty for a refused action")
    reconfiguration: float = Field(0.0, ge=0, description="reward penalty per applied reconfiguration (probes included; a failed apply is not counted)")


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
    source_path: str | None = Field(None, exclude=True)

    @field_validator("gpu")
    @classmethod
    def _gpu(cls, v: str) -> str:
        return get_gpu(v).name

    # Resolved objects (cached per scenario file).
    def service_spec(self) -> ServiceSpec:
        base = Path(self.source_path).parent if self.source_path else None
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
    try:
        sc = Scenario.model_validate({**data, "source_path": str(path)})
    except ValidationError as e:
        raise ConfigError(f"{path}: {first_validation_error(e)}") from None
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
    try:
        sc.service_spec()  # fail early on an unknown service
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
            raise ConfigError(
                f"unknown scenario {name_or_path!r} (shipped: {', '.join(list_scenarios())}; or a YAML path)"
            )
        sc = _load(path.resolve())
    if overrides:
        try:
            sc = Scenario.model_validate({**sc.model_dump(by_alias=True), **overrides,
                                          "source_path": sc.source_path})
        except ValidationError as e:
            raise ConfigError(f"scenario {sc.name}: {first_validation_error(e)}") from None
    return sc


def list_scenarios() -> list[str]:
    return sorted(p.stem for p in (configs_dir() / "scenarios").glob("*.yaml"))
