"""Train each shipped policy from scratch, time it, and compare it with the paper's optimizer.

For every scenario (efficientnet, yolo, albert) this trains ``configs/train/<scenario>.yaml``
(wall time vs the 30-minute target on the machine at hand; 2 shared cores when the shipped
policies were made), then runs the evaluation runner on carbon traces the policy never
trained on -- the 2021 evaluation period of the scenario's trace and the 49-hour CISO March
file -- side by side with ``clover`` (the paper's optimizer), ``oracle`` and ``base``, and
checks the quality target: objective >= clover's, SLA-violating intervals and
reconfigurations <= clover's, oracle gap <= 20 %.

    python benchmarks/train_time.py                       # train + evaluate all three
    python benchmarks/train_time.py --skip-train          # evaluate checkpoints/<scenario>
    python benchmarks/train_time.py --ship                # train, evaluate, copy into checkpoints/

Figures are estimates (replay of estimated profiles); ratios are measured side by side.
"""
from __future__ import annotations

import argparse
import json
import math
import resource
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

TARGET_S = 30 * 60
MARCH = Path("/work/shared/data/clover/carbon_intensity_ciso_march.csv")
FIELDS = ("objective", "sla_violation_pct", "reconfigurations", "oracle_gap_pct", "carbon_saving_pct",
          "accuracy_drop_pct")
SHIP_FILES = ("model.zip", "vecnormalize.pkl", "config.yml", "command.txt", "metadata.json")


def _cpu_s() -> float:
    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


def train_one(scenario: str, configs: Path, out: Path, timesteps: int | None) -> dict[str, Any]:
    from clover_rl.training import load_train_config, train

    cfg = load_train_config(configs / f"{scenario}.yaml").replace(out_dir=str(out), progress_bar=False)
    cpu0 = _cpu_s()
    res = train(cfg, timesteps=timesteps,
                command=["clover-rl", "train", "--config", f"configs/train/{scenario}.yaml"])
    return {"run_dir": str(res.run_dir), "wall_s": res.wall_s, "cpu_s": _cpu_s() - cpu0,
            "timesteps": res.timesteps, "best_eval": res.best}


def _floored(trace: Any, floor: float) -> Any:
    from clover_rl.carbon.base import CarbonTrace

    return CarbonTrace(trace.times, np.maximum(trace.values, floor), trace.name,
                       trace.provenance + f" [floored at {floor} g/kWh]", trace.synthetic)


def evaluate_one(scenario: str, policy_dir: str, trace: Any, hours: int | None) -> dict[str, Any]:
    """Policy, clover, oracle and base on one trace window (the evaluation runner)."""
    from clover_rl.carbon.resolve import resolve_trace
    from clover_rl.evaluation import evaluate_policies
    from clover_rl.scenario import load_scenario

    sc = load_scenario(scenario)
    tr = resolve_trace(trace if trace is not None else sc.carbon.trace_spec(), sc.carbon.period, sc.control_interval_s)
    note = ""
    t0 = time.perf_counter()
    try:
        res = evaluate_policies(sc, [policy_dir, "clover", "oracle", "base"], carbon_trace=tr, hours=hours,
                                progress=False)
    except ZeroDivisionError:
        # the clover optimizer divides by the intensity a measurement was taken at; traces with
        # 0 g/kWh hours (marginal emissions during curtailment) trip it -- floor them for all
        tr = _floored(tr, 1e-3)
        note = "intensities of 0 g/kWh floored at 0.001 for every policy (clover optimizer divides by CI)"
        res = evaluate_policies(sc, [policy_dir, "clover", "oracle", "base"], carbon_trace=tr, hours=hours,
                                progress=False)
    rows = {("policy" if k == policy_dir else k): {f: float(v.summary.get(f, math.nan)) for f in FIELDS}
            for k, v in res.runs.items()}
    p, c = rows["policy"], rows["clover"]
    checks = {
        "objective>=clover": p["objective"] >= c["objective"],
        "sla_violations<=clover": p["sla_violation_pct"] <= c["sla_violation_pct"] + 1e-9,
        "reconfigurations<=clover": p["reconfigurations"] <= c["reconfigurations"],
        "oracle_gap<=20": p["oracle_gap_pct"] <= 20.0,
    }
    return {"trace": tr.name, "intervals": res.hours, "first": res.meta()["first_interval"],
            "last": res.meta()["last_interval"], "rows": rows, "checks": checks,
            "passed": all(checks.values()), "note": note, "wall_s": round(time.perf_counter() - t0, 1)}


