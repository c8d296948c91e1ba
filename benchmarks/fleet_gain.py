"""What a configuration per GPU gains: the fleet suite cases with the trained fleet policy, the
paper's optimizer, MPC, the identical-configuration optimum and the fleet oracle, side by side.

    python benchmarks/fleet_gain.py [--hours 48] [--policy checkpoints/efficientnet-fleet ...]

``oracle-identical`` is the best single configuration for all GPUs per interval with hindsight
(the best the paper's fleet can do); ``oracle`` the best fleet of the action space (identical
fleets + two-configuration mixes) per interval with hindsight. Their difference is what
heterogeneity gains; the trained policy is compared with both. Scoring is the benchmark suite's
(:func:`clover_rl.evaluation.benchmark.run_case`); figures are ESTIMATED (replay of estimated
A100 profiles). Last line: ``fleet_gain objective_identical=.. objective_fleet=.. policy=..``.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

POLICIES = ["shipped", "clover", "mpc", "oracle-identical", "oracle", "base"]
FIELDS = ("objective", "carbon_saving_pct", "accuracy_drop_pct", "sla_intervals", "reconfigurations",
          "oracle_gap_pct")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hours", type=int, default=48, help="hours of each case's window (suite: 48)")
    ap.add_argument("--policy", action="append", help=f"policies (default: {' '.join(POLICIES)})")
    ap.add_argument("--case", action="append", default=None, help="case fragment (default: efficientnet-fleet/)")
    args = ap.parse_args(argv)

    from clover_rl.evaluation.benchmark import run_case
    from clover_rl.evaluation.suite import select_cases

    policies = args.policy or POLICIES
    cases = [dataclasses.replace(c, hours=args.hours) for c in select_cases(args.case or ["efficientnet-fleet/"])]
    mean: dict[str, list[float]] = {p: [] for p in policies}
    for case in cases:
        t0 = time.perf_counter()
        r = run_case(case, policies)
        print(f"\n{case.name} ({case.start}, {case.hours} h, {time.perf_counter() - t0:.0f} s)")
        print(f"{'policy':<18}" + "".join(f"{f:>19}" for f in FIELDS))
        for p in policies:
            row = r.rows[p]
            mean[p].append(row["objective"])
            print(f"{p:<18}" + "".join(f"{row[f]:>19.4f}" for f in FIELDS))
        ident, fleet = r.rows.get("oracle-identical"), r.rows.get("oracle")
        if ident and fleet:
            print(f"heterogeneity gain (oracle - oracle-identical): objective {fleet['objective'] - ident['objective']:+.4f}"
                  f", carbon saving {fleet['carbon_saving_pct']:.1f}% vs {ident['carbon_saving_pct']:.1f}%")
    avg = {p: sum(v) / len(v) for p, v in mean.items()}
    pol = policies[0]
    print(f"\nfleet_gain cases={len(cases)} objective_identical={avg.get('oracle-identical', float('nan')):+.4f} "
          f"objective_fleet={avg.get('oracle', float('nan')):+.4f} {pol}={avg[pol]:+.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
