"""Present an EvaluationResult: a rich table, JSON, and the files `--out` writes."""
from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path
from typing import Any

from clover_rl.errors import ConfigError
from clover_rl.evaluation.runner import BASE, ROW_FIELDS, SUMMARY_FIELDS, EvaluationResult
from clover_rl.llm import summary as llm_summary
from clover_rl.telemetry.table import Column, format_table, idle_slices, short_names

#: The evaluate table's columns; ``drop`` ranks say which go first at narrow widths (the full
#: set, at full precision, is in ``--json`` and ``--out``'s CSV).
COLUMNS: tuple[Column, ...] = (
    Column("policy", "policy", align="left", drop=0),
    Column("objective", "objective", "{:+.4f}", drop=0),
    Column("carbon_saving_pct", "saving %", "{:+.1f}", drop=0),
    Column("accuracy_drop_pct", "acc drop %", "{:+.2f}", drop=0),
    Column("sla_violation_pct", "SLA viol %", "{:.1f}", drop=0),
    Column("oracle_gap_pct", "oracle gap %", "{:.1f}", drop=1),
    Column("reconfigurations", "reconfigs", "{:d}", drop=1),
    Column("p95_ms", "p95 ms", "{:.0f}", drop=2),
    Column("carbon_per_request_g", "g/request", "{:.5f}", drop=2),
    Column("accuracy", "accuracy", "{:.2f}", drop=3),
    Column("carbon_g", "carbon g", "{:.1f}", drop=3),
    Column("p95_max_ms", "max p95 ms", "{:.0f}", drop=3),
)


def window_line(res: EvaluationResult) -> str:
    """What the table covers: scenario, trace, hours and intervals, dates, seed, SLA."""
    rows = res.runs[res.policies[0]].rows
    span = f", {str(rows[0]['time'])[:16]} .. {str(rows[-1]['time'])[:16]} UTC" if rows else ""
    per = "hourly" if res.interval_s == 3600 else f"of {res.interval_s:g} s"
    sla = (f"SLA p95 {res.sla_ms:.0f} ms" if res.tpot_sla_ms is None
           else f"SLA TTFT p95 {res.sla_ms:.0f} ms, TPOT p95 {res.tpot_sla_ms:.0f} ms")
    return (f"{res.scenario} on carbon trace {res.trace}: {res.hours} h = {res.intervals} intervals {per} "
            f"from #{res.start}{span}; seed {res.seed}; {sla}")


def notes(res: EvaluationResult) -> list[str]:
    """The lines that say how to read the table (estimated or measured; what it is relative to)."""
    out = []
    if res.estimated:
        out.append("figures are ESTIMATED (estimated profile or power model), not measured on hardware")
    else:
        out.append("figures are measured on the serving backend")
    ref = f"saving and accuracy drop vs {BASE}; oracle gap = (oracle - policy)/(oracle - base) objective"
    if res.references_only:
        refs = res.references_only
        ref += f" ({' and '.join(refs)} run as reference{'s' if len(refs) > 1 else ''}, not shown)"
    out.append(ref)
    if res.trace_provenance.startswith("file ") or "; file " in res.trace_provenance:
        out.append(f"carbon trace {res.trace_provenance}")  # which column and unit were read
    return out


def policy_names(res: EvaluationResult) -> dict[str, str]:
    """The short name of each requested policy spec (the table's and TensorBoard's)."""
    return short_names(res.policies)


def format_result(res: EvaluationResult, width: int | None = None) -> str:
    """One row per requested policy (short names), the window as title, then the notes; fits
    ``width`` (default: the terminal's, 80 when piped)."""
    names = policy_names(res)
    rows = [{"policy": names[p], **res.runs[p].summary} for p in res.policies]
    extra = [f"{n} = {p}" for p, n in names.items() if n != p]
    note = notes(res) + ([f"policies: {'; '.join(extra)}"] if extra else [])
    cols = COLUMNS if res.tpot_sla_ms is None else llm_summary.with_llm_columns(COLUMNS, "sla_violation_pct")
    return format_table(rows, cols, width=width, title=window_line(res), notes=note,
                        more="all figures: --json, or summary.csv with --out")


def render_table(res: EvaluationResult, file: Any = None, width: int | None = None) -> None:
    """Print :func:`format_result` to ``file`` (default stdout)."""
    print(format_result(res, width), file=file or sys.stdout)


def to_json_text(res: EvaluationResult) -> str:
    """Exactly one JSON object keyed by each policy spec as given."""
    return json.dumps(res.to_json(), indent=2, allow_nan=False)


def write_summary_csv(res: EvaluationResult, path: Path) -> None:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        fields = SUMMARY_FIELDS + (llm_summary.SUMMARY_FIELDS if res.tpot_sla_ms is not None else ())
        w.writerow(["policy", *fields, "estimated"])
        for p in res.policies:
            s = res.runs[p].summary
            w.writerow([p, *(_csv_val(s.get(k)) for k in fields), res.runs[p].estimated])


def write_intervals_csv(res: EvaluationResult, path: Path) -> None:
    """Long format (one row per policy and interval); variant shares as ``share_<variant>``;
    ``idle_slices`` lists the configuration's slices that served nothing in the interval."""
    llm = llm_summary.ROW_FIELDS if res.tpot_sla_ms is not None else ()
    cols = ["policy", "step", "action", *[f for f in ROW_FIELDS + llm if f != "variant_share"], "reward"]
    shares = [f"share_{v}" for v in res.variants]
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(cols + shares + ["idle_slices"])
        for p in res.policies:
            for r in res.runs[p].rows:
                vs = r.get("variant_share") or {}
                idle = idle_slices(str(r.get("config", "")), vs, r.get("served") or 0)
                w.writerow([p if c == "policy" else _csv_val(r.get(c)) for c in cols]
                           + [_csv_val(float(vs.get(v, 0.0))) for v in res.variants] + [",".join(idle)])


def _csv_val(v: Any) -> Any:
    if isinstance(v, float):
        return "" if not math.isfinite(v) else repr(v)
    return v


def write_outputs(res: EvaluationResult, out_dir: str | Path, *, plot: bool = True) -> dict[str, Path]:
    """summary.csv, summary.json (as `--json` prints), evaluation.json (window, references,
    timing), intervals.csv and evaluation.png under ``out_dir``."""
    out = Path(out_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out_dir}: exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"--out {out_dir}: cannot create directory ({e.strerror})") from None
    paths = {
        "summary_csv": out / "summary.csv",
        "summary_json": out / "summary.json",
        "evaluation_json": out / "evaluation.json",
        "intervals_csv": out / "intervals.csv",
    }
    write_summary_csv(res, paths["summary_csv"])
    paths["summary_json"].write_text(to_json_text(res) + "\n")
    paths["evaluation_json"].write_text(json.dumps(_json_safe(res.meta()), indent=2, allow_nan=False) + "\n")
    write_intervals_csv(res, paths["intervals_csv"])
    if plot:
        from clover_rl.telemetry.plots import plot_evaluation

        paths["plot"] = plot_evaluation(res, out / "evaluation.png")
    return paths


def _json_safe(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_safe(x) for x in v]
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


__all__ = [
    "COLUMNS",
    "format_result",
    "notes",
    "policy_names",
    "render_table",
    "to_json_text",
    "window_line",
    "write_intervals_csv",
    "write_outputs",
    "write_summary_csv",
]
