"""Configurations: a partition plus a model variant per slice, in the paper's graph form.

The canonical identity of a configuration is its bipartite graph (variants x slice
profiles, edge weight = count), i.e. the multiset of (profile, variant) pairs. Two
configurations that differ only in slot order or placement are the same action.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from itertools import combinations_with_replacement, product

import numpy as np

from clover_rl.errors import ConfigError
from clover_rl.mig.catalog import GpuModel
from clover_rl.mig.partition import (
    Partition,
    _profile_sort_key,
    place,
    slice_multisets,
)

_PLACED: dict[tuple[int, tuple[str, ...]], tuple[GpuModel, Partition]] = {}
_PLACED_MAX = 50_000


@lru_cache(maxsize=50_000)
def _label(gpu_name: str, pairs: tuple[tuple[str, str], ...]) -> str:
    return ",".join(f"{_profile_label(gpu_name, p)}:{v}" for p, v in pairs)


@cache
def _profile_label(gpu_name: str, profile: str) -> str:
    from clover_rl.mig.catalog import get_gpu

    return get_gpu(gpu_name).label(profile)


@dataclass(frozen=True)
class Configuration:
    """One GPU's slices and variants, canonically ordered (largest slice first)."""

    gpu: str
    pairs: tuple[tuple[str, str], ...]  # (profile name, variant), canonical order

    @staticmethod
    def of(gpu: GpuModel, pairs: Iterable[tuple[str, str]]) -> Configuration:
        full = [(gpu.profile(p).name, v) for p, v in pairs]
        full.sort(key=lambda pv: (_profile_sort_key(pv[0]), pv[1]))
        return Configuration(gpu.name, tuple(full))

    @property
    def profiles(self) -> tuple[str, ...]:
        return tuple(p for p, _ in self.pairs)

    @property
    def variants(self) -> tuple[str, ...]:
        return tuple(v for _, v in self.pairs)

    def label(self) -> str:
        """Short form used on the command line: ``4g:b7,3g:b5``; a profile whose short name
        would parse back as another (``1g.10gb``, ``1g.5gb+me``) keeps its full name, so
        ``parse_configuration(cfg.label())`` gives ``cfg`` back."""
        return _label(self.gpu, self.pairs)

    def __str__(self) -> str:
        return self.label()

    def partition(self, gpu: GpuModel) -> Partition:
        """The slices' placement on ``gpu`` (cached: the env asks at every new switch)."""
        key = (id(gpu), self.profiles)
        hit = _PLACED.get(key)
        if hit is not None and hit[0] is gpu:
            return hit[1]
        part = place(gpu, list(self.profiles))
        if len(_PLACED) >= _PLACED_MAX:
            _PLACED.clear()
        _PLACED[key] = (gpu, part)
        return part

    def graph(self, variants: Sequence[str], profiles: Sequence[str]) -> np.ndarray:
        """Edge counts, shape (len(variants), len(profiles))."""
        g = np.zeros((len(variants), len(profiles)), dtype=np.int64)
        vi = {v: i for i, v in enumerate(variants)}
        pi = {p: i for i, p in enumerate(profiles)}
        for p, v in self.pairs:
            g[vi[v], pi[p]] += 1
        return g

    def variant_counts(self) -> Counter[str]:
        return Counter(self.variants)


def parse_configuration(text: str, gpu: GpuModel, variants: Sequence[str]) -> Configuration:
    """Parse ``4g:b7,3g:b5`` and check it against the GPU's placement rules and the variants."""
    if not text or not text.strip():
        raise ConfigError("empty configuration; expected e.g. 4g:b7,3g:b5")
    pairs = []
    for item in text.split(","):
        item = item.strip()
        if item.count(":") != 1:
            raise ConfigError(f"bad configuration item {item!r} in {text!r}; expected PROFILE:VARIANT")
        prof, var = (x.strip() for x in item.split(":"))
        gpu.profile(prof)
        if var not in variants:
            raise ConfigError(f"unknown variant {var!r} in {text!r} (known: {', '.join(variants)})")
        pairs.append((prof, var))
    cfg = Configuration.of(gpu, pairs)
    cfg.partition(gpu)  # raises on placement violations
    return cfg


@cache
def enumerate_configurations(gpu: GpuModel, variants: tuple[str, ...], extended: bool = False) -> tuple[Configuration, ...]:
    """All unique configurations of the maximal partitions (1282 on A100-40GB with 4 variants)."""
    out: list[Configuration] = []
    for multiset in slice_multisets(gpu, extended):
        counts = Counter(multiset)
        groups = sorted(counts.items(), key=lambda kv: _profile_sort_key(kv[0]))
        per_group = [
            [tuple((prof, v) for v in combo) for combo in combinations_with_replacement(variants, n)]
            for prof, n in groups
        ]
        for choice in product(*per_group):
            out.append(Configuration.of(gpu, [pv for grp in choice for pv in grp]))
    return tuple(out)


def base_configuration(gpu: GpuModel, variants: Sequence[str]) -> Configuration:
    """The paper's BASE: the largest (last-listed) variant on the whole GPU."""
    return Configuration.of(gpu, [(gpu.whole.name, variants[-1])])
