"""Where a fleet's GPUs are: nodes and the GPUs on each (the scenario's ``fleet.nodes``).

GPUs are numbered fleet-wide in node order (node 0's GPUs first); the replay backend's slice ids
(``gpu5/3g.20gb@4``) and every per-GPU list in :mod:`clover_rl.fleet` use these indices. A
serving plane that spans nodes (the Ray plane) maps index -> (node, local GPU) with
:meth:`FleetLayout.locate`.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from clover_rl.errors import ConfigError


@dataclass(frozen=True)
class NodeSpec:
    """One node: its name (a Ray node / Kubernetes node name, or a label) and its GPU count."""

    name: str
    gpus: int


@dataclass(frozen=True)
class FleetLayout:
    """The fleet's nodes in order; ``n_gpus`` = the sum of their GPUs."""

    nodes: tuple[NodeSpec, ...]

    def __post_init__(self) -> None:
        if not self.nodes:
            raise ConfigError("fleet.nodes: at least one node")
        names = [n.name for n in self.nodes]
        if len(set(names)) != len(names):
            raise ConfigError(f"fleet.nodes: duplicate node name in {names}")
        for n in self.nodes:
            if isinstance(n.gpus, bool) or not isinstance(n.gpus, int) or n.gpus < 1:
                raise ConfigError(f"fleet.nodes: node {n.name!r} needs gpus >= 1 (got {n.gpus!r})")

    @staticmethod
    def single(n_gpus: int, name: str = "node0") -> FleetLayout:
        """All GPUs on one node (a scenario without ``fleet.nodes``)."""
        return FleetLayout((NodeSpec(name, int(n_gpus)),))

    @staticmethod
    def of(nodes: Sequence[tuple[str, int]]) -> FleetLayout:
        return FleetLayout(tuple(NodeSpec(str(n), int(g)) for n, g in nodes))

    @property
    def n_gpus(self) -> int:
        return sum(n.gpus for n in self.nodes)

    def locate(self, gpu_index: int) -> tuple[str, int]:
        """(node name, GPU index on that node) of fleet GPU ``gpu_index``; ConfigError if out of range."""
        i = int(gpu_index)
        if i < 0:
            raise ConfigError(f"GPU index {gpu_index} out of range 0..{self.n_gpus - 1}")
        for n in self.nodes:
            if i < n.gpus:
                return n.name, i
            i -= n.gpus
        raise ConfigError(f"GPU index {gpu_index} out of range 0..{self.n_gpus - 1}")

    def gpus_of(self, node: str) -> tuple[int, ...]:
        """Fleet GPU indices of ``node`` (ConfigError for an unknown node)."""
        first = 0
        for n in self.nodes:
            if n.name == node:
                return tuple(range(first, first + n.gpus))
            first += n.gpus
        raise ConfigError(f"unknown node {node!r} (fleet nodes: {', '.join(n.name for n in self.nodes)})")


def layout_of(scenario: Any) -> FleetLayout:
    """The scenario's nodes (``fleet.nodes``), else all ``gpus`` on one node."""
    if scenario.fleet is None:
        return FleetLayout.single(scenario.gpus)
    return FleetLayout.of([(n.name, n.gpus) for n in scenario.fleet.nodes])


def resize_overrides(scenario: Any, nodes: Sequence[tuple[str, int]]) -> dict[str, Any]:
    """Scenario overrides for serving on ``nodes`` ((name, GPUs), in order) instead of the
    scenario's own GPUs: ``{"gpus": n}``, plus for a fleet scenario its ``fleet`` block on these
    nodes (same candidates and levels), so the action space is the one of the GPUs that are
    there (a Ray fleet of another size, a node lost or back, ``deploy --gpus``). Always explicit,
    so it can replace earlier overrides."""
    n = sum(int(g) for _, g in nodes)
    if scenario.fleet is None:
        return {"gpus": n}
    spec = scenario.fleet.model_dump()
    spec["nodes"] = [{"name": str(a), "gpus": int(b)} for a, b in nodes]
    return {"gpus": n, "fleet": spec}
