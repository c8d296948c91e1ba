"""The hindsight fleet plan: the best sequence of fleets over an episode when every GPU that
changes costs ``cost_per_gpu`` (objective units) -- a dynamic program over time.

Method (tractable for 8-64 GPUs): the per-interval value of every fleet action comes from the
configuration table (one steady state per fleet, as for identical fleets); the plan is Viterbi
over the actions, ``best_t(j) = v_t(j) + max_i (best_{t-1}(i) - cost x changes(i, j))`` with
``changes(i, j) = G - sum_k min(n_i(k), n_j(k))`` the GPUs that must be reconfigured. O(T x S^2)
over the S allowed actions (~1600 for the A100 fleet catalog: milliseconds per interval).
"""
from __future__ import annotations

import numpy as np

from clover_rl.fleet.configuration import FleetConfiguration


def change_matrix(fleets: list[FleetConfiguration]) -> np.ndarray:
    """``(S, S)`` GPUs reconfigured to go from fleet ``i`` (row) to fleet ``j`` (column)."""
    keys: dict = {}
    for f in fleets:
        for c, _ in f.counts:
            keys.setdefault(c, len(keys))
    counts = np.zeros((len(fleets), len(keys)), dtype=np.int64)
    for i, f in enumerate(fleets):
        for c, n in f.counts:
            counts[i, keys[c]] = n
    n_gpus = counts.sum(axis=1)
    overlap = np.zeros((len(fleets), len(fleets)), dtype=np.int64)
    for i, f in enumerate(fleets):
        for c, n in f.counts:
            overlap[i] += np.minimum(n, counts[:, keys[c]])
    return n_gpus[None, :] - overlap


def plan_fleet(values: np.ndarray, changes: np.ndarray, cost_per_gpu: float,
               start: int | None = None) -> tuple[np.ndarray, float]:
    """The action sequence maximising ``sum_t values[t, a_t] - cost_per_gpu x sum_t changes[a_{t-1}, a_t]``
    (from fleet ``start`` when given: its first change is paid too). ``values``: (T, S), ``-inf``
    where not allowed; ``changes``: (S, S). Returns (actions (T,), total value); ValueError when
    an interval allows nothing."""
    v = np.asarray(values, dtype=np.float64)
    t_n, s_n = v.shape
    if t_n == 0:
        return np.zeros(0, dtype=np.int64), 0.0
    if not np.isfinite(v).any(axis=1).all():
        raise ValueError("an interval has no allowed fleet")
    cost = float(cost_per_gpu) * np.asarray(changes, dtype=np.float64)
    best = v[0] - (cost[start] if start is not None else 0.0)
    back = np.zeros((t_n, s_n), dtype=np.int64)
    for t in range(1, t_n):
        cand = best[:, None] - cost  # (from, to)
        back[t] = np.argmax(cand, axis=0)
        best = v[t] + cand[back[t], np.arange(s_n)]
    a = np.empty(t_n, dtype=np.int64)
    a[-1] = int(np.argmax(best))
    for t in range(t_n - 1, 0, -1):
        a[t - 1] = back[t, a[t]]
    return a, float(best[a[-1]])
