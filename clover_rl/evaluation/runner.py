"""Run policies side by side on one carbon-trace window and summarise them against BASE and ORACLE.

Every policy gets its own fresh environment, reset with the same seed and start, so all of
them see the same intensities, load and backend noise; differences in the results come from
the decisions alone. BASE and ORACLE always run too, because the relative figures (carbon
saving, accuracy drop, oracle gap) are defined against them.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from clover_rl.agents.base import Policy
from clover_rl.carbon.base import CarbonTrace
from clover_rl.errors import ConfigError
from clover_rl.heap import frozen_setup
from clover_rl.llm import summary as llm_summary
from clover_rl.progress import ProgressBar

#: Per-interval fields kept from the env's step info (plus ``step``, ``action``, ``reward``).
ROW_FIELDS: tuple[str, ...] = (
    "time", "ci", "config", "variant_share", "carbon_g", "carbon_per_request_g", "energy_j",
    "accuracy", "p95_ms", "sla_ms", "sla_violated", "reconfigurations", "probes", "objective",
    "served", "dropped",
)
#: Summary fields, in report order.
SUMMARY_FIELDS: tuple[str, ...] = (
    "carbon_g", "carbon_per_request_g", "carbon_saving_pct", "accuracy", "accuracy_drop_pct",
    "p95_ms", "p95_max_ms", "sla_violation_pct", "reconfigurations", "objective",
    "oracle_gap_pct", "served", "dropped", "energy_j", "reward", "intervals",
)
BASE = "base"
ORACLE = "oracle"

PolicyFactory = Callable[[str, Any, int], Policy]


# ---------------------------------------------------------------------------- summary math
def summarize(rows: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Absolute figures of one policy's intervals (the relative ones need BASE/ORACLE: `compare`).

    Carbon per request is total carbon over total served requests (not a mean of interval
    ratios, which would overweight quiet hours); accuracy is request-weighted for the same reason.
    """
    if not rows:
        raise ConfigError("no intervals to summarise")
    carbon = float(sum(r["carbon_g"] for r in rows))
    served = int(sum(r["served"] for r in rows))
    acc_w = float(sum(r["accuracy"] * r["served"] for r in rows))
    p95 = np.array([float(r["p95_ms"]) for r in rows])
    return {
        "carbon_g": carbon,
        "carbon_per_request_g": carbon / served if served else math.nan,
        "accuracy": acc_w / served if served else math.nan,
        "p95_ms": float(p95.mean()),
        "p95_max_ms": float(p95.max()),
        "sla_violation_pct": 100.0 * sum(bool(r["sla_violated"]) for r in rows) / len(rows),
        "reconfigurations": int(sum(int(r["reconfigurations"]) for r in rows)),
        "objective": float(np.mean([float(r["objective"]) for r in rows])),
        "served": served,
        "dropped": int(sum(int(r["dropped"]) for r in rows)),
        "energy_j": float(sum(r["energy_j"] for r in rows)),
        "reward": float(sum(float(r.get("reward", 0.0)) for r in rows)),
        "intervals": len(rows),
        **llm_summary.summarize(rows),  # LLM services: TTFT/TPOT p95, energy and carbon per 1k tokens
    }


def _pct(num: float, den: float) -> float:
    if not (math.isfinite(num) and math.isfinite(den)) or abs(den) < 1e-12:
        return math.nan
    return 100.0 * num / den


def compare(summary: Mapping[str, float], base: Mapping[str, float],
            oracle: Mapping[str, float]) -> dict[str, float]:
    """``summary`` plus the figures relative to BASE and ORACLE on the same window.

    carbon_saving_pct = (C_base - C) / C_base x 100 (per request); accuracy_drop_pct =
    (A_base - A) / A_base x 100; oracle_gap_pct = (J_oracle - J) / (J_oracle - J_base) x 100
    with J the mean objective (0 = as good as the oracle, 100 = no better than BASE; NaN when
    the oracle does not beat BASE, so the gap is undefined).
    """
    out = dict(summary)
    out["carbon_saving_pct"] = _pct(base["carbon_per_request_g"] - summary["carbon_per_request_g"],
                                    base["carbon_per_request_g"])
    out["accuracy_drop_pct"] = _pct(base["accuracy"] - summary["accuracy"], base["accuracy"])
    out["oracle_gap_pct"] = _pct(oracle["objective"] - summary["objective"],
                                 oracle["objective"] - base["objective"])
    return {k: out[k] for k in SUMMARY_FIELDS + llm_summary.SUMMARY_FIELDS if k in out}


