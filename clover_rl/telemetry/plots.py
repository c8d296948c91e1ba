"""Figures of evaluations: carbon intensity, each policy's variant mix, and carbon over time.

Drawn with matplotlib's object API on an Agg canvas (no pyplot), so plotting never touches
a user's interactive backend or global figure state.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from clover_rl.errors import ConfigError

if TYPE_CHECKING:
    from clover_rl.evaluation.runner import EvaluationResult


def _times(rows: list[dict]) -> np.ndarray:
    """Interval start times, plus the end of the last one (for step plots)."""
    try:
        t = np.array([np.datetime64(str(r["time"]), "s") for r in rows])
    except (ValueError, KeyError):
        t = np.arange(len(rows)).astype("datetime64[h]").astype("datetime64[s]")
    step = t[1] - t[0] if len(t) > 1 else np.timedelta64(3600, "s")
    return np.append(t, t[-1] + step)


def variant_level(share: dict[str, float], variants: tuple[str, ...]) -> float:
    """Request-weighted position of the served variants, 0 = smallest .. n-1 = largest."""
    total = sum(share.get(v, 0.0) for v in variants)
    if total <= 0:
        return float("nan")
    return sum(i * share.get(v, 0.0) for i, v in enumerate(variants)) / total


def plot_evaluation(res: EvaluationResult, path: str | Path, *, dpi: int = 110) -> Path:
    """Three panels over the evaluation window, one line per requested policy:
    carbon intensity; the served variant mix (request-weighted variant level); carbon per interval.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    first = res.runs[res.policies[0]].rows
    if not first:
        raise ConfigError("nothing to plot: the evaluation has no intervals")
    t = _times(first)
    fig = Figure(figsize=(11, 8.5), constrained_layout=True)
    FigureCanvasAgg(fig)
    ax_ci, ax_mix, ax_c = fig.subplots(3, 1, sharex=True)

    ci = np.array([float(r["ci"]) for r in first])
    ax_ci.plot(t, np.append(ci, ci[-1]), drawstyle="steps-post", color="black")
    ax_ci.set_ylabel("carbon intensity\n(g/kWh)")
    ax_ci.set_title(f"{res.scenario} on {res.trace}, {res.hours} intervals from {res.start}"
                    + (" (estimated)" if res.estimated else ""))

    n_var = len(res.variants)
    for k, p in enumerate(res.policies):
        rows = res.runs[p].rows
        tt = _times(rows)
        lvl = np.array([variant_level(r.get("variant_share") or {}, res.variants) for r in rows])
        # Small vertical offsets keep identical mixes (e.g. base and oracle at night) visible.
        off = (k - (len(res.policies) - 1) / 2) * 0.04
        ax_mix.plot(tt, np.append(lvl, lvl[-1]) + off, drawstyle="steps-post", label=p, lw=1.6)
        carbon = np.array([float(r["carbon_g"]) for r in rows])
        ax_c.plot(tt, np.append(carbon, carbon[-1]), drawstyle="steps-post", label=p, lw=1.4)
    ax_mix.set_yticks(range(n_var), list(res.variants))
    ax_mix.set_ylim(-0.5, n_var - 0.5)
    ax_mix.set_ylabel("served variant mix\n(request-weighted)")
    ax_mix.legend(loc="upper left", ncol=min(len(res.policies), 5), fontsize="small")
    ax_c.set_ylabel("carbon per interval\n(g CO2)")
    ax_c.set_xlabel("time (UTC)")
    ax_c.legend(loc="upper left", ncol=min(len(res.policies), 5), fontsize="small")
    for ax in (ax_ci, ax_mix, ax_c):
        ax.grid(alpha=0.3)
    fig.autofmt_xdate()

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi)
    return out
