"""Present a benchmark SuiteResult: one table per case, the per-policy summary, CSV/JSON/PNG."""
from __future__ import annotations

import csv
import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

from clover_rl.evaluation.benchmark import FIELDS, LLM_FIELDS, PAPER, CaseResult, SuiteResult
from clover_rl.evaluation.report import COLUMNS as EVALUATE_COLUMNS
from clover_rl.llm.summary import with_llm_columns
from clover_rl.telemetry.table import Column, format_table, short_names

_EVAL = {c.key: c for c in EVALUATE_COLUMNS}
#: Per case: the evaluate table's figures (same headers and formats), SLA-violating intervals
#: as a count, and reconfigurations and the oracle gap always shown.
CASE_COLUMNS: tuple[Column, ...] = (
    *(_EVAL[k] for k in ("policy", "objective", "carbon_saving_pct", "accuracy_drop_pct")),
    Column("sla_intervals", "SLA viol", "{:d}", drop=0),
    replace(_EVAL["reconfigurations"], drop=0),
    replace(_EVAL["oracle_gap_pct"], drop=0),
)
SUMMARY_COLUMNS: tuple[Column, ...] = (
    Column("policy", "policy", align="left", drop=0),
    Column("median_gap_pct", "median gap %", "{:.1f}", drop=0),
    Column("worst_gap_pct", "worst gap %", "{:.1f}", drop=0),
    Column("gap_cases", "cases", "{:d}", drop=1),
    Column("objective_ge_paper", "obj >= clover", "{:d}", drop=0),
    Column("sla_le_paper", "SLA <= clover", "{:d}", drop=0),
    Column("reconfigs_le_paper", "reconf <= clover", "{:d}", drop=1),
)


def case_title(r: CaseResult) -> str:
    c = r.case
    return (f"{c.name}: {c.scenario}, carbon {r.trace} from {c.start} ({c.hours} h), "
            f"{c.load} load, SLA p95 {r.sla_ms:.0f} ms"
            + (f" TTFT, {r.tpot_sla_ms:.0f} ms TPOT" if r.tpot_sla_ms is not None else ""))


def format_case(r: CaseResult, width: int | None = None) -> str:
    names = short_names(r.rows)
    rows = [{"policy": names[p], **v} for p, v in r.rows.items()]
    notes = [f"{p} = {s}" for p, s in r.resolved.items()]
    llm = any("ttft_p95_ms" in v for v in r.rows.values())  # LLM cases: TTFT/TPOT/J per 1k tokens
    cols = with_llm_columns(CASE_COLUMNS, "sla_intervals", keys=LLM_FIELDS, demote=("reconfigurations",)) \
        if llm else CASE_COLUMNS
    return format_table(rows, cols, width=width, title=case_title(r), notes=notes)


def format_summary(res: SuiteResult, width: int | None = None) -> str:
    names = short_names(res.policies)
    rows = [{**s, "policy": names[s["policy"]]} for s in res.summary()]
    cols = SUMMARY_COLUMNS if PAPER in res.policies else SUMMARY_COLUMNS[:4]
    n = len(res.cases)
    est = any(c.estimated for c in res.cases)
    notes = [f"oracle gap = (oracle - policy) / (oracle - base) objective, over the cases where "
             f"the oracle beats base; counts are out of {n} cases",
             *(f"{names[s['policy']]}: below the oracle in {s['below_oracle_no_gap']} case(s) that have no "
               f"gap (the oracle does not beat base there)" for s in res.summary() if s.get("below_oracle_no_gap")),
             f"suite {res.version}, {n} case(s), {res.wall_s:.0f} s wall"
             + ("; figures ESTIMATED (profiles/power models), not measured" if est else "")]
    return format_table(rows, cols, width=width, title=f"benchmark suite {res.version}: per policy",
                        notes=notes)


def format_suite(res: SuiteResult, width: int | None = None) -> str:
    return "\n\n".join([*(format_case(c, width) for c in res.cases), format_summary(res, width)])


def _num(v: Any) -> Any:
    return None if isinstance(v, float) and not math.isfinite(v) else v


def to_json(res: SuiteResult) -> dict[str, Any]:
    return {
        "suite": res.version, "policies": res.policies, "wall_s": res.wall_s,
        "cases": [{**c.case.to_dict(), "trace": c.trace, "sla_ms": c.sla_ms,
                   **({"tpot_sla_ms": c.tpot_sla_ms} if c.tpot_sla_ms is not None else {}), "resolved": c.resolved,
                   "cpu_s": c.cpu_s, "wall_s": c.wall_s, "estimated": c.estimated,
                   "results": {p: {k: _num(v) for k, v in row.items()} for p, row in c.rows.items()}}
                  for c in res.cases],
        "summary": [{k: _num(v) for k, v in s.items()} for s in res.summary()],
    }


