"""An LLM service as a scenario serves it: the scenario's ``llm:`` block and the service view
the env, catalog and agents use (the same fields as a request ``ServiceSpec`` where they read
them: ``name``, ``variants`` with ``name``/``accuracy``/``memory_mb``, ``variant()``, ``largest``).

Memory fit (the action masks): a variant fits a MIG slice when its weights plus a KV budget of
``fit_batch`` sequences x ``context_tokens`` fit (:func:`clover_rl.llm.physics.fits`). As a
slice memory that is ``memory_mb = ceil((weights + reserve + fit_batch x context_tokens x KV
bytes per token) / utilisation / MiB)``, so ``ActionCatalog``'s ``memory_mb <= slice MiB`` test is
exactly ``fits``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from clover_rl.errors import ConfigError
from clover_rl.llm.catalog import LLMServiceSpec, LLMVariant
from clover_rl.llm.lengths import TokenLengths, fit_lengths, load_fitted, load_token_trace
from clover_rl.llm.physics import ACTIVATION_RESERVE_BYTES, MEMORY_UTILISATION

MIB = 1024.0 * 1024.0


class LLMScenarioSpec(BaseModel):
    """The ``llm:`` block of a scenario whose service is ``kind: llm``.

    SLAs: the scenario's ``sla_ms`` is the TTFT p95 SLA, ``tpot_sla_ms`` the TPOT p95 one; an
    interval violates the SLA when either p95 exceeds its SLA. Unset, each defaults to BASE's
    p95 at the nominal load (as ``sla_ms`` does for request services).
    Reconfiguration costs (*assumed*): a changed slice reloads its model in ``engine_start_s +
    weight bytes / load_bytes_per_s``; a new slice placement adds ``partition_change_s``
    (the value of the shipped A100 vision profiles).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    variants: tuple[str, ...] | None = Field(None, description="the service's variants to serve (default all)")
    lengths: str = Field("conv", description="request lengths: a shipped fit (conv, code) or an Azure-layout CSV")
    max_batch: int = Field(64, ge=1, le=4096, description="sequences per continuous batch")
    fit_batch: int = Field(16, ge=1, description="memory fit: KV budget of this many sequences ...")
    context_tokens: int = Field(2048, ge=1, description="... of this many tokens each")
    tpot_sla_ms: float | None = Field(None, gt=0, description="TPOT p95 SLA (default: BASE's)")
    steady_requests: int = Field(2000, ge=200, description="requests per cached steady-state simulation")
    partition_change_s: float = Field(12.0, ge=0)
    engine_start_s: float = Field(20.0, ge=0, description="serving engine start on a slice (assumed)")
    load_bytes_per_s: float = Field(2e9, gt=0, description="weight loading bandwidth (assumed)")

    def token_lengths(self, base_dir: Path | None = None) -> TokenLengths:
        """The fitted generator named by ``lengths`` (or fitted now from a trace CSV)."""
        if self.lengths.endswith(".csv"):
            p = Path(self.lengths).expanduser()
            if not p.is_absolute() and base_dir is not None and (base_dir / p).exists():
                p = base_dir / p
            tr = load_token_trace(p)
            return fit_lengths(p.stem, tr.prompt, tr.output, tr.span_s)
        return load_fitted(self.lengths)


@dataclass(frozen=True)
class LLMServiceVariant:
    """One servable variant as the catalog and reports see it."""

    name: str
    accuracy: float  # the variant's quality (the service's metric, %)
    memory_mb: int  # slice memory it needs (MiB), see the module docstring
    spec: LLMVariant


def memory_needed_mb(v: LLMVariant, fit_batch: int, context_tokens: int) -> int:
    need = (v.weight_bytes + ACTIVATION_RESERVE_BYTES + fit_batch * context_tokens * v.kv_bytes_per_token)
    return int(math.ceil(need / MEMORY_UTILISATION / MIB - 1e-9))


@dataclass(frozen=True)
class LLMService:
    """An ``LLMServiceSpec`` restricted to a scenario's variants, with its memory fit."""

    spec: LLMServiceSpec
    llm: LLMScenarioSpec
    kind: Literal["llm"] = "llm"

    @cached_property
    def variants(self) -> tuple[LLMServiceVariant, ...]:
        """Ordered by quality, lowest first (the last is BASE's)."""
        names = self.llm.variants or self.spec.variant_names
        chosen = [self.spec.variant(n) for n in names]  # ConfigError names an unknown one
        if len(set(names)) != len(names):
            raise ConfigError(f"llm.variants: duplicate names in {list(names)}")
        ordered = [v for v in self.spec.variants if v in chosen]
        return tuple(LLMServiceVariant(v.name, v.quality, memory_needed_mb(v, self.llm.fit_batch,
                                                                          self.llm.context_tokens), v)
                     for v in ordered)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def metric(self) -> str:
        return self.spec.metric

    @property
    def task(self) -> str:
        return self.spec.task

    @property
    def variant_names(self) -> tuple[str, ...]:
        return tuple(v.name for v in self.variants)

    def variant(self, name: str) -> LLMServiceVariant:
        for v in self.variants:
            if v.name == name:
                return v
        raise ConfigError(f"unknown variant {name!r} of LLM service {self.name} "
                          f"(served: {', '.join(self.variant_names)})")

    @property
    def largest(self) -> LLMServiceVariant:
        return self.variants[-1]
