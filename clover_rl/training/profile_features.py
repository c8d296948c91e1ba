"""Per-configuration profile features for the ``ProfileGraphPolicy`` action head.

What decides the best configuration of an interval is known per configuration from the profile
model, independently of any carbon trace: its objective value on a carbon-free grid, how fast
that value falls as the grid gets dirtier, its carbon against BASE's, its accuracy, its p95
against the SLA at the load. A policy that sees these can score *any* configuration at *any*
intensity and load -- which is what generalising to unseen grids means -- instead of memorising
which configuration was good on the traces it trained on.

:func:`profile_features` evaluates them from the replay model's steady-state table
(``ServiceModel.config_table``) at load levels 10% apart around the scenario's nominal rate
(:func:`clover_rl.envs.randomization.load_levels`, which training snaps its loads to), once per run;
the policy stores them in its state dict and picks, each step, the level at or above the
observed ``request_rate`` (latency judged at a load no lower than the real one, as the
planners do). No trace, no hindsight of the future: the same facts ``mpc`` plans with.

Features (per level, per configuration; 0 for infeasible ones, which the action mask removes):

==========  ====================================================================================
``v0``       the objective's value on a carbon-free grid (intensity 0)
``slope``    its value at the observation's reference intensity (``ci_now`` = 1) minus ``v0``: the
             value at ``ci_now = x`` is ``v0 + x slope`` (exact for the paper's score within
             the SLA, the accuracy floor and the budget's accuracy term)
``carbon``   carbon per interval at ``ci_now`` = 1 over BASE's at the nominal load (so carbon at
             ``x`` is ``x carbon``; a budget's allowance is a fixed fraction of BASE's)
``accuracy`` (accuracy - BASE's) / BASE's, x 10
``p95``      steady-state p95 / SLA, clipped to [0, 4]
``meets``    1 when the steady-state p95 is within the SLA
==========  ====================================================================================
"""
from __future__ import annotations

from typing import Any

import numpy as np

from clover_rl.envs.randomization import load_levels

FEATURES = ("v0", "slope", "carbon", "accuracy", "p95", "meets")


def profile_features(env: Any, levels: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(levels, table)``: ``levels`` shape (L,) (ratios to the nominal rate; default
    ``load_levels``), ``table`` shape (L, n_actions, len(FEATURES)) float32, from ``env``'s service
    model (an env, a wrapped env or anything with ``.unwrapped.model``). Costs one steady-state
    table per level (seconds each)."""
    u = getattr(env, "unwrapped", env)
    model = u.model
    rates = load_levels(model.mean_rate) if levels is None else np.asarray(levels, dtype=float) * model.mean_rate
    lv = rates / model.mean_rate
    obj, ref = model.objective, model.reference
    mask = model.catalog.feasible
    x1 = model.ci_ref / model.pue  # the intensity (g/kWh) at which the observation's ci_now is 1
    interval = model.scenario.control_interval_s
    base_carbon = ref.c_ref_g * model.mean_rate * interval  # BASE at the nominal load, ci_now = 1
    out = np.zeros((len(lv), len(mask), len(FEATURES)), dtype=np.float32)
    for i, rate in enumerate(rates.tolist()):
        t = model.config_table(rate)
        ok = t.feasible & mask & np.isfinite(t.energy_per_request_j) & np.isfinite(t.p95_ms)
        args = (t.energy_per_request_j, t.accuracy, t.p95_ms, t.feasible & mask)
        tv0 = obj.table(*args, 0.0, model.pue, rate)
        tv1 = obj.table(*args, x1, model.pue, rate)
        v0 = np.where(ok, tv0.value, 0.0)
        f = out[i]
        f[:, 0] = np.clip(v0, -4.0, 4.0)
        f[:, 1] = np.clip(np.where(ok, tv1.value, 0.0) - v0, -4.0, 4.0)
        f[:, 2] = np.clip(np.where(ok, tv1.carbon_g, 0.0) / base_carbon, 0.0, 10.0)
        f[:, 3] = np.where(ok, 10.0 * (t.accuracy - ref.a_base) / ref.a_base, 0.0)
        f[:, 4] = np.clip(np.where(ok, t.p95_ms / model.sla_ms, 0.0), 0.0, 4.0)
        f[:, 5] = (ok & tv1.meets_sla).astype(np.float32)
    return lv.astype(np.float32), out