def print_table(scenario: str, ev: dict[str, Any]) -> None:
    print(f"\n{scenario} on {ev['trace']} ({ev['intervals']} h, {ev['first']} .. {ev['last']}; "
          f"evaluated in {ev['wall_s']} s)")
    if ev["note"]:
        print(f"  note: {ev['note']}")
    head = f"  {'policy':8s} {'objective':>10s} {'SLA viol %':>10s} {'reconfigs':>9s} {'oracle gap %':>12s} " \
           f"{'carbon save %':>13s} {'acc drop %':>10s}"
    print(head)
    for name in ("policy", "clover", "oracle", "base"):
        r = ev["rows"][name]
        print(f"  {name:8s} {r['objective']:+10.4f} {r['sla_violation_pct']:10.1f} {r['reconfigurations']:9.0f} "
              f"{r['oracle_gap_pct']:12.1f} {r['carbon_saving_pct']:13.1f} {r['accuracy_drop_pct']:10.2f}")
    print("  target: " + ", ".join(f"{k} {'PASS' if v else 'FAIL'}" for k, v in ev["checks"].items()))


def ship(scenario: str, run_dir: Path, results: dict[str, Any], key: str = "benchmark") -> Path:
    """Copy a run folder's deployable files into checkpoints/<scenario>/ with its results
    (``metadata.json[key]``: ``benchmark`` here, ``suite`` from benchmarks/seed_spread.py)."""
    dest = REPO / "checkpoints" / scenario
    dest.mkdir(parents=True, exist_ok=True)
    for old in dest.iterdir():
        if old.name in SHIP_FILES or old.suffix in (".zip", ".pkl"):
            old.unlink()
    for name in SHIP_FILES:
        if (run_dir / name).exists():
            shutil.copy2(run_dir / name, dest / name)
    cfg = yaml.safe_load((dest / "config.yml").read_text())
    cfg["out_dir"] = "runs"  # the benchmark's output folder is machine-specific
    (dest / "config.yml").write_text(yaml.safe_dump(cfg, sort_keys=False, default_flow_style=None))
    meta = json.loads((dest / "metadata.json").read_text())
    meta["shipped_from"] = run_dir.name
    meta["policy_name"] = f"{meta.get('algo', 'sb3')}:checkpoints/{scenario}"
    meta[key] = results
    meta.get("evaluation", {}).pop("history", None)
    (dest / "metadata.json").write_text(json.dumps(meta, indent=2, default=str) + "\n")
    return dest


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenarios", nargs="+", default=["efficientnet", "yolo", "albert"])
    ap.add_argument("--configs", type=Path, default=REPO / "configs" / "train")
    ap.add_argument("--out", type=Path, default=REPO / "runs" / "benchmark")
    ap.add_argument("--timesteps", type=int, default=None, help="override n_timesteps")
    ap.add_argument("--skip-train", action="store_true", help="evaluate --policy-root/<scenario> instead")
    ap.add_argument("--policy-root", type=Path, default=REPO / "checkpoints")
    ap.add_argument("--hours-2021", type=int, default=None, help="hours of the 2021 period (default: all)")
    ap.add_argument("--march", type=Path, default=MARCH, help="the 49-hour CISO March CSV")
    ap.add_argument("--ship", action="store_true", help="copy trained runs into checkpoints/<scenario>")
    ap.add_argument("--json", type=Path, default=None, help="write all results here")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    all_results: dict[str, Any] = {}
    ok = True
    for scenario in args.scenarios:
        res: dict[str, Any] = {}
        if args.skip_train:
            policy_dir = args.policy_root / scenario
        else:
            tr = train_one(scenario, args.configs, args.out, args.timesteps)
            policy_dir = Path(tr["run_dir"])
            res["training"] = tr
            print(f"\n{scenario}: trained {tr['timesteps']} steps in {tr['wall_s']:.0f} s wall "
                  f"({tr['cpu_s']:.0f} s CPU) = {tr['wall_s'] / TARGET_S:.2f} x the 30-min target "
                  f"-> {'PASS' if tr['wall_s'] <= TARGET_S else 'FAIL'}")
        traces: list[tuple[str, Any, int | None]] = [("eval2021", None, args.hours_2021)]
        if args.march.exists():
            traces.append(("march", str(args.march), None))
        else:
            print(f"  (no {args.march}: skipping the March trace)")
        res["evaluation"] = {}
        for key, trace, hours in traces:
            ev = evaluate_one(scenario, str(policy_dir), trace, hours)
            res["evaluation"][key] = ev
            print_table(scenario, ev)
            ok = ok and ev["passed"]
        if args.ship and not args.skip_train:
            print(f"  shipped to {ship(scenario, policy_dir, res)}")
        all_results[scenario] = res
    if args.json:
        args.json.write_text(json.dumps(all_results, indent=2, default=str) + "\n")
    print("\nquality target " + ("met" if ok else "NOT met") + " on every scenario and trace")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
