"""How long the MPC baseline takes to decide, beside the env step it decides for.

Runs one episode per objective (paper score, accuracy floor, carbon budget) at a constant load
with ``mpc`` and times, side by side in the same run, the policy's ``act`` (planning) and the
env's ``step`` (replay). The steady-state configuration table is built once beforehand (the
replay model's cost, shared with the oracle; printed separately).

    python benchmarks/mpc_speed.py [--hours 48] [--scenario efficientnet] [--start 336]

``--start`` (default 14 days in): the budget's hedge needs two weeks of past intensities (the
forecast model's week plus a week of its errors), so the run starts where the trace has them.
"""
from __future__ import annotations

import argparse
import time

from clover_rl.agents.registry import make_policy
from clover_rl.envs.serving_env import CloverServingEnv

OBJECTIVES = {
    "paper": {"kind": "paper"},
    "accuracy_floor": {"kind": "accuracy_floor", "floor": 0.98},
    "carbon_budget": {"kind": "carbon_budget", "budget_fraction": 0.6, "window_hours": 24},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hours", type=int, default=48)
    ap.add_argument("--scenario", default="efficientnet")
    ap.add_argument("--start", type=int, default=24 * 14, help="first interval (an index)")
    args = ap.parse_args()
    print(f"{'objective':<16}{'table build s':>14}{'mpc act ms/step':>17}{'env step ms':>13}{'episode s':>11}")
    for name, obj in OBJECTIVES.items():
        env = CloverServingEnv(args.scenario, episode_hours=args.hours, objective=obj,
                               workload={"kind": "constant", "rate_rps": 2.5})
        t = time.perf_counter()
        env.objective_table()
        build = time.perf_counter() - t
        pol = make_policy("mpc", env)
        obs, info = env.reset(seed=0, options={"start": args.start})
        act_s = step_s = 0.0
        for _ in range(args.hours):
            t0 = time.perf_counter()
            a = pol.act(obs, info)
            t1 = time.perf_counter()
            obs, _, _, trunc, info = env.step(a)
            t2 = time.perf_counter()
            act_s += t1 - t0
            step_s += t2 - t1
        n = args.hours
        print(f"{name:<16}{build:>14.1f}{1e3 * act_s / n:>17.2f}{1e3 * step_s / n:>13.2f}{act_s + step_s:>11.2f}")
        env.close()


if __name__ == "__main__":
    main()
