"""Figures of evaluations: carbon intensity, each policy's variant mix, p95 vs SLA and carbon over time.

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


#: Line widths, widest first: a line drawn over an identical one leaves the wider one showing
#: as a border, so no policy's line disappears behind another's.
_WIDTHS = (5.0, 3.4, 2.2, 1.3, 0.8)


def _lines(ax, t: np.ndarray, series: dict[str, np.ndarray]) -> None:
    """Step lines, one per policy, widest first; a series equal to an earlier one says so in
    its legend label (``oracle (= efficientnet)``) instead of being silently hidden."""
    seen: list[tuple[str, np.ndarray]] = []
    for k, (name, y) in enumerate(series.items()):
        same = next((n for n, v in seen if v.shape == y.shape and np.allclose(v, y, equal_nan=True)), None)
        label = f"{name} (= {same})" if same else name
        ax.plot(t, np.append(y, y[-1]), drawstyle="steps-post", label=label,
                lw=_WIDTHS[min(k, len(_WIDTHS) - 1)], alpha=0.9, solid_capstyle="butt")
        seen.append((name, y))


def title_of(res: EvaluationResult) -> str:
    """``scenario: trace, first .. last UTC (N h, M intervals), replay, estimated``."""
    rows = res.runs[res.policies[0]].rows
    span = f"{str(rows[0]['time'])[:16]} .. {str(rows[-1]['time'])[:16]} UTC" if rows else ""
    per = "" if res.interval_s == 3600 else f" of {res.interval_s:g} s"
    return (f"{res.scenario}: carbon trace {res.trace}, {span} ({res.hours} h, {res.intervals} intervals{per}), "
            f"seed {res.seed}" + (" -- figures estimated" if res.estimated else ""))


def plot_evaluation(res: EvaluationResult, path: str | Path, *, dpi: int = 110) -> Path:
    """Four panels over the evaluation window, one line per requested policy (names as in the
    table): carbon intensity; the served variant mix (request-weighted variant level, no
    offsets: identical lines are drawn widest first and labelled ``(= other)``); p95 against
    the SLA; carbon per interval. The title names the scenario, trace, dates and length.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from clover_rl.telemetry.table import short_names

    first = res.runs[res.policies[0]].rows
    if not first:
        raise ConfigError("nothing to plot: the evaluation has no intervals")
    t = _times(first)
    fig = Figure(figsize=(11, 10.5), constrained_layout=True)
    FigureCanvasAgg(fig)
    ax_ci, ax_mix, ax_lat, ax_c = fig.subplots(4, 1, sharex=True)

    ci = np.array([float(r["ci"]) for r in first])
    ax_ci.plot(t, np.append(ci, ci[-1]), drawstyle="steps-post", color="black")
    ax_ci.set_ylabel("carbon intensity\n(g/kWh)")
    fig.suptitle(title_of(res), fontsize="medium")

    names = short_names(res.policies)
    runs = {names[p]: res.runs[p].rows for p in res.policies}
    n_var = len(res.variants)
    _lines(ax_mix, t, {n: np.array([variant_level(r.get("variant_share") or {}, res.variants) for r in rows])
                       for n, rows in runs.items()})
    ax_mix.set_yticks(range(n_var), list(res.variants))
    ax_mix.set_ylim(-0.5, n_var - 0.5)
    ax_mix.set_ylabel("served variant\n(request-weighted)")
    _lines(ax_lat, t, {n: np.array([float(r["p95_ms"]) for r in rows]) for n, rows in runs.items()})
    ax_lat.axhline(res.sla_ms, color="tab:red", ls="--", lw=1.2, label=f"SLA {res.sla_ms:.0f} ms")
    ax_lat.set_ylabel("p95 latency\n(ms)")
    _lines(ax_c, t, {n: np.array([float(r["carbon_g"]) for r in rows]) for n, rows in runs.items()})
    ax_c.set_ylabel("carbon per interval\n(g CO2)")
    ax_c.set_xlabel("time (UTC)")
    top = max(res.sla_ms, max((float(np.nanmax(ln.get_ydata())) for ln in ax_lat.get_lines()
                               if np.isfinite(np.asarray(ln.get_ydata(), dtype=float)).any()), default=0.0))
    ax_lat.set_ylim(0, top * 1.15)  # the SLA line clear of the frame
    for ax in (ax_mix, ax_lat, ax_c):  # beside the panels, never over a line
        ax.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize="small", borderaxespad=0)
    for ax in (ax_ci, ax_mix, ax_lat, ax_c):
        ax.grid(alpha=0.3)
    fig.autofmt_xdate()

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi)
    return out
