"""Service catalog: model variants with accuracy, cost and where the real model comes from.

A service is one YAML file under ``configs/services/``; users add services by adding files.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from clover_rl.config_io import load_yaml_mapping, parse_model
from clover_rl.errors import ConfigError
from clover_rl.paths import configs_dir, resolve_named


class ModelSource(BaseModel):
    """How the live backend builds the real model (random weights unless ``weights`` is set)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["efficientnet_pytorch", "torchvision", "timm", "torchhub", "huggingface",
                  "torchscript", "onnx", "python", "noop"]
    name: str
    repo: str | None = None  # torch hub repo, e.g. ultralytics/yolov5
    weights: str | None = None  # local file; None = random initial weights
    kwargs: dict = Field(default_factory=dict)


class RequestShape(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["image", "text"]
    batch: int = Field(1, ge=1, description="items per request (paper: 8 images, 1 question)")
    height: int | None = Field(None, ge=1)
    width: int | None = Field(None, ge=1)
    max_seq_len: int | None = Field(None, ge=1)


class Variant(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    accuracy: float = Field(gt=0, le=100)
    params_m: float = Field(gt=0, description="parameters, millions")
    gflops: float = Field(gt=0, description="GFLOPs per item at the native input size")
    memory_mb: int = Field(gt=0, description="serving footprint for one request batch")
    resolution: int | None = Field(None, ge=1, description="native input size (vision)")
    source: ModelSource


class ServiceSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    task: str
    metric: str
    request: RequestShape
    variants: tuple[Variant, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> ServiceSpec:
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate variant names {names}")
        accs = [v.accuracy for v in self.variants]
        if accs != sorted(accs):
            raise ValueError("variants must be listed from least to most accurate (the last is BASE)")
        return self

    @property
    def variant_names(self) -> tuple[str, ...]:
        return tuple(v.name for v in self.variants)

    def variant(self, name: str) -> Variant:
        for v in self.variants:
            if v.name == name:
                return v
        raise ConfigError(f"unknown variant {name!r} of service {self.name} (known: {', '.join(self.variant_names)})")

    @property
    def largest(self) -> Variant:
        return self.variants[-1]


@lru_cache(maxsize=64)
def _load(path: Path) -> ServiceSpec:
    data = load_yaml_mapping(path)
    kind = data.pop("kind", "request")
    if kind == "llm":
        raise ConfigError(f"{path}: an LLM service (kind: llm); load it with clover_rl.llm.catalog.load_llm_service")
    if kind != "request":
        raise ConfigError(f"{path}: kind: unknown service kind {kind!r} (known: request, llm)")
    return parse_model(ServiceSpec, data, str(path))


def load_service(name_or_path: str | Path) -> ServiceSpec:
    """A shipped service name (``efficientnet``) or a path to a service YAML."""
    path = resolve_named("services", str(name_or_path))
    if not path.exists():
        raise ConfigError(f"unknown service {name_or_path!r} (shipped: {', '.join(list_services())})")
    return _load(path.resolve())


def service_kind(name_or_path: str | Path) -> str:
    """``request`` or ``llm``: the ``kind`` of a shipped service name or service YAML path."""
    path = resolve_named("services", str(name_or_path))
    if not path.exists():
        raise ConfigError(f"unknown service {name_or_path!r} (shipped: {', '.join(list_services() + list_services('llm'))})")
    return _kind(path.resolve())


@lru_cache(maxsize=64)
def _kind(path: Path) -> str:
    return str(load_yaml_mapping(path).get("kind") or "request")


def list_services(kind: str = "request") -> list[str]:
    """Shipped services of one kind: ``request`` (this module's) or ``llm`` (clover_rl.llm)."""
    return sorted(p.stem for p in (configs_dir() / "services").glob("*.yaml")
                  if (load_yaml_mapping(p).get("kind") or "request") == kind)
