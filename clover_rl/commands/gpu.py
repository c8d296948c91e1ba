"""`clover-rl gpu ...`: read-only NVML view of a GPU's MIG mode, profiles and layout."""
from __future__ import annotations

import json
from typing import Any

import typer

from clover_rl.mig.manager import mig_query_report

gpu_app = typer.Typer(help="Inspect a GPU's MIG state through NVML (read-only).",
                      no_args_is_help=True)


def _summary(rep: dict[str, Any]) -> list[str]:
    """Human-readable lines of a query report."""
    head = (f"GPU {rep['gpu_index']}: {rep['name']} ({rep['memory_mb']} MiB, driver "
            f"{rep['driver_version'] or '?'}), catalog model {rep['catalog_model'] or 'none'}")
    lines = [head]
    mode = rep["mig_mode"]
    if mode is None:
        lines.append("MIG: not supported")
    else:
        pending = " (reset pending: " + mode["pending"] + " after reset)" if mode["reset_pending"] else ""
        lines.append(f"MIG: {mode['current']}{pending}")
    if rep["profiles"]:
        lines.append(f"profiles (from {rep['profiles_source']}):")
        for p in rep["profiles"]:
            starts = ",".join(str(s) for s, _ in p["placements"])
            lines.append(f"  {p['name']:<12} id {p['profile_id']:>2}  index {p['nvml_index']:>2}  "
                         f"{p['compute_slices']} compute / {p['memory_slices']} memory slices  "
                         f"{p['memory_mb']} MiB  {p['sm_count']} SMs  starts {starts}")
    diffs = rep["catalog_differences"]
    if rep.get("catalog_source"):
        lines.append(f"catalog facts from: {rep['catalog_source']}")
    lines.append("catalog check: " + ("matches" if not diffs else
                                      f"{len(diffs)} difference(s) (the hardware's figures are used)"))
    lines.extend(f"  {d}" for d in diffs)
    if rep["layout"] is not None:
        lines.append(f"layout: {rep['layout']['label']}")
        for gi in rep["layout"]["instances"]:
            uuids = ", ".join(c["uuid"] or "?" for c in gi["compute_instances"]) or "no compute instance"
            lines.append(f"  GI {gi['gi_id']:>2} {gi['profile']}@{gi['start']}  {uuids}")
    lines.extend(f"note: {e}" for e in rep["errors"])
    return lines


@gpu_app.command("query")
def query(
    index: int = typer.Option(0, "--index", "-i", help="GPU index as NVML numbers it"),
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON"),
) -> None:
    """Print GPU name, MIG mode, NVML profiles vs the catalog, and the current layout."""
    rep = mig_query_report(index)
    if as_json:
        print(json.dumps(rep, indent=2))
    else:
        print("\n".join(_summary(rep)))


def register(app: typer.Typer) -> None:
    app.add_typer(gpu_app, name="gpu")
