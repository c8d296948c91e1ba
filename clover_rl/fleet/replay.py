"""``FleetReplayBackend``: the replay backend with a configuration per GPU.

Same model as :class:`~clover_rl.serving.replay.ReplayBackend` (profile + simulator, one central
FIFO over every slice of every GPU, the dispatch tie rule, steady-state cache), with these
differences:

* ``apply`` takes a :class:`~clover_rl.fleet.configuration.FleetConfiguration` (a plain
  ``Configuration`` means that configuration on every GPU) and maps it onto GPUs with
  :func:`~clover_rl.fleet.configuration.assign_gpus`: a GPU whose configuration is still wanted
  keeps it, with its slots, and pays **no** downtime; only the GPUs that change pay, per slice,
  the replay rules (new placement: partition change + model load; same placement, other
  variant: model load; make-before-break profiles: the measured switch time). The other GPUs
  keep serving through the change (their slices stay available in the simulated interval).
* Load: the central queue sends each request to the fastest free slice of the whole fleet, so
  under load every GPU serves in proportion to its capacity (the split a capacity-weighted
  router makes), and a GPU down for reconfiguration simply takes nothing until it is back.

An identical fleet gives exactly the metrics of ``ReplayBackend`` (same servers, same cache keys).
"""
from __future__ import annotations

from typing import Any

from clover_rl.errors import ConfigError
from clover_rl.fleet.configuration import FleetConfiguration, assign_gpus
from clover_rl.fleet.layout import FleetLayout
from clover_rl.mig.config import Configuration
from clover_rl.serving.backend import ReconfigReport
from clover_rl.serving.replay import _TRANSITIONS_MAX, Assignment, ReplayBackend
from clover_rl.serving.simulator import Servers, build_servers
from clover_rl.serving.slots import slice_id, slot_assignment


class FleetReplayBackend(ReplayBackend):
    """Replay of ``n_gpus`` GPUs (on ``layout``'s nodes), each with its own configuration."""

    def __init__(self, *args: Any, layout: FleetLayout | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.layout = layout or FleetLayout.single(self.n_gpus)
        if self.layout.n_gpus != self.n_gpus:
            raise ConfigError(f"fleet layout has {self.layout.n_gpus} GPUs, the backend {self.n_gpus}")

    @property
    def gpu_configurations(self) -> tuple[Configuration, ...] | None:
        """What each GPU serves now (GPU order), None before the first apply."""
        if self._config is None:
            return None
        return tuple(Configuration.of(self.gpu, [(s.profile, v) for s, v in a]) for a in self._assignment)

    def _fleet(self, configuration: FleetConfiguration | Configuration) -> FleetConfiguration:
        if isinstance(configuration, Configuration):
            configuration = FleetConfiguration.identical(configuration, self.n_gpus)
        if not isinstance(configuration, FleetConfiguration):
            raise ConfigError(f"expected a FleetConfiguration, got {type(configuration).__name__}")
        if configuration.gpu != self.gpu.name:
            raise ConfigError(f"fleet {configuration.label()} is for GPU {configuration.gpu!r}, "
                              f"backend for {self.gpu.name!r}")
        if configuration.n_gpus != self.n_gpus:
            raise ConfigError(f"fleet {configuration.label()} has {configuration.n_gpus} GPUs, the backend {self.n_gpus}")
        return configuration

    def _check_config(self, config: Any) -> None:
        self._fleet(config)

    def apply(self, configuration: FleetConfiguration | Configuration) -> ReconfigReport:  # type: ignore[override]
        """Reconfigure the GPUs whose configuration changes; downtime is charged in the next run
        to their slices only (slice ids ``gpu<i>/<profile>@<start>``)."""
        return super().apply(self._fleet(configuration))  # type: ignore[arg-type]

    def _key_of(self, configuration: Any, assignment: Any) -> tuple:
        return (configuration, assignment)  # per-GPU assignments: hashable as they are

    def _fleet_servers(self, assigns: tuple[Assignment, ...]) -> Servers:
        s = self._servers_cache.get(assigns)  # type: ignore[call-overload]
        if s is None:
            cfg = Configuration.of(self.gpu, [(x.profile, v) for x, v in assigns[0]])
            s = build_servers(cfg, self.profile, self.service, self.n_gpus, gpu_assignments=assigns)
            self._servers_cache[assigns] = s  # type: ignore[index]
        return s

    def _transition(self, configuration: Any, first: bool) -> tuple[Any, Servers, tuple]:
        """Per-GPU slot assignments, servers and per-slice switching costs (cached)."""
        key = (self._assignment_key, configuration, first)
        hit = self._transitions.get(key)
        if hit is not None:
            return hit
        current = None if first else self.gpu_configurations
        per_gpu = assign_gpus(configuration, current)
        assigns: list[Assignment] = []
        costs: list[tuple[str, float]] = []
        for g, cfg in enumerate(per_gpu):
            if current is not None and cfg == current[g]:  # kept GPU: same slots, no downtime
                a: Assignment = self._assignment[g]
                costs += [(slice_id(g, s), 0.0) for s, _ in a]
            else:
                previous = {} if first else {(s.profile, s.start): v for s, v in self._assignment[g]}
                a = slot_assignment(cfg, self.gpu, previous)
                costs += [(slice_id(g, s), self._switch_cost(previous.get((s.profile, s.start)), v, first))
                          for s, v in a]
            assigns.append(a)
        out = (tuple(assigns), self._fleet_servers(tuple(assigns)), tuple(costs))
        if len(self._transitions) >= _TRANSITIONS_MAX:
            self._transitions.clear()
        self._transitions[key] = out
        return out

    def servers(self, configuration: FleetConfiguration | Configuration | None = None) -> Servers:
        """Servers of ``configuration`` on a fresh fleet (default: what is served now)."""
        if configuration is None:
            return super().servers()
        fleet = self._fleet(configuration)
        return self._fleet_servers(tuple(slot_assignment(c, self.gpu) for c in fleet.per_gpu()))
