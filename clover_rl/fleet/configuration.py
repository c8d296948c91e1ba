"""A fleet configuration: how many GPUs run each per-GPU configuration.

The paper applies one :class:`~clover_rl.mig.config.Configuration` to every GPU. A fleet may
differ per GPU; which GPU runs which configuration does not change what the fleet serves (one
central queue over every slice; GPUs of a fleet are identical), so the canonical identity of a
fleet is the *multiset* of its per-GPU configurations -- :class:`FleetConfiguration`, counts per
configuration. The concrete GPU -> configuration map is chosen when it is applied, by
:func:`assign_gpus`, which keeps every GPU whose configuration is still wanted (so a change
reconfigures only the GPUs it must: ``n - sum_k min(current_k, target_k)`` of them).
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from clover_rl.errors import ConfigError
from clover_rl.mig.config import Configuration


@dataclass(frozen=True)
class FleetConfiguration:
    """``counts``: (per-GPU configuration, GPUs running it), canonical order (by label), counts > 0."""

    gpu: str
    counts: tuple[tuple[Configuration, int], ...]

    @staticmethod
    def of(configs: Iterable[Configuration] | Counter[Configuration]) -> FleetConfiguration:
        """From per-GPU configurations (any order) or a Counter of them."""
        c = configs if isinstance(configs, Counter) else Counter(configs)
        items = sorted(((k, int(n)) for k, n in c.items() if n > 0), key=lambda kn: kn[0].label())
        if not items:
            raise ConfigError("a fleet configuration needs at least one GPU")
        gpus = {k.gpu for k, _ in items}
        if len(gpus) != 1:
            raise ConfigError(f"a fleet mixes GPU models {sorted(gpus)}; one model per fleet")
        return FleetConfiguration(items[0][0].gpu, tuple(items))

    @staticmethod
    def identical(config: Configuration, n_gpus: int) -> FleetConfiguration:
        """``config`` on all ``n_gpus`` GPUs (the paper's fleet)."""
        return FleetConfiguration(config.gpu, ((config, int(n_gpus)),))

    @property
    def n_gpus(self) -> int:
        return sum(n for _, n in self.counts)

    @property
    def is_identical(self) -> bool:
        return len(self.counts) == 1

    @property
    def configs(self) -> tuple[Configuration, ...]:
        """The distinct per-GPU configurations."""
        return tuple(c for c, _ in self.counts)

    @cached_property
    def pairs(self) -> tuple[tuple[str, str], ...]:
        """Distinct (profile, variant) pairs over all GPUs (what tie-breaking and logs inspect)."""
        return tuple(dict.fromkeys(p for c, _ in self.counts for p in c.pairs))

    @property
    def variants(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(v for _, v in self.pairs))

    def label(self) -> str:
        """``4g:b7,3g:b5`` when identical, else ``5x(4g:b7,3g:b5)+3x(7g:b3)``."""
        if self.is_identical:
            return self.counts[0][0].label()
        return "+".join(f"{n}x({c.label()})" for c, n in self.counts)

    def __str__(self) -> str:
        return self.label()

    def graph(self, variants: Sequence[str], profiles: Sequence[str]) -> np.ndarray:
        """Mean per-GPU edge counts (the paper's graph averaged over GPUs), float (V, P)."""
        g = sum(n * c.graph(variants, profiles).astype(np.float64) for c, n in self.counts)
        return np.asarray(g, dtype=np.float64) / self.n_gpus

    def per_gpu(self) -> tuple[Configuration, ...]:
        """A canonical GPU -> configuration map (what a fleet starts from)."""
        return tuple(c for c, n in self.counts for _ in range(n))

    def changes_from(self, other: FleetConfiguration) -> int:
        """GPUs that must be reconfigured to go from ``other`` to this fleet."""
        mine = dict(self.counts)
        return self.n_gpus - sum(min(n, mine.get(c, 0)) for c, n in other.counts)


def assign_gpus(target: FleetConfiguration, current: Sequence[Configuration] | None) -> tuple[Configuration, ...]:
    """The GPU -> configuration map of ``target`` that changes the fewest GPUs of ``current``.

    GPUs keep their configuration while ``target`` still wants it (in GPU order); the others take
    the remaining configurations in canonical order. ConfigError when the GPU counts differ.
    """
    if current is None:
        return target.per_gpu()
    if len(current) != target.n_gpus:
        raise ConfigError(f"fleet of {target.n_gpus} GPUs applied to {len(current)} GPUs")
    left = dict(target.counts)
    out: list[Configuration | None] = []
    for c in current:
        if left.get(c, 0) > 0:
            left[c] -= 1
            out.append(c)
        else:
            out.append(None)
    rest = iter(c for c, n in target.counts for _ in range(left[c]))
    return tuple(c if c is not None else next(rest) for c in out)
