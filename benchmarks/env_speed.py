"""Environment step speed on one core, by kind of step, against the 5,000 steps/s target.

    python benchmarks/env_speed.py [--scenario efficientnet ...] [--steps 3000] [--mode steady]
                                   [--baseline DIR] [--repeat N]

Each scenario runs in a fresh process pinned to one CPU core (numba/BLAS threads = 1), on the
replay backend in its default steady mode. Kinds of step, each timed over ``--steps`` steps
after a warm-up of the same kind:

* ``kept``: the configuration stays (the cached steady state answers the hour);
* ``switch``: a reconfiguration every step, back and forth between two configurations
  (the disturbed hour after a switch is simulated once, then cached);
* ``switch+load``: as ``switch`` under a diurnal load (+-30%): the rate differs every hour,
  so the cached disturbed head is re-mixed with the steady rest at each new rate;
* ``switch-new``: a reconfiguration to a configuration drawn at random every step, after
  the steady states were warmed: nearly every step simulates a new disturbed head;
* ``cold``: random switches from the first step of a fresh process (a new training run, a
  vectorised-env worker) whose persistent steady-state store (:mod:`clover_rl.serving.steady_store`,
  written by the warm run before it, as any earlier run on the machine writes it) holds this
  load level: nothing is in memory, steady states are read from the store in bulk;
* ``empty-store``: the same with an empty store, as on a new machine or at a load level never
  served before: every configuration met simulates its steady state (one 50,000-request
  simulation per configuration shape and rate grid point, two per load between grid points)
  once; the line below the table gives that cost per simulation.

Each scenario uses its own temporary store, so the figures do not depend on the user's.
The timed loops run inside :func:`clover_rl.heap.frozen_setup` (the objects of the imports and
the env set-up out of full GC scans), as ``clover-rl train`` and the benchmark suite run theirs;
``--no-freeze`` times them without.

Figures are steps per CPU second of the stepping process (``time.process_time``), and per
wall second beside them: on a shared machine, wall time includes waiting for the core. Prints
steps/s and the ratio to the target (>= 1 = meets it); ``--mode exact`` shows the same kinds
without the caches. ``--baseline DIR`` times another checkout's ``clover_rl`` in the same run
(e.g. ``git worktree add /tmp/main-wt main``), its processes interleaved with this one's, and
prints the speed-up per kind.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time

TARGET = 5000.0
KINDS = ["kept", "switch", "switch+load", "switch-new", "cold", "empty-store"]
_ONE_THREAD = {k: "1" for k in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                "OPENBLAS_NUM_THREADS")}


def _time_steps(env, actions) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    t0, c0 = time.perf_counter(), time.process_time()
    for a in actions:
        if env.step(int(a))[3]:
            env.reset()
    return time.process_time() - c0, time.perf_counter() - t0


def _frozen(freeze: bool) -> contextlib.AbstractContextManager:
    """The set-up's objects out of full GC scans, as train and benchmark run their loops
    (:func:`clover_rl.heap.frozen_setup`; a --baseline checkout may predate it: then nothing)."""
    try:
        from clover_rl.heap import frozen_setup
    except ImportError:
        return contextlib.nullcontext()
    return frozen_setup() if freeze else contextlib.nullcontext()


def _child(scenario: str, steps: int, mode: str, part: str, freeze: bool) -> dict:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    import numpy as np

    from clover_rl.envs.serving_env import CloverServingEnv

    bk = {"mode": mode}
    out: dict[str, dict] = {}
    rng = np.random.default_rng(0)
    if part in ("cold", "build"):  # a fresh process: random switches from the first step
        t0 = time.process_time()
        cold = CloverServingEnv(scenario, backend_kwargs=bk)
        cold.reset(seed=0)
        setup = time.process_time() - t0
        feas = np.flatnonzero(cold.catalog.feasible)
        with _frozen(freeze):
            cpu, wall = _time_steps(cold, rng.choice(feas, steps))
        from clover_rl.serving.steady import _STEADY_CACHE

        return {part: {"cpu_s": cpu, "wall_s": wall, "steps": steps, "setup_s": setup, "steady": len(_STEADY_CACHE)}}

    env = CloverServingEnv(scenario, backend_kwargs=bk)
    feas = np.flatnonzero(env.catalog.feasible)
    sc = env.scenario
    diurnal = CloverServingEnv(scenario, backend_kwargs=bk, workload={
        "kind": "diurnal", "mean_rps": sc.workload.mean_rate(), "amplitude": 0.3})
    a, b = int(env.catalog.base_index), int(feas[len(feas) // 2])
    plans = {
        "kept": (env, np.full(steps, a)),
        "switch": (env, np.array([a, b] * (steps // 2))),
        "switch+load": (diurnal, np.array([a, b] * (steps // 2))),
        "switch-new": (env, rng.choice(feas, steps)),
    }
    with _frozen(freeze):
        for kind, (e, acts) in plans.items():
            e.reset(seed=1)
            if kind == "switch-new":  # warm the steady states of every slot assignment first
                _time_steps(e, rng.choice(feas, 4 * len(feas)))
            else:
                _time_steps(e, acts[: min(steps, 500)])
            cpu, wall = _time_steps(e, acts)
            out[kind] = {"cpu_s": cpu, "wall_s": wall, "steps": len(acts)}
    return out


def _run_child(scenario: str, steps: int, mode: str, part: str, env: dict, code: str | None,
               freeze: bool) -> dict | str:
    """One fresh process timing ``part``; ``code``: the checkout whose clover_rl it imports (None: this one)."""
    cmd = [sys.executable, os.path.abspath(__file__), "--child", scenario, "--steps", str(steps), "--mode", mode,
           "--part", part] + ([] if freeze else ["--no-freeze"])
    extra = {**_ONE_THREAD, **env}
    if code is not None:
        extra["PYTHONPATH"] = code
    p = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **extra}, check=False,
                       cwd=code or None)
    if p.returncode != 0:
        return p.stderr.strip().splitlines()[-1] if p.stderr.strip() else f"exit {p.returncode}"
    return json.loads(p.stdout.strip().splitlines()[-1])


def _measure(scenario: str, steps: int, mode: str, tmp: str, codes: dict[str, str | None],
             freeze: bool, repeat: int) -> dict[str, dict] | str:
    """Every kind for each checkout in ``codes`` (label -> path), processes interleaved, each
    ``repeat`` times (the fastest kept: on a shared machine the others were slowed by neighbours);
    each checkout gets its own stores, each empty-store run a new empty one."""
    out: dict[str, dict] = {label: {} for label in codes}
    for rep in range(repeat):
        for part in ("warm", "cold", "build"):
            for label, code in codes.items():
                store = f"{tmp}/{label}/{scenario}" + (f"-empty{rep}" if part == "build" else "")
                got = _run_child(scenario, steps, mode, part, {"CLOVER_RL_CACHE_DIR": store}, code, freeze)
                if isinstance(got, str):
                    return f"{label} {part}: {got}"
                for kind, r in got.items():
                    kind = "empty-store" if kind == "build" else kind
                    if kind not in out[label] or r["cpu_s"] < out[label][kind]["cpu_s"]:
                        out[label][kind] = r
    return out


def _row(name: str, values: list[float], fmt: str) -> str:
    return f"{name:30s} " + " ".join(format(v, fmt) for v in values)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", action="append", help="default: efficientnet and albert")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--mode", choices=["steady", "exact"], default="steady")
    ap.add_argument("--baseline", metavar="DIR", help="another checkout to time in the same run (old vs new)")
    ap.add_argument("--repeat", type=int, default=1, help="runs of each process; the fastest is shown")
    ap.add_argument("--no-freeze", action="store_true",
                    help="time without clover_rl.heap.frozen_setup (train and benchmark use it)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--part", default="warm", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(_child(a.child, a.steps, a.mode, a.part, not a.no_freeze)))
        return 0
    scenarios = a.scenario or ["efficientnet", "albert"]
    codes: dict[str, str | None] = {"this": None}
    if a.baseline:
        if not os.path.isdir(os.path.join(a.baseline, "clover_rl")):
            print(f"error: --baseline {a.baseline}: no clover_rl package there", file=sys.stderr)
            return 2
        codes["baseline"] = os.path.abspath(a.baseline)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"env steps/s on one core, replay {a.mode} mode; target {TARGET:,.0f} steps per CPU second; "
          f"load average {load:.1f} on {os.cpu_count()} cores (a shared core slows CPU time too); set-up "
          + ("objects out of GC scans as in train/benchmark (clover_rl.heap)" if not a.no_freeze else "not frozen"))
    print(f"{'scenario / steps per':30s} " + " ".join(f"{k:>12s}" for k in KINDS))
    worst = {k: float("inf") for k in KINDS}
    costs = []
    with tempfile.TemporaryDirectory(prefix="clover-rl-bench-") as tmp:
        for sc in scenarios:
            res = _measure(sc, a.steps, a.mode, tmp, codes, not a.no_freeze, a.repeat)
            if isinstance(res, str):
                print(f"{sc:30s} failed ({res})")
                continue
            cpu = {label: [r[k]["steps"] / r[k]["cpu_s"] for k in KINDS] for label, r in res.items()}
            for label, r in res.items():
                tag = "" if len(codes) == 1 else f" {label}"
                print(_row(f"{sc}{tag} CPU s", cpu[label], "12,.0f"))
                print(_row(f"{sc}{tag} wall s", [r[k]["steps"] / r[k]["wall_s"] for k in KINDS], "12,.0f"))
            print(_row("  CPU / target", [v / TARGET for v in cpu["this"]], "12.2f"))
            if "baseline" in cpu:
                print(_row("  CPU this / baseline", [x / y for x, y in zip(cpu["this"], cpu["baseline"])], "12.2f"))
            for k, v in zip(KINDS, cpu["this"]):
                worst[k] = min(worst[k], v)
            e, c = res["this"]["empty-store"], res["this"]["cold"]
            n_sim = e["steady"]  # every steady state met was simulated (the cold run read as many)
            costs.append(f"{sc}: {a.steps} steps simulated {n_sim} steady states in {e['cpu_s']:.2f} s of CPU "
                         f"against {c['cpu_s']:.2f} s reading them from the store"
                         + (f" (~{(e['cpu_s'] - c['cpu_s']) / n_sim * 1e3:.2f} ms per simulation)" if n_sim else ""))
    print("worst / target (CPU): " + ", ".join(f"{k} {v / TARGET:.2f}" for k, v in worst.items()))
    print("kept/switch/switch+load/switch-new: warm caches (a training run after its first minutes); cold: a "
          "fresh process whose steady-state store (clover_rl.serving.steady_store) already holds this load level; "
          "empty-store: a fresh process with an empty store, " + "; ".join(costs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
