"""The ``llm`` service kind: variants = model x weight precision, from ``configs/services/llm.yaml``.

Per variant the catalog derives (all from the YAML's cited figures):

- weight bytes: linear-layer parameters x ``bytes_per_weight`` + embeddings/lm_head in bf16
  (quantised checkpoints keep those in 16 bit);
- bytes read per decode iteration: linear layers + lm_head (embedding lookups read a few rows);
- KV-cache bytes per token: ``2 (K and V) x layers x kv_heads x head_dim x kv_dtype_bytes``;
- quality: the model's MMLU x the precision's published recovery.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from clover_rl.config_io import load_yaml_mapping, parse_model
from clover_rl.errors import ConfigError
from clover_rl.paths import resolve_named

BF16_BYTES = 2.0


class LLMModel(BaseModel):
    """One model's architecture (its ``config.json``) and bf16 quality."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    repo: str = Field(description="Hugging Face repo of the bf16 weights")
    params: int = Field(gt=0, description="total parameters")
    hidden: int = Field(gt=0)
    layers: int = Field(gt=0)
    kv_heads: int = Field(gt=0)
    head_dim: int = Field(gt=0)
    vocab: int = Field(gt=0)
    tied_embeddings: bool
    quality: float = Field(gt=0, le=100, description="benchmark score of the bf16 model, %")
    quantized: dict[str, str] = Field(default_factory=dict, description="precision -> published repo")
    source: str

    @model_validator(mode="after")
    def _check(self) -> LLMModel:
        if self.embedding_params >= self.params:
            raise ValueError(f"model {self.name}: vocab x hidden exceeds params")
        return self

    @property
    def embedding_params(self) -> int:
        """Stored embedding (+ untied lm_head) parameters, kept in bf16."""
        return self.vocab * self.hidden * (1 if self.tied_embeddings else 2)

    @property
    def linear_params(self) -> int:
        return self.params - self.embedding_params


class Precision(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    bytes_per_weight: float = Field(gt=0, le=4)
    compute: Literal["bf16", "int8"] = Field(description="tensor-core datatype of the prefill GEMMs")
    recovery: float = Field(gt=0, le=1, description="quantised / bf16 benchmark score")
    scheme: str | None = None
    source: str


class LLMVariant(BaseModel):
    """One servable variant: a model at a weight precision (derived, not written in YAML)."""

    model_config = ConfigDict(frozen=True)
    name: str  # "<model>-<precision>", e.g. llama-3.1-8b-int4
    model: LLMModel
    precision: Precision
    kv_dtype_bytes: float

    @property
    def params(self) -> int:
        return self.model.params

    @property
    def weight_bytes(self) -> float:
        """Resident weights, bytes."""
        return self.model.linear_params * self.precision.bytes_per_weight + self.model.embedding_params * BF16_BYTES

    @property
    def decode_weight_bytes(self) -> float:
        """Weight bytes read per decode iteration: linear layers + the bf16 lm_head."""
        return (self.model.linear_params * self.precision.bytes_per_weight
                + self.model.vocab * self.model.hidden * BF16_BYTES)

    @property
    def kv_bytes_per_token(self) -> float:
        m = self.model
        return 2.0 * m.layers * m.kv_heads * m.head_dim * self.kv_dtype_bytes

    @property
    def quality(self) -> float:
        return round(self.model.quality * self.precision.recovery, 2)

    @property
    def source(self) -> str:
        """Where the real weights come from."""
        p = self.precision.name
        if p == "bf16":
            return self.model.repo
        if p in self.model.quantized:
            return self.model.quantized[p]
        return f"{self.model.repo} quantised with {self.precision.scheme or p}"


class LLMServiceSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["llm"]
    name: str
    task: str
    metric: str
    kv_dtype_bytes: float = Field(2.0, gt=0)
    models: tuple[LLMModel, ...] = Field(min_length=1)
    precisions: tuple[Precision, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> LLMServiceSpec:
        for label, names in (("model", [m.name for m in self.models]),
                             ("precision", [p.name for p in self.precisions])):
            if len(set(names)) != len(names):
                raise ValueError(f"duplicate {label} names {names}")
        known = {p.name for p in self.precisions}
        for m in self.models:
            bad = set(m.quantized) - known
            if bad:
                raise ValueError(f"model {m.name}: quantized names unknown precision {sorted(bad)[0]!r}")
        return self

    @property
    def variants(self) -> tuple[LLMVariant, ...]:
        """Every model at every precision, ordered by quality (lowest first; the last is BASE)."""
        vs = [LLMVariant(name=f"{m.name}-{p.name}", model=m, precision=p, kv_dtype_bytes=self.kv_dtype_bytes)
              for m in self.models for p in self.precisions]
        return tuple(sorted(vs, key=lambda v: (v.quality, v.precision.bytes_per_weight)))

    @property
    def variant_names(self) -> tuple[str, ...]:
        return tuple(v.name for v in self.variants)

    def variant(self, name: str) -> LLMVariant:
        for v in self.variants:
            if v.name == name:
                return v
        raise ConfigError(f"unknown variant {name!r} of service {self.name} (known: {', '.join(self.variant_names)})")


@lru_cache(maxsize=16)
def _load(path: Path) -> LLMServiceSpec:
    return parse_model(LLMServiceSpec, load_yaml_mapping(path), str(path))


def load_llm_service(name_or_path: str | Path = "llm") -> LLMServiceSpec:
    """A shipped LLM service name (``llm``) or a path to an LLM service YAML (``kind: llm``)."""
    path = resolve_named("services", str(name_or_path))
    if not path.exists():
        raise ConfigError(f"unknown LLM service {name_or_path!r}: no such file or shipped service")
    return _load(path.resolve())
