"""Run the benchmark suite (:mod:`clover_rl.evaluation.suite`) for a set of policies.

Each case is one :func:`~clover_rl.evaluation.runner.evaluate_policies` run (so scoring, BASE
and ORACLE are exactly those of ``clover-rl evaluate``) on the case's window, load pattern and
objective. Cases run in worker processes grouped by service, so the replay model's steady-state
cache is shared by the cases that can use it. ``shipped`` stands for the scenario's shipped
checkpoint (``checkpoints/<scenario>``, else ``checkpoints/<service>``: then the table says so).
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from clover_rl.errors import ConfigError
from clover_rl.evaluation.runner import BASE, ORACLE, evaluate_policies
from clover_rl.evaluation.suite import SUITE_VERSION, Case, case_start, case_trace, case_workload

SHIPPED = "shipped"
PAPER = "clover"  # the paper's optimizer: what the targets compare against
DEFAULT_POLICIES: tuple[str, ...] = (SHIPPED, PAPER, "mpc", BASE, ORACLE)
#: LLM cases also keep TTFT / TPOT p95 (mean of the intervals') and energy per 1k output tokens.
LLM_FIELDS: tuple[str, ...] = ("ttft_p95_ms", "tpot_p95_ms", "energy_per_1k_tokens_j")
#: Per case and policy, the figures kept (all from the evaluate summary).
FIELDS: tuple[str, ...] = ("objective", "carbon_saving_pct", "accuracy_drop_pct", "sla_intervals",
                           "reconfigurations", "oracle_gap_pct", "carbon_g", "accuracy", "p95_ms")


@dataclass
class CaseResult:
    """One case: per policy (as requested) its figures; ``resolved`` maps ``shipped`` to a path."""

    case: Case
    rows: dict[str, dict[str, float]]
    resolved: dict[str, str]
    sla_ms: float
    trace: str
    cpu_s: float
    wall_s: float
    estimated: bool = True
    tpot_sla_ms: float | None = None  # LLM cases: the TPOT p95 SLA (sla_ms is TTFT's)


@dataclass
class SuiteResult:
    version: str
    policies: list[str]
    cases: list[CaseResult] = field(default_factory=list)
    wall_s: float = 0.0

    def gaps(self, policy: str) -> np.ndarray:
        """Oracle gaps (%) of ``policy`` over the cases where the gap is defined."""
        g = np.array([c.rows[policy]["oracle_gap_pct"] for c in self.cases], dtype=float)
        return g[np.isfinite(g)]

    def summary(self) -> list[dict[str, Any]]:
        """Per policy: median and worst oracle gap, and in how many cases it does at least as well
        as the paper's optimizer on objective, SLA-violating intervals and reconfigurations."""
        out = []
        for p in self.policies:
            g = self.gaps(p)
            undefined = [c for c in self.cases if not math.isfinite(c.rows[p]["oracle_gap_pct"])]
            row: dict[str, Any] = {"policy": p, "cases": len(self.cases), "gap_cases": int(g.size),
                                   # cases without a gap (the oracle is no better than BASE) where
                                   # the policy still scores below the oracle
                                   "below_oracle_no_gap": sum(
                                       c.rows[p]["objective"] < c.rows["oracle"]["objective"] - 1e-9
                                       for c in undefined if "oracle" in c.rows),
                                   "median_gap_pct": float(np.median(g)) if g.size else math.nan,
                                   "worst_gap_pct": float(g.max()) if g.size else math.nan}
            if PAPER in self.policies:
                ref = [c.rows[PAPER] for c in self.cases]
                mine = [c.rows[p] for c in self.cases]
                row["objective_ge_paper"] = sum(m["objective"] >= r["objective"] - 1e-12 for m, r in zip(mine, ref))
                row["sla_le_paper"] = sum(m["sla_intervals"] <= r["sla_intervals"] for m, r in zip(mine, ref))
                row["reconfigs_le_paper"] = sum(m["reconfigurations"] <= r["reconfigurations"]
                                                for m, r in zip(mine, ref))
            out.append(row)
        return out


