"""The fleet action space: every identical fleet, plus mixes of two pruned per-GPU configurations.

Actions (``Discrete(len(catalog))``, the same interface as
:class:`~clover_rl.envs.actions.ActionCatalog`, so the env, the evaluation and every policy take
it unchanged):

* ``0 .. n_identical-1`` -- configuration ``i`` of the per-GPU catalog on **every** GPU, same
  index as in the single-configuration catalog (the paper's optimizer searches only these);
* then the **mixes**: for each pair ``a < b`` of the ``K`` candidate configurations and each
  fraction level ``l = 1 .. L-1``, ``round(l G / L)`` GPUs run ``a`` and the rest ``b``
  (duplicates and pure fleets dropped; with ``G < L`` the levels are the ``G - 1`` splits).

Why this space. (1) Its size, ``n_identical + K(K-1)/2 (L-1)`` (1282 + 45 x 7 = 1597 for the
A100's 1282 configurations, K = 10, L = 8), does not grow with the GPU count, so one policy
network fits 8 or 64 GPUs; a "move one GPU" space would need 8-64x more steps per change and a
full count vector space grows as ``C(G+K-1, K-1)``. (2) Two configurations are enough: fleet
carbon and accuracy are request-weighted averages of the per-GPU ones, so with one coupling
constraint (the SLA / the load the fleet must carry) the best fleet of the linear relaxation has
at most two configurations in use (an LP vertex has as many non-zeros as binding constraints).
(3) Targets are absolute (a fleet, not a delta): the backend changes only the GPUs that differ
(:func:`~clover_rl.fleet.configuration.assign_gpus`), so "a few GPUs at a time" is a move between
neighbouring levels. Candidates come from :func:`pareto_candidates` (the identical-fleet table's
energy/accuracy frontier), so every mix is of efficient configurations.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from clover_rl.envs.actions import ActionCatalog
from clover_rl.envs.config_table import ConfigTable
from clover_rl.errors import ConfigError
from clover_rl.fleet.configuration import FleetConfiguration
from clover_rl.mig.catalog import GpuModel
from clover_rl.services import ServiceSpec

_MIX = re.compile(r"(\d+)x\(([^()]*)\)")


def mix_counts(n_gpus: int, levels: int) -> tuple[int, ...]:
    """GPU counts of the first configuration in a mix: ``round(l G / L)``, strictly inside (0, G)."""
    return tuple(sorted({round(i * n_gpus / levels) for i in range(1, levels)} - {0, n_gpus}))


@dataclass(frozen=True)
class FleetCatalog:
    """``base``: the per-GPU catalog; ``candidates``: indices into it (mixable configurations);
    ``levels``: fraction levels L of a mix."""

    base: ActionCatalog
    n_gpus: int
    candidates: tuple[int, ...]
    levels: int = 8

    def __post_init__(self) -> None:
        if self.n_gpus < 1:
            raise ConfigError(f"fleet: n_gpus must be >= 1 (got {self.n_gpus})")
        if self.levels < 2:
            raise ConfigError(f"fleet.levels: must be >= 2 (got {self.levels})")
        bad = [c for c in self.candidates if not (0 <= c < len(self.base) and self.base.feasible[c])]
        if bad or len(set(self.candidates)) != len(self.candidates):
            raise ConfigError(f"fleet candidates must be distinct feasible configurations (bad: {bad})")

    # ------------------------------------------------------------ ActionCatalog interface
    @property
    def gpu(self) -> GpuModel:
        return self.base.gpu

    @property
    def service(self) -> ServiceSpec:
        return self.base.service

    @property
    def profiles(self) -> tuple[str, ...]:
        return self.base.profiles

    @property
    def variants(self) -> tuple[str, ...]:
        return self.base.variants

    @property
    def n_identical(self) -> int:
        return len(self.base)

    @cached_property
    def mixes(self) -> tuple[tuple[int, int, int], ...]:
        """(candidate a, candidate b, GPUs on a) of every mix action, in action order."""
        ks = mix_counts(self.n_gpus, self.levels)
        c = self.candidates
        return tuple((c[i], c[j], k) for i in range(len(c)) for j in range(i + 1, len(c)) for k in ks)

    @cached_property
    def configs(self) -> tuple[FleetConfiguration, ...]:
        g, cfgs = self.n_gpus, self.base.configs
        same = tuple(FleetConfiguration.identical(c, g) for c in cfgs)
        mixed = tuple(FleetConfiguration.of({cfgs[a]: k, cfgs[b]: g - k}) for a, b, k in self.mixes)
        return same + mixed

    @cached_property
    def index(self) -> dict[FleetConfiguration, int]:
        return {c: i for i, c in enumerate(self.configs)}

    def __len__(self) -> int:
        return self.n_identical + len(self.mixes)

    @cached_property
    def identical_mask(self) -> np.ndarray:
        """True for the identical fleets (the paper's space)."""
        m = np.zeros(len(self), dtype=bool)
        m[: self.n_identical] = True
        return m

    @cached_property
    def graphs(self) -> np.ndarray:
        """(n_actions, V*P) mean per-GPU edge counts (identical fleets: the per-GPU graph)."""
        g = self.base.graphs
        mixed = [(k * g[a] + (self.n_gpus - k) * g[b]) / self.n_gpus for a, b, k in self.mixes]
        return np.vstack([g] + ([np.asarray(mixed, dtype=np.float32)] if mixed else [])).astype(np.float32)

    @cached_property
    def feasible(self) -> np.ndarray:
        mixed = np.array([self.base.feasible[a] and self.base.feasible[b] for a, b, _ in self.mixes], dtype=bool)
        return np.concatenate([self.base.feasible, mixed])

    def why_infeasible(self, i: int) -> str:
        if i < self.n_identical:
            return self.base.why_infeasible(i)
        a, b, _ = self.mixes[i - self.n_identical]
        return self.base.why_infeasible(a) or self.base.why_infeasible(b)

    @property
    def base_index(self) -> int:
        return self.base.base_index

    def lookup(self, config: FleetConfiguration | object) -> int:
        """Index of a fleet, a per-GPU configuration (identical fleet), an int, or a label
        (``4g:b7,3g:b5`` or ``5x(4g:b7,3g:b5)+3x(7g:b3)``); ConfigError when not in the space."""
        if isinstance(config, (int, np.integer)):
            return self.base.lookup(config) if config < self.n_identical else self._checked(int(config))
        if isinstance(config, str) and _MIX.search(config):
            config = self.parse(config)
        if isinstance(config, FleetConfiguration):
            try:
                return self.index[config]
            except KeyError:
                raise ConfigError(f"fleet {config.label()} is not in the action space (identical fleets and "
                                  f"mixes of {len(self.candidates)} candidates at {self.levels} levels)") from None
        return self.base.lookup(config)  # a per-GPU configuration or its label: the identical fleet

    @cached_property
    def changes(self) -> np.ndarray:
        """``(n_actions, n_actions)`` int16: GPUs reconfigured to go from action ``i`` (row) to
        ``j`` (:func:`~clover_rl.fleet.planning.change_matrix`; ~5 MB for 1597 actions)."""
        from clover_rl.fleet.planning import change_matrix

        return change_matrix(list(self.configs)).astype(np.int16)

    def nearest(self, fleet: FleetConfiguration, allowed: np.ndarray | None = None) -> int:
        """The action whose fleet needs the fewest GPUs reconfigured from ``fleet`` (e.g. what a
        resized fleet serves now), among ``allowed`` (default: feasible); lowest index on ties."""
        ok = self.feasible if allowed is None else allowed
        changes = [c.changes_from(fleet) if ok[i] and c.n_gpus == fleet.n_gpus else 1 << 30
                   for i, c in enumerate(self.configs)]
        return int(np.argmin(changes))

    def _checked(self, i: int) -> int:
        if not 0 <= i < len(self):
            raise ConfigError(f"action {i} out of range 0..{len(self) - 1}")
        return i

    def parse(self, text: str) -> FleetConfiguration:
        """``5x(4g:b7,3g:b5)+3x(7g:b3)`` -> a fleet (ConfigError on a bad label or GPU count)."""
        parts = text.split("+")
        counts: dict = {}
        for p in parts:
            m = _MIX.fullmatch(p.strip())
            if not m:
                raise ConfigError(f"fleet label {text!r}: expected N x(config)+... e.g. 5x(7g:b7)+3x(4g:b5,3g:b3)")
            cfg = self.base.configs[self.base.lookup(m.group(2))]
            counts[cfg] = counts.get(cfg, 0) + int(m.group(1))
        fleet = FleetConfiguration.of(counts)
        if fleet.n_gpus != self.n_gpus:
            raise ConfigError(f"fleet label {text!r} has {fleet.n_gpus} GPUs; the fleet has {self.n_gpus}")
        return fleet

    @cached_property
    def signature(self) -> str:
        """Hash of the per-GPU catalog, the GPU count, the candidates and the levels."""
        text = "|".join([self.base.signature, str(self.n_gpus), str(self.levels),
                         ",".join(self.base.configs[c].label() for c in self.candidates)])
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def pareto_candidates(table: ConfigTable, k: int, sla_ms: float | None = None) -> tuple[int, ...]:
    """Up to ``k`` per-GPU configurations to mix, from the identical-fleet ``table`` at the
    nominal load: the Pareto frontier of (energy per request, lower is better; accuracy, higher
    is better) among feasible configurations -- those meeting ``sla_ms`` first, then the rest's
    frontier for the slots left -- thinned evenly along the frontier (both ends kept)."""
    from clover_rl.agents.planning import frontier

    if k < 2:
        raise ConfigError(f"fleet.candidates: need at least 2 (got {k})")
    ok = table.feasible & np.isfinite(table.energy_per_request_j) & np.isfinite(table.p95_ms)
    meets = ok & (table.p95_ms <= sla_ms) if sla_ms is not None else ok

    def front(mask: np.ndarray) -> np.ndarray:
        return frontier(np.where(mask, table.accuracy, -np.inf), np.where(mask, table.energy_per_request_j, np.inf))

    chosen = list(_thin(front(meets), k))
    if len(chosen) < k:
        rest = [int(i) for i in front(ok) if int(i) not in chosen]
        chosen += list(_thin(np.array(rest, dtype=np.int64), k - len(chosen)))
    return tuple(int(i) for i in sorted(chosen))


def _thin(idx: np.ndarray, k: int) -> np.ndarray:
    if len(idx) <= k:
        return idx
    return idx[np.unique(np.rint(np.linspace(0, len(idx) - 1, k)).astype(np.int64))]