# ---------------------------------------------------------------------------- results
@dataclass
class PolicyRun:
    """One policy's episode: the intervals as served and their summary."""

    spec: str  # the policy argument as given (registry name or run-folder path)
    name: str  # the policy's own name
    rows: list[dict[str, Any]]
    summary: dict[str, float] = field(default_factory=dict)
    estimated: bool = True
    wall_s: float = 0.0
    cpu_s: float = 0.0


@dataclass
class EvaluationResult:
    """All runs of one evaluation; ``policies`` lists the requested specs in the order given."""

    scenario: str
    trace: str
    trace_provenance: str
    start: int
    hours: int
    seed: int
    sla_ms: float
    variants: tuple[str, ...]  # smallest -> largest (by accuracy)
    policies: list[str]
    runs: dict[str, PolicyRun]  # requested specs + the BASE/ORACLE references
    references: tuple[str, str] = (BASE, ORACLE)  # keys in ``runs`` of the BASE and ORACLE runs
    interval_s: float = 3600.0  # control interval: each row is this much trace time
    intervals: int = 0  # rows per run (hours x 3600 / interval_s); 0 = derive from hours
    workload: dict[str, Any] = field(default_factory=dict)  # the workload's config (reloads it)
    tpot_sla_ms: float | None = None  # LLM services: the TPOT p95 SLA (sla_ms is TTFT's)
    objective: dict[str, Any] = field(default_factory=dict)  # the scenario's objective block

    def __post_init__(self) -> None:
        if not self.intervals:
            self.intervals = max(1, int(round(self.hours * 3600.0 / self.interval_s)))

    @property
    def estimated(self) -> bool:
        return any(r.estimated for r in self.runs.values())

    @property
    def references_only(self) -> list[str]:
        """Reference runs (BASE/ORACLE) that were not requested, hence not reported."""
        return [k for k in self.references if k not in self.policies]

    def summaries(self) -> dict[str, dict[str, float]]:
        """Requested policies' summaries, keyed by the spec as given."""
        return {p: dict(self.runs[p].summary) for p in self.policies}

    def to_json(self) -> dict[str, dict[str, Any]]:
        """JSON-ready summaries keyed by spec (NaN -> null, plus the `estimated` flag)."""
        out: dict[str, dict[str, Any]] = {}
        for p in self.policies:
            s = {k: _json_num(v) for k, v in self.runs[p].summary.items()}
            s["estimated"] = self.runs[p].estimated
            out[p] = s
        return out

    def meta(self) -> dict[str, Any]:
        times = self.runs[self.policies[0]].rows
        return {
            "scenario": self.scenario, "workload": self.workload, "objective": self.objective,
            "carbon_trace": self.trace,
            "carbon_trace_provenance": self.trace_provenance, "start": self.start,
            "hours": self.hours, "intervals": self.intervals, "interval_s": self.interval_s,
            "seed": self.seed, "sla_ms": self.sla_ms,
            **({"tpot_sla_ms": self.tpot_sla_ms} if self.tpot_sla_ms is not None else {}),
            "first_interval": times[0]["time"] if times else None,
            "last_interval": times[-1]["time"] if times else None,
            "estimated": self.estimated, "policies": list(self.policies),
            "references": {"base": self.references[0], "oracle": self.references[1],
                           "not_reported": self.references_only},
            "timing_s": {k: {"wall": r.wall_s, "cpu": r.cpu_s} for k, r in self.runs.items()},
        }


def _json_num(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, (np.floating, np.integer)):
        return _json_num(v.item())
    return v


# ---------------------------------------------------------------------------- running
def _registry_factory(spec: str, env: Any, seed: int) -> Policy:
    from clover_rl.agents.registry import make_policy  # lazy: pulls in SB3 for run folders

    return make_policy(spec, env, seed=seed)