def resolve_policy(spec: str, case: Case) -> str:
    """``shipped`` -> the scenario's shipped checkpoint path; other specs unchanged."""
    if spec != SHIPPED:
        return spec
    from clover_rl.paths import checkpoints_dir
    from clover_rl.scenario import load_scenario

    root = checkpoints_dir()
    for name in (case.scenario, load_scenario(case.scenario).service):
        if (root / name / "model.zip").exists():
            return str(root / name)
    raise ConfigError(f"no shipped checkpoint for scenario {case.scenario} under {root}")


def run_case(case: Case, policies: Sequence[str], seed: int = 0) -> CaseResult:
    """One case, every policy (plus BASE and ORACLE as references), on its window."""
    from clover_rl.scenario import load_scenario

    w0, c0 = time.perf_counter(), time.process_time()
    trace = case_trace(case)
    start = case_start(case, trace)
    sc = load_scenario(case.scenario)
    specs = {p: resolve_policy(p, case) for p in policies}
    if len(set(specs.values())) != len(specs):
        raise ConfigError(f"case {case.name}: two policies resolve to the same spec ({specs})")
    res = evaluate_policies(sc, list(specs.values()), carbon_trace=trace, hours=case.hours, seed=seed,
                            start=start, progress=False,
                            env_kwargs={"workload": case_workload(case, sc.workload.mean_rate())})
    rows = {}
    for p, spec in specs.items():
        s = res.runs[spec].summary
        rows[p] = {k: float(s[k]) for k in FIELDS + LLM_FIELDS if k in s}
        rows[p]["sla_intervals"] = round(s["sla_violation_pct"] * s["intervals"] / 100.0)
    return CaseResult(case, rows, {p: s for p, s in specs.items() if s != p}, res.sla_ms, res.trace,
                      time.process_time() - c0, time.perf_counter() - w0, res.estimated, res.tpot_sla_ms)


def _run_group(cases: list[Case], policies: list[str], seed: int) -> list[CaseResult]:
    return [run_case(c, policies, seed) for c in cases]


def _service(case: Case) -> str:
    from clover_rl.scenario import load_scenario

    return load_scenario(case.scenario).service


def run_suite(cases: Sequence[Case], policies: Sequence[str] = DEFAULT_POLICIES, *, seed: int = 0,
              workers: int | None = 2, on_case: Callable[[CaseResult], None] | None = None,
              ray_address: str | None = None) -> SuiteResult:
    """Every case for every policy; ``workers`` processes (1 = in this process), or with
    ``ray_address`` (``auto`` or a cluster address) ``workers`` Ray actors (default: the
    cluster's CPUs). Every case is seeded on its own, so the results do not depend on where or in
    which order cases run.

    Policies are checked on the first case before any worker starts (a bad spec fails fast).
    ``on_case`` is called as each case finishes (progress). Results keep the suite's case order.
    """
    policies = [str(p) for p in policies]
    if not policies:
        raise ConfigError("no policy to benchmark (give at least one --policy)")
    if not cases:
        raise ConfigError("no case to run")
    for p in policies:
        resolve_policy(p, cases[0])
    w0 = time.perf_counter()
    done: dict[str, CaseResult] = {}

    def take(results: list[CaseResult]) -> None:
        for r in results:
            done[r.case.name] = r
            if on_case:
                on_case(r)

    groups: dict[str, list[Case]] = {}
    for c in cases:
        groups.setdefault(_service(c), []).append(c)
    # one task per case, submitted service by service, so a worker tends to keep a service
    ordered = [c for g in groups.values() for c in g]
    if ray_address is not None:
        from clover_rl.distributed.runtime import cluster_cpus, connected, map_unordered

        with connected(ray_address) as ray:
            n = workers or cluster_cpus(ray)
            for res in map_unordered(ray, _run_group, [([c], policies, seed) for c in ordered], n):
                take(res)
    elif (workers or 1) <= 1:
        for c in cases:
            take([run_case(c, policies, seed)])
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futs = [pool.submit(_run_group, [c], policies, seed) for c in ordered]
            for f in as_completed(futs):
                take(f.result())
    out = SuiteResult(SUITE_VERSION, policies, [done[c.name] for c in cases])
    out.wall_s = time.perf_counter() - w0
    return out
