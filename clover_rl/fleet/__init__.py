"""Fleets of MIG GPUs with a configuration per GPU (issue 15).

* :mod:`.layout` -- ``FleetLayout`` / ``NodeSpec``: which GPUs sit on which node;
* :mod:`.configuration` -- ``FleetConfiguration`` (GPUs per per-GPU configuration) and
  ``assign_gpus`` (the fewest-changes GPU -> configuration map);
* :mod:`.catalog` -- ``FleetCatalog``: the action space (identical fleets + two-configuration
  mixes of Pareto-pruned candidates), same interface as ``envs.actions.ActionCatalog``;
* :mod:`.replay` -- ``FleetReplayBackend``: downtime only on the GPUs that change;
* :mod:`.planning` -- the hindsight fleet plan over time with a per-GPU switching cost;
* :mod:`.model` -- wiring a scenario's ``fleet`` block into the service model and the env.

Only the light types are imported here; the backend and the planner load on use.
"""
from clover_rl.fleet.configuration import FleetConfiguration, assign_gpus
from clover_rl.fleet.layout import FleetLayout, NodeSpec

__all__ = ["FleetConfiguration", "FleetLayout", "NodeSpec", "assign_gpus"]
