"""What a switch's own interval loses, by the replay model: the planner's view of reconfiguration.

A steady-state table says what a configuration is worth once it runs; the interval in which it
is switched to is worse: the changed slices are down for the re-partition and model load, the
requests that arrive meanwhile queue, and the backlog drains after (the replay backend's
disturbed head, :mod:`clover_rl.serving.disturbed`). Above all its p95 can break the SLA when
the new configuration's steady p95 is close to it -- e.g. switching *to* BASE, whose steady p95
*is* the SLA, violates it in that interval however good the switch is afterwards.

:class:`SwitchModel` serves that interval on a private replay backend of the service (the
context's ``model.replay_backend()``: the same profile, downtime rules and caches as the
environment's replay) and scores it like the environment does (``model.outcome``: the
objective, and the reward's SLA penalty when the p95 breaks the SLA). Model-based, never the
future: the rate and intensity given are the planner's forecasts for the interval.
"""
from __future__ import annotations

from typing import Any


class SwitchModel:
    """Scores switch intervals on a private replay backend (see the module docstring)."""

    def __init__(self, context: Any, backend: Any, *, charge_sla: bool = False) -> None:
        self.context = context
        self.backend = backend
        self.charge_sla = charge_sla
        self.interval_s = float(context.scenario.control_interval_s)

    @classmethod
    def of(cls, context: Any, *, charge_sla: bool = False) -> SwitchModel | None:
        """A switch model for ``context`` (the env or a deployment), or None where there is no
        replay model to ask or the catalog is a fleet's (its planner charges per GPU)."""
        model = getattr(context, "model", None)
        if model is None or not callable(getattr(model, "replay_backend", None)) \
                or getattr(context.catalog, "changes", None) is not None:
            return None
        return cls(context, model.replay_backend(seed=0), charge_sla=charge_sla)

    def interval(self, current: int, target: int, rate_rps: float) -> Any:
        """Metrics of the interval that switches from catalog index ``current`` to ``target``
        at ``rate_rps`` (the first configuration served from a settled service)."""
        cfgs = self.context.catalog.configs
        b = self.backend
        b.apply(cfgs[current])
        b.settle()
        b.apply(cfgs[target])
        return b.run(self.interval_s, max(float(rate_rps), 1e-6))

    def loss(self, current: int, target: int, rate_rps: float, intensity: float, price: float,
             steady_value: float) -> float:
        """How much less than ``steady_value`` (the planner's value of ``target`` in this
        interval) the switch interval earns: its objective (with ``charge_sla``: its reward, the
        objective less the reward's SLA penalty when its p95 breaks the SLA) less ``price`` x its
        carbon (g; a budget's price, 0 otherwise); >= 0."""
        out = self.context.model.outcome(self.interval(current, target, rate_rps), intensity)
        earned = out.objective + (out.reward_sla_penalty if self.charge_sla else 0.0)
        return max(0.0, float(steady_value) - (earned - price * out.carbon_g))
