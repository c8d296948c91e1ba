"""Planning over a configuration table: the hindsight plan of a carbon budget (the oracle) and
the receding-horizon plan of the model-predictive controller.

Both work on arrays ``values[t, k]`` (objective value of configuration ``k`` in interval ``t``)
and ``carbon[t, k]`` (grams), ``-inf`` / ``inf`` where not allowed.
"""
from __future__ import annotations

import numpy as np


def frontier(values: np.ndarray, carbon: np.ndarray) -> np.ndarray:
    """Indices of the Pareto-efficient configurations of one interval (no other one has both
    less or equal carbon and a higher value), cheapest first. Only these can be in an optimal
    budget plan, which keeps the dynamic program small (tens, not 1282, per interval)."""
    ok = np.flatnonzero(np.isfinite(values) & np.isfinite(carbon))
    if ok.size == 0:
        return ok
    order = ok[np.lexsort((-values[ok], carbon[ok]))]
    best = np.maximum.accumulate(values[order])
    keep = np.r_[True, values[order][1:] > best[:-1]]
    return order[keep]


def plan_budget(values: np.ndarray, carbon: np.ndarray, budget_g: float, penalty_per_g: float,
                spent_g: float = 0.0, bins: int = 400) -> tuple[np.ndarray, float]:
    """The plan maximising ``sum_t values[t, a_t] - penalty_per_g x max(0, spent + S - budget)``
    (S = the plan's carbon) by dynamic programming over the carbon spent, discretised in
    ``budget / bins`` steps (costs rounded to the nearest step; exact when they are multiples).

    Returns the actions (shape (T,)) and the plan's value under the discretised costs.
    O(T x frontier x states). ``values``/``carbon`` shape (T, K).
    """
    v = np.asarray(values, dtype=np.float64)
    c = np.asarray(carbon, dtype=np.float64)
    t_n = v.shape[0]
    if t_n == 0:
        return np.zeros(0, dtype=np.int64), 0.0
    delta = max(budget_g, 1e-12) / bins
    fronts = [frontier(v[t], c[t]) for t in range(t_n)]
    if any(f.size == 0 for f in fronts):
        raise ValueError("an interval has no allowed configuration")
    cbin = [np.rint(c[t, f] / delta).astype(np.int64) for t, f in enumerate(fronts)]
    s0 = int(round(spent_g / delta))
    s_max = s0 + int(sum(int(cb.max()) for cb in cbin)) + 1
    states = np.arange(s_max + 1)
    over_g = np.maximum(0.0, states * delta - budget_g)
    nxt = -penalty_per_g * over_g  # value-to-go after the last interval
    choice: list[np.ndarray] = []
    for t in range(t_n - 1, -1, -1):
        f, cb = fronts[t], cbin[t]
        cand = v[t, f][:, None] + nxt[np.minimum(states[None, :] + cb[:, None], s_max)]
        j = np.argmax(cand, axis=0)
        choice.append(j)
        nxt = cand[j, states]
    choice.reverse()
    actions = np.empty(t_n, dtype=np.int64)
    s = s0
    for t in range(t_n):
        j = int(choice[t][min(s, s_max)])
        actions[t] = fronts[t][j]
        s = min(s + int(cbin[t][j]), s_max)
    return actions, float(nxt[min(s0, s_max)])


def carbon_price(values: np.ndarray, carbon: np.ndarray, budget_g: float,
                 iters: int = 40) -> float:
    """The smallest price ``mu >= 0`` (value per g) at which choosing ``argmax(values - mu x
    carbon)`` in every interval stays within ``budget_g`` (Lagrangian relaxation of the budget;
    0 when the unconstrained choice fits, the largest price tried when nothing does)."""
    def spend(mu: float) -> float:
        a = np.argmax(values - mu * np.where(np.isfinite(carbon), carbon, 0.0), axis=1)
        return float(np.take_along_axis(carbon, a[:, None], axis=1).sum())

    if spend(0.0) <= budget_g:
        return 0.0
    finite = values[np.isfinite(values)]
    span = float(finite.max() - finite.min()) if finite.size else 1.0
    cmin = float(np.min(carbon[np.isfinite(carbon) & (carbon > 0)], initial=1.0))
    lo, hi = 0.0, max(span, 1e-9) / max(cmin, 1e-12) * 10.0
    if spend(hi) > budget_g:
        return hi
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if spend(mid) > budget_g else (lo, mid)
    return hi


def first_move(values: np.ndarray, current: int, switch_cost: float) -> tuple[int, float]:
    """First action of the best path through ``values`` (shape (H, K)) starting from
    configuration ``current``, paying ``switch_cost`` per change (dynamic program, O(H x K))."""
    v = np.asarray(values, dtype=np.float64)
    h_n = v.shape[0]
    togo = np.zeros(v.shape[1])
    for h in range(h_n - 1, 0, -1):
        stay = v[h] + togo
        togo = np.maximum(stay, stay.max() - switch_cost)
    total = v[0] + togo
    total = total - switch_cost * (np.arange(v.shape[1]) != current)
    a = int(np.argmax(total))
    return a, float(total[a])
