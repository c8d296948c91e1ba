"""Forecast error per shipped grid and horizon: the model forecaster, persistence and (CAISO)
the provider's issued SGIP forecasts, side by side on the same hours.

    python benchmarks/forecast_error.py [--period eval] [--horizons 1,2,3,6,12,24]

Prints MAPE (mean |e| / y over hours with y >= 1 g/kWh) and WAPE (sum |e| / sum y, defined
when the trace reaches 0, as marginal traces do) in percent. Every forecast at step t reads
only steps <= t (see clover_rl/carbon/forecast.py).
"""
from __future__ import annotations

import argparse

import numpy as np

from clover_rl.carbon.forecast import DAYS, TAU_H, forecast_for, model_forecast
from clover_rl.carbon.shipped import GRIDS, grids, load_issued_forecast, load_shipped


def errors(y: np.ndarray, f: np.ndarray) -> tuple[float, float]:
    ok = y >= 1.0
    mape = float(np.mean(np.abs(f[ok] - y[ok]) / y[ok]) * 100)
    wape = float(np.sum(np.abs(f - y)) / np.sum(y) * 100)
    return mape, wape


def table(period: str, horizons: list[int], days: int, tau: float, quiet: bool = False) -> dict:
    hmax = max(horizons)
    out: dict = {}
    for name in grids():
        g = GRIDS[name]
        if period == "train" and g.role == "heldout":
            continue
        full = load_shipped(name)  # history before the period feeds the forecaster
        lo, hi = g.period_bounds(period)
        idx = np.nonzero((full.times >= np.datetime64(lo)) & (full.times < np.datetime64(hi)))[0]
        idx = idx[idx + hmax < len(full)]
        model = model_forecast(full.values, hmax, 24, days, tau)
        rows = {"model": model, "persistence": np.repeat(full.values[:, None], hmax, axis=1)}
        if load_issued_forecast(name) is not None:
            rows["provider+model"] = forecast_for(full, hmax, "auto").values
        for label, f in rows.items():
            for h in horizons:
                y = full.values[idx + h]
                out[(name, label, h)] = errors(y, f[idx, h - 1])
        if not quiet:
            for label in rows:
                cells = "  ".join(f"{out[(name, label, h)][0]:5.1f}/{out[(name, label, h)][1]:5.1f}" for h in horizons)
                print(f"{name:<10} {g.kind:<8} {label:<15} {cells}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--period", default="eval", choices=["train", "eval"])
    ap.add_argument("--horizons", default="1,2,3,6,12,24")
    ap.add_argument("--days", type=int, default=DAYS)
    ap.add_argument("--tau", type=float, default=TAU_H)
    a = ap.parse_args()
    hs = [int(x) for x in a.horizons.split(",")]
    print(f"period {a.period}; model: days={a.days}, tau={a.tau:g} h; cells: MAPE/WAPE % at horizon (h) "
          + " ".join(str(h) for h in hs))
    table(a.period, hs, a.days, a.tau)


if __name__ == "__main__":
    main()