def _resolve_window(scenario: Any, carbon_trace: str | Path | CarbonTrace | None,
                    hours: int | None, start: int) -> tuple[Any, CarbonTrace, int, int]:
    """(scenario, trace, hours, intervals): ``hours`` of trace time from interval ``start``,
    i.e. ``hours x 3600 / control_interval_s`` intervals (24 h at 300 s = 288); without
    ``hours``, the whole hours left in the trace from ``start``."""
    from clover_rl.carbon.resolve import resolve_trace
    from clover_rl.scenario import load_scenario

    sc = load_scenario(scenario)
    trace = resolve_trace(carbon_trace if carbon_trace is not None else sc.carbon.trace_spec(),
                          sc.carbon.period, sc.control_interval_s)
    n = len(trace)
    step_s = float(sc.control_interval_s)
    if isinstance(start, bool) or not isinstance(start, (int, np.integer)) or start < 0:
        raise ConfigError(f"start must be an interval index >= 0, got {start!r}")
    if start >= n:
        raise ConfigError(f"start={start} is past the end of carbon trace {trace.name} ({n} intervals)")
    left_h = int((n - start) * step_s // 3600)  # whole hours left in the trace
    if hours is None:
        hours = left_h
        if hours < 1:
            raise ConfigError(f"carbon trace {trace.name} has less than one hour left from start={start}")
    if isinstance(hours, bool) or not isinstance(hours, (int, np.integer)) or hours <= 0:
        raise ConfigError(f"hours must be a positive whole number of hours, got {hours!r}")
    steps = max(1, int(round(hours * 3600.0 / step_s)))
    if start + steps > n:
        raise ConfigError(f"hours={hours} ({steps} intervals of {step_s:g} s) from start={start} runs past "
                          f"the end of carbon trace {trace.name} ({n} intervals; at most {left_h} h)")
    return sc, trace, int(hours), steps


def _row(step: int, action: int, reward: float, info: Mapping[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {"step": step, "action": int(action), "reward": float(reward)}
    for k in ROW_FIELDS + tuple(f for f in llm_summary.ROW_FIELDS if f in info):
        v = info.get(k)
        if k == "variant_share":
            v = {str(name): float(x) for name, x in dict(v or {}).items()}
        elif isinstance(v, (np.floating, np.integer, np.bool_)):
            v = v.item()
        row[k] = v
    return row


def evaluate_policies(
    scenario: Any,
    policies: Sequence[str],
    *,
    carbon_trace: str | Path | CarbonTrace | None = None,
    hours: int | None = None,
    seed: int = 0,
    start: int = 0,
    progress: bool = True,
    factory: PolicyFactory | None = None,
    env_kwargs: Mapping[str, Any] | None = None,
    ray_address: str | None = None,
    workers: int | None = None,
) -> EvaluationResult:
    """Run each policy in its own fresh env over ``hours`` hours of trace from interval ``start``
    (``hours x 3600 / control_interval_s`` intervals; 24 h at a 300 s interval = 288).

    ``scenario``: shipped name, YAML path or Scenario; ``carbon_trace`` replaces its trace
    (shipped name, CSV path or CarbonTrace); without ``hours`` the whole hours left in the
    trace from ``start`` run once. ``factory(spec, env, seed)`` builds a policy (default: the agents registry).
    BASE and ORACLE run as references whether requested or not. All policies are built before
    any runs, so a bad spec fails fast. ``ray_address`` (``auto`` or a cluster address): the
    policies run on ``workers`` Ray workers (default: the cluster's CPUs), each in its own fresh
    env as here, so the figures are the sequential ones (``factory`` must then be picklable).
    """
    from clover_rl.envs.serving_env import CloverServingEnv

    specs = [str(p) for p in policies]
    if not specs:
        raise ConfigError("no policy to evaluate (give at least one --policy)")
    dups = sorted({p for p in specs if specs.count(p) > 1})
    if dups:
        raise ConfigError(f"policy given more than once: {', '.join(dups)}")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise ConfigError(f"seed must be an integer, got {seed!r}")
    sc, trace, hours, steps = _resolve_window(scenario, carbon_trace, hours, start)
    make = factory or _registry_factory
    # The references are the requested base/oracle runs when given (any spelling), else extra runs.
    ref = {r: next((p for p in specs if p.strip().lower() == r), r) for r in (BASE, ORACLE)}
    all_specs = specs + [r for r in (BASE, ORACLE) if ref[r] not in specs]

    envs: dict[str, Any] = {}
    pols: dict[str, Policy] = {}
    try:
        for spec in all_specs:
            if ray_address is None or not envs:  # on Ray: one env here checks every spec
                envs[spec] = CloverServingEnv(sc, carbon_trace=trace, episode_hours=hours, **dict(env_kwargs or {}))
            pols[spec] = make(spec, next(reversed(envs.values())), seed)
        runs: dict[str, PolicyRun] = {}
        if ray_address is not None:
            from clover_rl.distributed.runtime import run_all

            items = [(sc, trace, hours, dict(env_kwargs or {}), spec, make, seed, steps, start) for spec in all_specs]
            done = dict(run_all(ray_address, run_policy, items, workers))
            runs = {spec: done[spec] for spec in all_specs}
        else:
            with ProgressBar(progress, unit="intervals", eta=True) as bar, frozen_setup():
                for spec in all_specs:
                    task = bar.add_task(spec, total=steps)
                    runs[spec] = _run_one(spec, envs[spec], pols[spec], steps, seed, start,
                                          lambda t=task: bar.advance(task=t))
    finally:
        for env in envs.values():
            env.close()

    base, oracle = runs[ref[BASE]].summary, runs[ref[ORACLE]].summary
    for r in runs.values():
        r.summary = compare(r.summary, base, oracle)
    first = envs[all_specs[0]]
    order = sorted(first.model.service.variants, key=lambda v: v.accuracy)
    return EvaluationResult(
        scenario=sc.name, trace=trace.name, trace_provenance=trace.provenance, start=int(start),
        hours=hours, seed=int(seed), sla_ms=float(first.sla_ms), interval_s=float(sc.control_interval_s),
        intervals=steps,
        variants=tuple(v.name for v in order), policies=specs, runs=runs,
        references=(ref[BASE], ref[ORACLE]), workload=first.workload.to_config(),
        tpot_sla_ms=getattr(first.model, "tpot_sla_ms", None),
        objective=sc.objective.model_dump(by_alias=True, exclude_none=True),
    )


def run_policy(sc: Any, trace: CarbonTrace, hours: int, env_kwargs: dict[str, Any], spec: str,
               make: PolicyFactory, seed: int, steps: int, start: int) -> tuple[str, PolicyRun]:
    """One policy's run in a fresh env (what a Ray worker of ``evaluate_policies`` does)."""
    from clover_rl.envs.serving_env import CloverServingEnv

    env = CloverServingEnv(sc, carbon_trace=trace, episode_hours=hours, **env_kwargs)
    try:
        return spec, _run_one(spec, env, make(spec, env, seed), steps, seed, start, lambda: None)
    finally:
        env.close()


def _run_one(spec: str, env: Any, policy: Policy, hours: int, seed: int, start: int,
             tick: Callable[[], None]) -> PolicyRun:
    w0, c0 = time.perf_counter(), time.process_time()
    obs, info = env.reset(seed=seed, options={"start": start})
    bind = getattr(policy, "bind", None)
    if callable(bind) and getattr(policy, "env", None) is not getattr(env, "unwrapped", env):
        bind(env)
    policy.reset()
    rows: list[dict[str, Any]] = []
    estimated = False
    for step in range(hours):
        if "action_mask" not in info:
            info = {**info, "action_mask": env.action_masks()}
        action = int(policy.act(obs, info))
        obs, reward, terminated, truncated, info = env.step(action)
        rows.append(_row(step, action, float(reward), info))
        estimated = estimated or bool(info.get("estimated", True))
        tick()
        if terminated or truncated:
            break
    return PolicyRun(spec=spec, name=str(getattr(policy, "name", spec)), rows=rows,
                     summary=summarize(rows), estimated=estimated,
                     wall_s=time.perf_counter() - w0, cpu_s=time.process_time() - c0)
