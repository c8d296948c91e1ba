"""Does a policy adapt to carbon intensity? Accuracy and energy of what it serves against CI.

    python benchmarks/adaptation.py [--scenario efficientnet] [--policy shipped] [--hours 168]
                                    [--clean se] [--dirty pl] [--out adaptation.png]

Runs the policy (and the hindsight ORACLE for reference) over ``--hours`` of a clean and of a
dirty grid's eval period (held-out / eval-year windows, never trained on), then plots per
interval the served accuracy and energy per request against the intensity: a policy that
adapts spends accuracy when the grid is clean and saves energy when it is dirty, so its points
move with CI as the oracle's do; a fixed configuration is a flat line. Prints per grid the
mean accuracy, energy per request and the number of distinct configurations served.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default="efficientnet")
    ap.add_argument("--policy", default="shipped", help="'shipped' = checkpoints/<scenario>, or any policy spec")
    ap.add_argument("--hours", type=int, default=168)
    ap.add_argument("--clean", default="se", help="a low-carbon grid (shipped name, eval period)")
    ap.add_argument("--dirty", default="pl", help="a high-carbon grid (shipped name, eval period)")
    ap.add_argument("--out", type=Path, default=Path("adaptation.png"))
    a = ap.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from clover_rl.carbon.shipped import load_shipped
    from clover_rl.evaluation import evaluate_policies
    from clover_rl.evaluation.benchmark import resolve_policy
    from clover_rl.evaluation.suite import Case

    spec = resolve_policy(a.policy, Case("adaptation", a.scenario, a.clean, "2000-01-01"))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    print(f"{'grid':6s} {'policy':22s} {'CI mean':>8s} {'accuracy':>9s} {'J/request':>10s} {'configs':>8s}")
    for grid, marker in ((a.clean, "o"), (a.dirty, "s")):
        trace = load_shipped(grid, "eval")
        res = evaluate_policies(a.scenario, [spec, "oracle"], carbon_trace=trace, hours=a.hours,
                                start=0, progress=False)
        for p, color in ((spec, "tab:blue"), ("oracle", "tab:orange")):
            rows = res.runs[p].rows
            ci = np.array([r["ci"] for r in rows])
            acc = np.array([r["accuracy"] for r in rows])
            epr = np.array([r["energy_j"] / max(r["served"], 1) for r in rows])
            label = f"{'policy' if p == spec else 'oracle'} on {grid}"
            axes[0].scatter(ci, acc, s=12, marker=marker, color=color, alpha=0.6, label=label)
            axes[1].scatter(ci, epr, s=12, marker=marker, color=color, alpha=0.6, label=label)
            n_cfg = len({r["config"] for r in rows})
            print(f"{grid:6s} {Path(p).name if p == spec else p:22s} {ci.mean():8.0f} {acc.mean():9.2f} "
                  f"{epr.mean():10.1f} {n_cfg:8d}")
    axes[0].set_xlabel("carbon intensity g/kWh")
    axes[0].set_ylabel("served accuracy (%)")
    axes[1].set_xlabel("carbon intensity g/kWh")
    axes[1].set_ylabel("energy per request (J)")
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{a.scenario}: {Path(spec).name} vs oracle on a clean ({a.clean}) and a dirty ({a.dirty}) grid, "
                 f"{a.hours} h each")
    fig.tight_layout()
    fig.savefig(a.out, dpi=110)
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
