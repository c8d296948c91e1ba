"""Wiring a scenario's ``fleet`` block into the service model and the replay backend."""
from __future__ import annotations

from typing import Any

from clover_rl.envs.actions import ActionCatalog
from clover_rl.envs.config_table import build_config_table
from clover_rl.fleet.catalog import FleetCatalog, pareto_candidates
from clover_rl.fleet.layout import layout_of
from clover_rl.serving.replay import ReplayBackend


def replay_backend(scenario: Any, service: Any, profile: Any, gpu: Any, seed: int | None = 0,
                   **kwargs: Any) -> ReplayBackend:
    """The scenario's replay backend: a :class:`FleetReplayBackend` for a fleet scenario (a
    configuration per GPU), else the paper's one-configuration ``ReplayBackend``."""
    kwargs.setdefault("timeout_s", scenario.timeout_s)
    if scenario.fleet is None:
        return ReplayBackend(service, profile, gpu, scenario.gpus, seed=seed, **kwargs)
    from clover_rl.fleet.replay import FleetReplayBackend

    return FleetReplayBackend(service, profile, gpu, scenario.gpus, seed=seed, layout=layout_of(scenario), **kwargs)


def fleet_catalog(base: ActionCatalog, scenario: Any, replay: ReplayBackend, rate_rps: float,
                  sla_ms: float) -> FleetCatalog:
    """The fleet action space of ``scenario``: candidates Pareto-pruned from the identical-fleet
    table at ``rate_rps`` (the nominal load) and the SLA (:func:`pareto_candidates`)."""
    spec = scenario.fleet
    table = build_config_table(replay, base, rate_rps, scenario.control_interval_s)
    cands = pareto_candidates(table, spec.candidates, sla_ms)
    return FleetCatalog(base, scenario.gpus, cands, spec.levels)

