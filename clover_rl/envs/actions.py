"""The action space: every unique configuration of one GPU, applied to all GPUs (as in the paper)."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from clover_rl.errors import ConfigError
from clover_rl.mig.catalog import GpuModel
from clover_rl.mig.config import (
    Configuration,
    base_configuration,
    enumerate_configurations,
    parse_configuration,
)
from clover_rl.services import ServiceSpec


@dataclass(frozen=True)
class ActionCatalog:
    gpu: GpuModel
    service: ServiceSpec
    # partitions a site allows (profile multisets, e.g. from a mig-parted file: scenario
    # ``allowed_layouts``); None = all. Masks only: the action space and signature stay.
    allowed: frozenset[tuple[str, ...]] | None = None
    allowed_source: str = "not an allowed layout"

    @staticmethod
    def restricted(gpu: GpuModel, service: ServiceSpec, allowed_layouts: str | Path | None) -> ActionCatalog:
        """The catalog of ``gpu`` x ``service``, masked to the layouts of a mig-parted config file
        (None: all); ConfigError when none of the file's layouts is in the action space."""
        cat = ActionCatalog(gpu, service)
        if allowed_layouts is None:
            return cat
        from clover_rl.mig.migparted import allowed_partitions

        ok = allowed_partitions(allowed_layouts, gpu, {c.profiles for c in cat.configs})
        return ActionCatalog(gpu, service, ok, f"not a layout of {allowed_layouts}")

    @cached_property
    def configs(self) -> tuple[Configuration, ...]:
        return enumerate_configurations(self.gpu, self.service.variant_names)

    @cached_property
    def index(self) -> dict[Configuration, int]:
        return {c: i for i, c in enumerate(self.configs)}

    @cached_property
    def profiles(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.gpu.base_profiles())

    @property
    def variants(self) -> tuple[str, ...]:
        return self.service.variant_names

    def __len__(self) -> int:
        return len(self.configs)

    @cached_property
    def graphs(self) -> np.ndarray:
        """(n_actions, n_variants * n_profiles) edge counts: the paper's graph per action."""
        return np.stack([c.graph(self.variants, self.profiles).ravel() for c in self.configs]).astype(np.float32)

    @cached_property
    def feasible(self) -> np.ndarray:
        """Every model fits its slice's memory."""
        mem = {p.name: p.memory_mb for p in self.gpu.profiles}
        need = {v.name: v.memory_mb for v in self.service.variants}
        ok = self.allowed
        return np.array([all(need[v] <= mem[p] for p, v in c.pairs) and (ok is None or c.profiles in ok)
                         for c in self.configs], dtype=bool)

    def why_infeasible(self, i: int) -> str:
        mem = {p.name: p.memory_mb for p in self.gpu.profiles}
        for p, v in self.configs[i].pairs:
            need = self.service.variant(v).memory_mb
            if need > mem[p]:
                return f"{v} needs {need} MB; {p} has {mem[p]} MB"
        if self.allowed is not None and self.configs[i].profiles not in self.allowed:
            return f"partition {'+'.join(self.configs[i].profiles)} is not allowed ({self.allowed_source})"
        return ""

    @cached_property
    def base_index(self) -> int:
        return self.index[base_configuration(self.gpu, self.variants)]

    def lookup(self, config: Configuration | str | int) -> int:
        if isinstance(config, (int, np.integer)):
            if not 0 <= int(config) < len(self):
                raise ConfigError(f"action {config} out of range 0..{len(self) - 1}")
            return int(config)
        if isinstance(config, str):
            config = parse_configuration(config, self.gpu, self.variants)
        try:
            return self.index[config]
        except KeyError:
            raise ConfigError(f"configuration {config.label()} is not a maximal partition of {self.gpu.name}") from None

    @cached_property
    def signature(self) -> str:
        """Hash of the ordered configuration list: policies only transfer between equal catalogs."""
        text = "\n".join(c.label() for c in self.configs)
        return hashlib.sha256(f"{self.gpu.name}|{self.service.name}|{text}".encode()).hexdigest()[:16]
