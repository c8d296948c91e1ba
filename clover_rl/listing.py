"""What ships with clover-rl, by kind, for `clover-rl list`: scenarios, services, carbon traces,
policies and GPU models, read from the library's own registries (config folders, shipped trace
files, the policy registry, checkpoint metadata, the MIG catalog) -- nothing is typed twice.

:func:`listing` returns ``(rows, columns)``: JSON-ready dicts and the table columns to show them.
"""
from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from clover_rl.errors import ConfigError
from clover_rl.telemetry.table import Column

Listing = tuple[list[dict[str, Any]], tuple[Column, ...]]


def _first_line(doc: str | None) -> str:
    """A docstring's first sentence as plain text: no ``code`` marks, no parenthesised code, no
    Sphinx roles (:func:`x` -> x) and no "(see the module docstring)" pointers to source."""
    text = " ".join((doc or "").strip().split("\n\n")[0].split())
    text = re.sub(r"\s*\(``[^`]*``\)", "", text).replace("``", "")
    text = re.sub(r":[a-z]+:`~?([^`]*)`", r"\1", text)
    text = re.sub(r"\s*\(see the module docstring\)", "", text)
    return text.split(". ")[0].rstrip(".")


def scenarios() -> Listing:
    from clover_rl.scenario import list_scenarios, load_scenario

    rows = []
    for name in list_scenarios():
        sc = load_scenario(name)
        rows.append({"name": name, "service": sc.service, "gpus": f"{sc.gpus} x {sc.gpu}",
                     "load_rps": sc.workload.mean_rate(), "carbon": f"{sc.carbon.trace}:{sc.carbon.period}",
                     "interval_s": sc.control_interval_s, "sla_ms": sc.sla_ms,
                     "sla": "BASE p95" if sc.sla_ms is None else f"{sc.sla_ms:.0f} ms"})
    cols = (Column("name", "name", align="left", drop=0), Column("service", "service", align="left", drop=0),
            Column("gpus", "GPUs", align="left", drop=0), Column("load_rps", "load req/s", "{:g}", drop=0),
            Column("carbon", "carbon trace", align="left", drop=1),
            Column("interval_s", "interval s", "{:g}", drop=2),
            Column("sla", "SLA", align="left", drop=3))
    return rows, cols


def services() -> Listing:
    from clover_rl.services import list_services, load_service

    rows = []
    for name in list_services():
        s = load_service(name)
        order = sorted(s.variants, key=lambda v: v.accuracy)
        rows.append({"name": name, "task": s.task, "request": s.request.kind,
                     "variants": ",".join(v.name for v in order),
                     "accuracy": f"{order[0].accuracy:g}..{order[-1].accuracy:g} {s.metric}"})
    cols = (Column("name", "name", align="left", drop=0), Column("task", "task", align="left", drop=2),
            Column("request", "request", align="left", drop=3),
            Column("variants", "variants (small to large)", align="left", drop=0),
            Column("accuracy", "accuracy", align="left", drop=1))
    return rows, cols


def traces() -> Listing:
    from clover_rl.carbon.shipped import GRIDS, list_shipped

    rows = []
    for name in list_shipped():
        g = GRIDS.get(name)
        if g is None:
            rows.append({"name": name, "kind": "-", "role": "-", "eval": "-", "use_as": name, "shape": "-"})
            continue
        lo, hi = g.period_bounds("eval")
        use = f"{name}:train, {name}:eval" if g.role == "train" else f"{name}:eval"
        rows.append({"name": name, "kind": g.kind, "role": g.role, "eval": f"{lo}..{hi}", "use_as": use,
                     "shape": g.shape, "title": g.title, "span": f"{g.span[0]}..{g.span[1]}", "source": g.source})
    cols = (Column("name", "name", align="left", drop=0), Column("kind", "kind", align="left", drop=0),
            Column("role", "role", align="left", drop=0), Column("eval", "eval period", align="left", drop=1),
            Column("use_as", "use as", align="left", drop=3),
            Column("shape", "shape", align="left", drop=2, wrap=True))
    return rows, cols


def policies() -> Listing:
    from clover_rl.agents.registry import builtin_policies
    from clover_rl.paths import checkpoints_dir

    rows = [{"name": name, "kind": "built-in",
             "about": _first_line(f.__doc__) + (" (the default controller)" if name == "mpc" else "")}
            for name, f in builtin_policies().items()]
    d = checkpoints_dir()
    for run in sorted(p for p in d.iterdir() if p.is_dir()) if d.is_dir() else []:
        meta: dict[str, Any] = {}
        if (run / "metadata.json").exists():
            try:
                meta = json.loads((run / "metadata.json").read_text())
            except ValueError:
                meta = {}
        about = f"trained {meta.get('algo', 'policy')} for scenario {meta.get('scenario', run.name)}"
        rows.append({"name": f"checkpoints/{run.name}", "kind": "checkpoint", "about": about})
    cols = (Column("name", "--policy", align="left", drop=0), Column("kind", "kind", align="left", drop=1),
            Column("about", "what it does", align="left", drop=2, wrap=True))
    return rows, cols


def gpus() -> Listing:
    from clover_rl.mig.catalog import GPUS

    rows = [{"name": g.name, "product": g.product, "memory_gb": g.memory_mb / 1024, "sms": g.sm_count,
             "mig_profiles": " ".join(p.name for p in g.profiles if not p.extended)} for g in GPUS.values()]
    cols = (Column("name", "--gpu", align="left", drop=0), Column("product", "product", align="left", drop=2),
            Column("memory_gb", "GiB", "{:.0f}", drop=1), Column("sms", "SMs", "{:d}", drop=3),
            Column("mig_profiles", "MIG profiles", align="left", drop=0))
    return rows, cols


KINDS: dict[str, Callable[[], Listing]] = {
    "scenarios": scenarios, "services": services, "traces": traces, "policies": policies, "gpus": gpus,
}


def listing(kind: str) -> Listing:
    """Rows and columns for ``kind`` (one of :data:`KINDS`); ConfigError for another name."""
    if kind not in KINDS:
        raise ConfigError(f"list: unknown kind {kind!r} (one of {', '.join(KINDS)})")
    return KINDS[kind]()
