"""Summaries of a deployment from its state folder: a table, CSV/JSON files and a PNG over time.

Everything comes from ``decisions.jsonl`` (and ``state.json`` for the counters), so a report
can be made while the deployment runs, after it stopped, or from a copied folder.
"""
from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from clover_rl.controller.state import LOG_FILE, STATE_FILE, read_log
from clover_rl.errors import ConfigError
from clover_rl.telemetry.table import (
    Column,
    compact_config,
    format_pairs,
    format_table,
    format_value,
    idle_slices,
    short_name,
)

COLUMNS = ("index", "start", "duration_s", "ci", "stale", "config", "idle_slices", "source", "served", "dropped",
           "p95_ms", "sla_ms", "accuracy", "energy_j", "carbon_g", "carbon_per_request_g", "reward", "guard_active")


@dataclass
class DeploymentReport:
    state_dir: Path
    rows: list[dict[str, Any]]
    events: list[dict[str, Any]]
    summary: dict[str, Any]
    counters: dict[str, int] = field(default_factory=dict)


def _combine(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One row per interval index (a restart may have logged it in parts)."""
    first, last = parts[0], parts[-1]
    served = sum(int(p["metrics"].get("served", 0)) for p in parts)
    w = [max(int(p["metrics"].get("served", 0)), 0) for p in parts]
    tw = sum(w) or 1

    def wmean(key: str) -> float:
        vals = [float(p["metrics"].get(key) or 0.0) for p in parts]
        return float(sum(v * x for v, x in zip(vals, w)) / tw) if sum(w) else float("nan")

    carbon = sum(float(p["outcome"].get("carbon_g") or 0.0) for p in parts)
    sla = float(last.get("sla_ms") or float("nan"))
    p95 = max(float(p["metrics"].get("p95_ms") or 0.0) for p in parts) if served else float("nan")
    rewards = [float(p["outcome"]["reward"]) for p in parts if p["outcome"].get("reward") is not None]
    row = {
        "index": int(first["index"]),
        "start": datetime.fromtimestamp(float(first["started_at"]), timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
        "t": float(first["started_at"]),
        "duration_s": sum(float(p["metrics"].get("duration_s") or 0.0) for p in parts),
        "ci": float(first.get("ci") or float("nan")),
        "stale": any(bool(p.get("stale")) for p in parts),
        "config": last.get("config", ""),
        "source": first.get("source") or "",
        "served": served,
        "dropped": sum(int(p["metrics"].get("dropped", 0)) for p in parts),
        "p95_ms": p95,
        "sla_ms": sla,
        "accuracy": wmean("accuracy"),
        "energy_j": sum(float(p["metrics"].get("energy_j") or 0.0) for p in parts),
        "carbon_g": carbon,
        "carbon_per_request_g": carbon / served if served else float("nan"),
        "reward": float(np.mean(rewards)) if rewards else float("nan"),
        "guard_active": any(bool(p.get("guard_active")) for p in parts),
        "estimated": any(bool(p["metrics"].get("estimated")) for p in parts),
        "partial": all(bool(p.get("partial")) for p in parts),
        "variant_share": last["metrics"].get("variant_share") or {},
    }
    row["idle_slices"] = ",".join(idle_slices(row["config"], row["variant_share"], served))
    return row


def load_report(state_dir: str | Path) -> DeploymentReport:
    d = Path(state_dir).expanduser()
    if not d.is_dir():
        raise ConfigError(f"--state {d}: no such folder")
    log_path = d / LOG_FILE
    if not log_path.exists():
        raise ConfigError(f"--state {d}: no {LOG_FILE} here (not a clover-rl deployment state folder)")
    by_index: dict[int, list[dict[str, Any]]] = {}
    events: list[dict[str, Any]] = []
    for rec in read_log(log_path):
        if rec.get("kind") == "interval" and isinstance(rec.get("metrics"), dict) and isinstance(rec.get("outcome"), dict):
            by_index.setdefault(int(rec["index"]), []).append(rec)
        else:
            events.append(rec)
    rows = [_combine(parts) for _, parts in sorted(by_index.items())]
    counters: dict[str, int] = {}
    state: dict[str, Any] = {}
    if (d / STATE_FILE).exists():
        try:
            state = json.loads((d / STATE_FILE).read_text())
            counters = {k: int(v) for k, v in (state.get("counters") or {}).items()}
        except (OSError, ValueError):
            pass
    starts = [e for e in events if e.get("kind") in ("start", "resume")]
    carbon = ""
    if (d / "carbon_origin.json").exists():
        try:
            carbon = str(json.loads((d / "carbon_origin.json").read_text()).get("carbon") or "")
        except (OSError, ValueError):
            carbon = ""
    summary: dict[str, Any] = {
        "scenario": state.get("scenario") or (starts[0].get("scenario") if starts else None),
        "policy": state.get("policy") or (starts[-1].get("policy") if starts else None),
        "config_now": state.get("config"),
        "carbon_source": carbon or (starts[-1].get("carbon_source") if starts else None),
        "interval_s": float(starts[-1]["interval_s"]) if starts and starts[-1].get("interval_s") else None,
        "intervals": len(rows),
        "intervals_partial": sum(1 for r in rows if r["partial"]),
        "span": f"{rows[0]['start']} .. {datetime.fromtimestamp(rows[-1]['t'] + rows[-1]['duration_s'], timezone.utc):%Y-%m-%d %H:%M:%S}"
        if rows else "",
        "served": sum(r["served"] for r in rows),
        "dropped": sum(r["dropped"] for r in rows),
        "energy_kwh": sum(r["energy_j"] for r in rows) / 3.6e6,
        "carbon_g": sum(r["carbon_g"] for r in rows),
        "mean_ci": float(np.mean([r["ci"] for r in rows])) if rows else float("nan"),
        "stale_intervals": sum(r["stale"] for r in rows),
        "sla_violations": sum(1 for r in rows if r["served"] and r["p95_ms"] > r["sla_ms"]),
        "guard_triggers": sum(1 for e in events if e.get("kind") == "guard" and e.get("event") == "trigger"),
        "rollbacks": sum(1 for e in events if e.get("kind") == "rollback"),
        "restarts": sum(1 for e in events if e.get("kind") == "resume"),
        "estimated": any(r["estimated"] for r in rows),
    }
    served = summary["served"]
    summary["carbon_per_request_g"] = summary["carbon_g"] / served if served else float("nan")
    acc = [(r["accuracy"], r["served"]) for r in rows if r["served"]]
    rewards = [r["reward"] for r in rows if math.isfinite(r["reward"])]
    summary["reward"] = float(np.mean(rewards)) if rewards else float("nan")
    summary["accuracy"] = float(sum(a * n for a, n in acc) / sum(n for _, n in acc)) if acc else float("nan")
    return DeploymentReport(d, rows, events, summary, counters)


#: (summary key, label, format) of the report's summary block.
SUMMARY_LINES: tuple[tuple[str, str, str], ...] = (
    ("scenario", "scenario", "{}"), ("policy", "policy", "{}"), ("config_now", "configuration now", "{}"),
    ("intervals", "intervals logged", "{}"), ("intervals_partial", "of which partial (stopped mid-interval)", "{}"),
    ("span", "span (UTC)", "{}"),
    ("served", "requests answered in them", "{}"), ("dropped", "requests with an error status", "{}"),
    ("energy_kwh", "energy (kWh)", "{:.4g}"), ("carbon_g", "carbon (g CO2)", "{:.4g}"),
    ("carbon_per_request_g", "carbon per request (g)", "{:.4g}"),
    ("accuracy", "accuracy (request-weighted)", "{:.2f}"), ("mean_ci", "mean carbon intensity (g/kWh)", "{:.0f}"),
    ("reward", "mean reward", "{:+.4f}"), ("sla_violations", "intervals over the SLA", "{}"),
    ("guard_triggers", "SLA guard triggers", "{}"), ("rollbacks", "failed reconfigurations rolled back", "{}"),
    ("stale_intervals", "intervals on a stale reading", "{}"), ("restarts", "controller restarts", "{}"),
)

#: The per-interval table; flags: * stale reading, ! p95 over the SLA, G guard active.
INTERVAL_COLUMNS: tuple[Column, ...] = (
    Column("index", "#", "{}", drop=0),
    Column("start_short", "start UTC", "{}", drop=1, align="left"),
    Column("ci_cell", "CI g/kWh", "{}", drop=0),
    Column("config_short", "configuration", "{}", drop=0, align="left"),
    Column("by", "by", "{}", drop=1, align="left"),
    Column("served", "served", "{}", drop=1),
    Column("p95_cell", "p95 ms", "{}", drop=0),
    Column("sla_ms", "SLA ms", "{:.0f}", drop=2),
    Column("accuracy", "acc", "{:.2f}", drop=3),
    Column("carbon_g", "carbon g", "{:.3g}", drop=1),
    Column("reward", "reward", "{:+.4f}", drop=0),
)


def format_report(rep: DeploymentReport, max_rows: int = 48, width: int | None = None) -> str:
    """The summary block, then the last ``max_rows`` intervals, fitted to ``width`` columns
    (default: the terminal's, 80 when piped); full precision is in intervals.csv/summary.json."""
    s = rep.summary
    pairs = [(label, format_value(f, s.get(key))) for key, label, f in SUMMARY_LINES]
    if rep.counters:
        pairs.append(("reconfigurations", str(rep.counters.get("reconfigurations", 0))))
    pairs.append(("note", "requests before the first interval or after the last are not in any interval; "
                          "deploy's load-generator line counts them too"))
    title = f"deployment {rep.state_dir}" + (" (energy estimated)" if s["estimated"] else "")
    parts = [format_pairs(pairs, width=width, title=title)]
    rows = rep.rows[-max_rows:]
    if not rows:
        return "\n".join([*parts, "no finished intervals yet"])
    cells = [{**r, "start_short": r["start"][11:], "config_short": compact_config(r["config"])
              + ("" if not (idle := idle_slices(r["config"], r["variant_share"], r["served"]))
                 else f" (idle {compact_config(','.join(idle))})"),
              "ci_cell": format_value("{:.0f}", r["ci"]) + ("*" if r["stale"] else ""),
              "p95_cell": format_value("{:.0f}", r["p95_ms"])
              + ("!" if r["served"] and r["p95_ms"] > r["sla_ms"] else ""),
              "by": r["source"] + (" G" if r["guard_active"] else "")} for r in rows]
    title = f"intervals ({len(rows)} of {len(rep.rows)})" if len(rows) < len(rep.rows) else "intervals"
    parts.append("")
    parts.append(format_table(cells, INTERVAL_COLUMNS, width=width, title=title, notes=[
        "* stale carbon reading; ! p95 over the SLA; G SLA guard active; by: who chose the configuration"],
        more="all columns: intervals.csv"))
    return "\n".join(parts)


def closing_line(rep: DeploymentReport) -> str:
    """The line deploy ends with, in the report's own terms, so the two agree."""
    s = rep.summary
    part = f" ({s['intervals_partial']} partial)" if s.get("intervals_partial") else ""
    return (f"intervals logged: {s['intervals']}{part}; requests answered in them: {s['served']} "
            f"(as clover-rl report counts them)")


def write_csv(rep: DeploymentReport, path: Path) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        for r in rep.rows:
            w.writerow([r[c] for c in COLUMNS])
    return path


def time_axis_label(summary: dict[str, Any]) -> str:
    """The x axis: wall-clock time, and what an interval stands for when a trace is replayed
    faster than real time (``file:...,speed=N``)."""
    m = re.search(r"speed=([\d.]+)", str(summary.get("carbon_source") or ""))
    step = summary.get("interval_s")
    if not m or not step:
        return "wall-clock time (UTC)"
    trace_s = float(m.group(1)) * float(step)
    span = f"{trace_s / 3600:g} trace hour" + ("" if trace_s == 3600 else "s") if trace_s >= 3600 \
        else f"{trace_s / 60:g} trace minutes"
    return (f"wall-clock time (UTC); carbon trace replayed {float(m.group(1)):g}x faster: "
            f"each {float(step):g} s interval = {span}")


def plot(rep: DeploymentReport, path: Path, variants: tuple[str, ...] | None = None, dpi: int = 110) -> Path:
    """Four panels over time: carbon intensity, served variant mix, p95 vs SLA, carbon per interval."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = rep.rows
    if not rows:
        raise ConfigError(f"--state {rep.state_dir}: nothing to plot yet (no finished interval)")
    t = np.array([np.datetime64(int(r["t"]), "s") for r in rows])
    dur = np.array([max(r["duration_s"], 1.0) for r in rows])
    t_end = t[-1] + np.timedelta64(int(dur[-1]), "s")
    tt = np.append(t, t_end)

    def steps(vals: list[float]) -> np.ndarray:
        v = np.asarray(vals, dtype=float)
        return np.append(v, v[-1])

    fig = Figure(figsize=(11, 9), constrained_layout=True)
    FigureCanvasAgg(fig)
    ax_ci, ax_mix, ax_lat, ax_c = fig.subplots(4, 1, sharex=True)
    s = rep.summary
    ax_ci.plot(tt, steps([r["ci"] for r in rows]), drawstyle="steps-post", color="black")
    stale = [i for i, r in enumerate(rows) if r["stale"]]
    if stale:
        ax_ci.plot(t[stale], [rows[i]["ci"] for i in stale], "x", color="tab:red", label="stale reading")
        ax_ci.legend(loc="upper right", fontsize=8)
    ax_ci.set_ylabel("carbon intensity\n(g/kWh)")
    pol = short_name(str(s.get("policy") or ""))  # the name evaluate's table and TensorBoard use
    ax_ci.set_title(f"{s.get('scenario')} deployment, policy {pol}"
                    + (" (energy estimated)" if s["estimated"] else ""))

    names = variants or tuple(sorted({v for r in rows for v in r["variant_share"]}))
    level = []
    for r in rows:
        share = r["variant_share"]
        tot = sum(share.get(v, 0.0) for v in names)
        level.append(sum(i * share.get(v, 0.0) for i, v in enumerate(names)) / tot if tot else float("nan"))
    ax_mix.plot(tt, steps(level), drawstyle="steps-post", color="tab:green")
    if names:
        ax_mix.set_yticks(range(len(names)))
        ax_mix.set_yticklabels(names)
    ax_mix.set_ylabel("served variant\n(request-weighted)")
    changes = [i for i, r in enumerate(rows) if i == 0 or r["config"] != rows[i - 1]["config"]]
    for i in changes:  # inside the panel: at its top, clipped to it, right-aligned near the end
        right = i > 0.6 * len(rows)
        ax_mix.annotate(compact_config(rows[i]["config"]), (t[i], 1.0), xycoords=("data", "axes fraction"),
                        xytext=(-2 if right else 2, -3), textcoords="offset points", va="top",
                        ha="right" if right else "left", fontsize=7, annotation_clip=True, clip_on=True)
    if names:
        ax_mix.set_ylim(-0.5, len(names) - 0.5 + 0.6)  # room for the labels above the top variant

    ax_lat.plot(tt, steps([r["p95_ms"] for r in rows]), drawstyle="steps-post", color="tab:blue", label="p95")
    ax_lat.plot(tt, steps([r["sla_ms"] for r in rows]), drawstyle="steps-post", color="tab:red", ls="--", label="SLA")
    for e in rep.events:
        if e.get("kind") == "guard" and e.get("event") == "trigger":
            ax_lat.axvline(np.datetime64(int(e["time"]), "s"), color="tab:orange", lw=1)
        if e.get("kind") == "rollback":
            ax_lat.axvline(np.datetime64(int(e["time"]), "s"), color="tab:purple", lw=1, ls=":")
    ax_lat.set_ylabel("latency (ms)")
    ax_lat.legend(loc="upper right", fontsize=8)

    ax_c.bar(t, [r["carbon_g"] for r in rows], width=dur / 86400.0, align="edge", color="tab:gray")
    ax_c.set_ylabel("carbon per\ninterval (g)")
    ax_c.set_xlabel(time_axis_label(s))
    fig.savefig(path, dpi=dpi)
    return path


def write_outputs(rep: DeploymentReport, out: str | Path) -> dict[str, Path]:
    d = Path(out).expanduser()
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"--out {d}: cannot create ({e.strerror})") from None
    paths = {"csv": write_csv(rep, d / "intervals.csv")}
    summ = {**rep.summary, "counters": rep.counters}
    (d / "summary.json").write_text(json.dumps({k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                                                for k, v in summ.items()}, indent=2) + "\n")
    paths["json"] = d / "summary.json"
    if rep.rows:
        paths["png"] = plot(rep, d / "deployment.png", variants=_variants(rep))
    return paths


def _variants(rep: DeploymentReport) -> tuple[str, ...] | None:
    """The service's variant order (smallest first), when its scenario can still be loaded."""
    try:
        from clover_rl.scenario import load_scenario

        return tuple(load_scenario(str(rep.summary["scenario"])).service_spec().variant_names)
    except Exception:
        return None
