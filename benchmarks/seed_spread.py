"""Seed spread of a training recipe: train it with several seeds, score each on the benchmark suite.

    python benchmarks/seed_spread.py --scenario yolo --seeds 0 1 2          # train 3 seeds, then score
    python benchmarks/seed_spread.py --scenario yolo --runs RUN0 RUN1 RUN2  # score finished runs
    python benchmarks/seed_spread.py --scenario yolo --runs RUN --ship      # ... and ship the best

Per seed it prints the training wall time (against the 30-minute target: the recipe must get
there in <= 30 min per scenario on 2 cores), then the suite cases of that scenario (the
``clover-rl benchmark`` cases named ``<scenario>/...``; never used in training or model
selection) with the policy's objective and oracle gap per case, its median and worst gap, and
finally the spread over seeds. ``--ship`` copies the run with the best *validation* reward (the
training's own model selection; the suite never chooses) into ``checkpoints/<scenario>/`` with its suite figures in ``metadata.json["suite"]``, which
``scripts/docs_results.py`` renders into checkpoints/README.md. Figures are estimates (replay of
estimated profiles).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
TARGET_S = 30 * 60


def train_seed(scenario: str, seed: int, out: Path) -> tuple[Path, float]:
    from clover_rl.training import load_train_config, train

    cfg = load_train_config(REPO / "configs" / "train" / f"{scenario}.yaml").replace(
        seed=seed, out_dir=str(out), progress_bar=False)
    t0 = time.perf_counter()
    res = train(cfg, command=["clover-rl", "train", "--config", f"configs/train/{scenario}.yaml",
                              "--seed", str(seed)])
    return res.run_dir, time.perf_counter() - t0


def score(run_dir: Path, scenario: str, workers: int) -> dict[str, Any]:
    """The policy's figures on every suite case of ``scenario`` (with BASE and ORACLE)."""
    from clover_rl.evaluation.benchmark import run_suite
    from clover_rl.evaluation.suite import select_cases

    cases = select_cases([f"{scenario}/"])
    res = run_suite(cases, [str(run_dir), "base", "oracle"], workers=workers)
    rows = {c.case.name: c.rows[str(run_dir)] for c in res.cases}
    gaps = np.array([r["oracle_gap_pct"] for r in rows.values()], dtype=float)
    gaps = gaps[np.isfinite(gaps)]
    return {"cases": rows, "median_gap_pct": float(np.median(gaps)) if gaps.size else math.nan,
            "worst_gap_pct": float(gaps.max()) if gaps.size else math.nan, "suite_wall_s": res.wall_s}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenario", default="yolo")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--runs", type=Path, nargs="*", default=None, help="score these run folders (no training)")
    ap.add_argument("--out", type=Path, default=REPO / "runs" / "seed_spread")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--ship", action="store_true", help="copy the best run into checkpoints/<scenario>/")
    a = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    results: list[dict[str, Any]] = []
    todo: list[tuple[Any, Path | None]] = ([(None, Path(r)) for r in a.runs] if a.runs
                                           else [(s, None) for s in a.seeds])
    for seed, run in todo:
        wall = math.nan
        if run is None:
            run, wall = train_seed(a.scenario, int(seed), a.out)
        meta = json.loads((run / "metadata.json").read_text())
        seed = meta.get("run", run.name).split("__")[2] if seed is None else seed
        if math.isnan(wall):
            wall = float(meta.get("training", {}).get("wall_s", math.nan))
        best_eval = (meta.get("evaluation") or {}).get("best") or {}
        r = {"seed": seed, "run": str(run), "train_wall_s": wall,
             "validation_reward": float(best_eval.get("mean_reward", -math.inf)),
             **score(run, a.scenario, a.workers)}
        results.append(r)
        print(f"\nseed {seed}: trained in {wall:.0f} s wall ({wall / TARGET_S:.2f} x the 30-min target: "
              f"{'PASS' if wall <= TARGET_S else 'FAIL'}); {run}")
        for name, row in r["cases"].items():
            print(f"  {name:34s} objective {row['objective']:+.4f}  oracle gap {row['oracle_gap_pct']:7.1f} %  "
                  f"SLA intervals {row['sla_intervals']:.0f}  reconfigurations {row['reconfigurations']:.0f}")
        print(f"  median gap {r['median_gap_pct']:.1f} %, worst {r['worst_gap_pct']:.1f} %")
    med = np.array([r["median_gap_pct"] for r in results])
    worst = np.array([r["worst_gap_pct"] for r in results])
    print(f"\n{a.scenario}: over {len(results)} seeds, median gap {np.nanmin(med):.1f}..{np.nanmax(med):.1f} % "
          f"(mean {np.nanmean(med):.1f}), worst gap {np.nanmin(worst):.1f}..{np.nanmax(worst):.1f} % "
          f"(mean {np.nanmean(worst):.1f})")
    if a.json:
        a.json.write_text(json.dumps(results, indent=2, default=str) + "\n")
    if a.ship:
        sys.path.insert(0, str(REPO / "benchmarks"))
        from train_time import ship

        best = max(results, key=lambda r: r["validation_reward"])  # never chosen on the suite
        keep = {k: best[k] for k in ("cases", "median_gap_pct", "worst_gap_pct")}
        from clover_rl.evaluation.suite import SUITE_VERSION

        dest = ship(a.scenario, Path(best["run"]), {"version": SUITE_VERSION, "seed": best["seed"], **keep,
                                                     "seeds": {str(r["seed"]): [r["median_gap_pct"], r["worst_gap_pct"]]
                                                               for r in results}}, key="suite")
        print(f"shipped seed {best['seed']} to {dest}")
    return 0



if __name__ == "__main__":
    sys.exit(main())