def write_outputs(res: SuiteResult, out_dir: str | Path, *, plot: bool = True) -> dict[str, Path]:
    """``benchmark.csv`` (one row per case x policy), ``benchmark.json``, ``benchmark.md`` (the
    README's table, :func:`to_markdown`) and ``benchmark.png``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out / "benchmark.csv", "json": out / "benchmark.json"}
    with paths["csv"].open("w", newline="") as f:
        w = csv.writer(f)
        fields = FIELDS + (LLM_FIELDS if any("ttft_p95_ms" in row for c in res.cases for row in c.rows.values())
                           else ())
        w.writerow(["suite", "case", "scenario", "grid", "start", "load", "policy", *fields])
        for c in res.cases:
            for p, row in c.rows.items():
                w.writerow([res.version, c.case.name, c.case.scenario, c.case.grid, c.case.start,
                            c.case.load, p, *(row.get(k, "") for k in fields)])
    paths["json"].write_text(json.dumps(to_json(res), indent=2) + "\n")
    paths["md"] = out / "benchmark.md"
    paths["md"].write_text(to_markdown(res))
    if plot:
        paths["png"] = plot_gaps(res, out / "benchmark.png")
    return paths


def _md(v: Any, fmt: str) -> str:
    return "-" if v is None or (isinstance(v, float) and not math.isfinite(v)) else fmt.format(v)


def to_markdown(res: SuiteResult) -> str:
    """One Markdown row per case, each metric's cells ``a / b / ...`` in the order of the policies
    (oracle gap and counts leave out ``base`` and ``oracle``: 100/0 by definition), then the
    per-policy summary as a sentence list -- the README's suite table, generated rather than
    copied by hand."""
    pols = [p for p in res.policies if p not in ("base", "oracle")]
    obj_pols = [p for p in res.policies if p != "base"]
    names = short_names(res.policies)

    def head(what: str, ps: list[str]) -> str:
        return f"{what}: {' / '.join(names[p] for p in ps)}"

    def cells(c: CaseResult, key: str, fmt: str, ps: list[str]) -> str:
        return " / ".join(_md(c.rows[p].get(key), fmt) for p in ps)

    lines = [f"| case | {head('oracle gap %', pols)} | {head('objective', obj_pols)} | "
             f"{head('SLA-violating intervals', pols)} | {head('reconfigurations', pols)} |",
             "|---|---|---|---|---|"]
    for c in res.cases:
        lines.append(f"| {c.case.name} | {cells(c, 'oracle_gap_pct', '{:.1f}', pols)} | "
                     f"{cells(c, 'objective', '{:+.4f}', obj_pols)} | {cells(c, 'sla_intervals', '{:.0f}', pols)} | "
                     f"{cells(c, 'reconfigurations', '{:.0f}', pols)} |")
    lines.append("")
    n = len(res.cases)
    for s in res.summary():
        if s["policy"] not in pols:
            continue
        g = [x for x in res.gaps(s["policy"]) if x > 15.0]
        text = (f"- {names[s['policy']]}: median / worst oracle gap {_md(s['median_gap_pct'], '{:.1f}')} / "
                f"{_md(s['worst_gap_pct'], '{:.1f}')}% over {s['gap_cases']} cases with a gap "
                f"({len(g)} over 15%)")
        if "objective_ge_paper" in s:
            text += (f"; objective >= clover's on {s['objective_ge_paper']}, SLA-violating intervals <= "
                     f"clover's on {s['sla_le_paper']}, reconfigurations <= clover's on "
                     f"{s['reconfigs_le_paper']} of {n}")
        lines.append(text)
    lines.append(f"\nsuite {res.version}, {n} case(s), {res.wall_s:.0f} s wall, "
                 f"{sum(c.cpu_s for c in res.cases):.0f} s CPU")
    return "\n".join(lines) + "\n"


def plot_gaps(res: SuiteResult, path: Path) -> Path:
    """Oracle gap per case (one marker series per policy; BASE/ORACLE left out: 100 and 0)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    pols = [p for p in res.policies if p not in ("base", "oracle")]
    names = short_names(res.policies)
    fig, ax = plt.subplots(figsize=(max(8.0, 0.5 * len(res.cases) + 3), 4.5))
    x = np.arange(len(res.cases))
    for i, p in enumerate(pols):
        g = np.array([c.rows[p].get("oracle_gap_pct", math.nan) for c in res.cases], dtype=float)
        ax.plot(x + (i - (len(pols) - 1) / 2) * 0.12, np.clip(g, -50, 200), "o", label=names[p])
    ax.axhline(0, color="k", lw=0.8)
    ax.axhline(15, color="r", lw=0.8, ls="--", label="15% (worst-case target)")
    ax.axhline(100, color="grey", lw=0.8, ls=":", label="base (100%)")
    ax.set_xlim(-0.5, len(res.cases) - 0.5)  # a slot per case (autoscale spreads 1 case's markers edge to edge)
    ax.set_xticks(x)
    ax.set_xticklabels([c.case.name for c in res.cases], rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("oracle gap % (clipped to [-50, 200])")
    ax.set_title(f"benchmark suite {res.version}: oracle gap per case (lower is better)")
    ax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
