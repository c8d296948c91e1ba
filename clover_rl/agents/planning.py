"""Planning over a configuration table: the hindsight plan of a carbon budget (the oracle) and
the receding-horizon plan of the model-predictive controller (its first move with switching
costs, and the carbon price of a budget over intensity scenarios).

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


def first_move(values: np.ndarray, current: int, switch_cost: float,
               entry: np.ndarray | None = None) -> tuple[int, float]:
    """First action of the best path through ``values`` (shape (H, K)) starting from
    configuration ``current``, paying ``switch_cost`` per change plus ``entry[k]`` for a change
    into ``k`` (what the interval of that switch loses beyond it; shape (K,), default 0).
    Dynamic program, O(H x K)."""
    v = np.asarray(values, dtype=np.float64)
    h_n = v.shape[0]
    cost = switch_cost + (np.zeros(v.shape[1]) if entry is None else np.asarray(entry, dtype=np.float64))
    togo = np.zeros(v.shape[1])
    for h in range(h_n - 1, 0, -1):
        stay = v[h] + togo
        togo = np.maximum(stay, (stay - cost).max())
    total = v[0] + togo
    total = total - cost * (np.arange(v.shape[1]) != current)
    a = int(np.argmax(total))
    return a, float(total[a])


def hulls(values: np.ndarray, carbon: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per interval, the configurations a carbon price can select, cheapest first, and the prices
    at which the choice moves up: for row ``t``, ``(idx, breaks)`` with ``idx`` the vertices of
    the upper concave hull of (carbon, value) over :func:`frontier` and ``breaks[j]`` the value
    per gram gained from ``idx[j]`` to ``idx[j + 1]`` (decreasing). ``argmax(values[t] - mu x
    carbon[t])`` is ``idx[sum(breaks > mu)]`` for any ``mu >= 0``."""
    out = []
    for t in range(values.shape[0]):
        f = frontier(values[t], carbon[t])
        if f.size == 0:
            raise ValueError("an interval has no allowed configuration")
        keep: list[int] = []
        for i in f:  # monotone chain over carbon ascending, values ascending
            while len(keep) >= 2:
                a, b = keep[-2], keep[-1]
                # drop b when it lies on or under the chord a -> i
                if (values[t, b] - values[t, a]) * (carbon[t, i] - carbon[t, a]) <= \
                        (values[t, i] - values[t, a]) * (carbon[t, b] - carbon[t, a]):
                    keep.pop()
                else:
                    break
            keep.append(int(i))
        idx = np.array(keep, dtype=np.int64)
        dv, dc = np.diff(values[t, idx]), np.diff(carbon[t, idx])
        out.append((idx, dv / np.maximum(dc, 1e-300)))
    return out


def robust_carbon_price(values: np.ndarray, unit_carbon: np.ndarray, intensities: np.ndarray, budget_g: float,
                        penalty_per_g: float, prices: int = 48) -> tuple[float, dict[str, float]]:
    """The carbon price (value per g) that maximises the expected value of the window over
    intensity scenarios: each scenario ``s`` serves ``argmax(values[t] - mu x carbon_s[t])``
    every interval and pays ``penalty_per_g`` per gram beyond ``budget_g``.

    ``values`` (T, K), ``-inf`` where not allowed; ``unit_carbon`` (T, K): grams per g/kWh of
    intensity (``inf`` where not allowed); ``intensities`` (S, T): the scenarios' intensities
    (g/kWh; one row = a point forecast). Prices tried: 0 and ``prices`` log-spaced ones up to
    ``penalty_per_g`` (a higher price would save grams worth less than their overspend
    penalty); among equally good prices, the one nearest the expected marginal cost of a gram
    (``penalty_per_g`` x the share of scenarios over budget). Since carbon is linear in intensity, a scenario's
    choice in interval ``t`` is the hull vertex of price ``mu x intensity`` (:func:`hulls`): the
    cost is O(prices x S x T x log K).

    Returns the price and, for the decision's record, the expected spend and overspend (g) and
    the share of scenarios over budget at that price.
    """
    ci = np.atleast_2d(np.asarray(intensities, dtype=np.float64))
    t_n = values.shape[0]
    hull = hulls(values, unit_carbon)
    breaks = np.concatenate([b for _, b in hull])
    breaks = breaks[breaks > 0]
    mus = np.zeros(1)
    if breaks.size and penalty_per_g > 0:  # prices between the first and the last that moves a choice
        hi = min(penalty_per_g, float(breaks.max()) / max(float(ci.min()), 1e-9))
        lo = min(hi, max(float(breaks.min()) / max(float(ci.max()), 1e-9), hi * 1e-6))
        mus = np.r_[0.0, np.geomspace(lo, hi, prices) * (1.0 + 1e-6)]  # just above a break: no ties
    eff = mus[:, None, None] * ci[None, :, :]  # (P, S, T): the per-gram-of-unit price
    val = np.zeros(eff.shape[:2])
    spend = np.zeros(eff.shape[:2])
    for t in range(t_n):
        idx, breaks = hull[t]
        j = np.searchsorted(-breaks, -eff[:, :, t], side="left")  # = sum(breaks > p)
        k = idx[j]
        val += values[t, k]
        spend += unit_carbon[t, k] * ci[None, :, t]
    over = np.maximum(0.0, spend - budget_g)
    ev = (val - penalty_per_g * over).mean(axis=1)
    ties = np.flatnonzero(ev >= ev.max() - 1e-12 * max(1.0, abs(ev.max())))
    # prices that make the same choices are all optimal: take the one nearest the expected
    # marginal cost of a gram (the penalty, in the share of scenarios that overspend), so that
    # the first move weighs carbon as the window will (switching costs make that matter)
    target = penalty_per_g * float((over[ties[0]] > 0).mean())
    best = int(ties[np.argmin(np.abs(mus[ties] - target))])
    return float(mus[best]), {"expected_spend_g": float(spend[best].mean()),
                              "expected_overspend_g": float(over[best].mean()),
                              "scenarios_over_budget": float((over[best] > 0).mean())}
