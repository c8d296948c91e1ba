"""Speed and agreement of the replay simulator's numba kernel, measured side by side.

    python benchmarks/simulator_speed.py [--requests 5000000] [--agree-requests 200000]

Prints simulated requests/s of (1) the numba kernel, (2) a plain-Python heapq reference and
(3) a SimPy process-based reference (both defined here), their ratios, and whether numba
and SimPy agree on p50/p95/p99/mean latency, utilisation and energy:

* "same" columns: the same arrivals and uniform draws fed to both -> must match to
  rounding (it is the same queue);
* "indep" columns: SimPy on its workload vs the mean of independent numba runs of the same
  length -> must agree within sampling error: the fixed tolerance (p95 3%), widened to 3
  sigma of one run where the sampling error itself is larger (near saturation).

Finally the cost of one steady-state ``ReplayBackend.run`` answered from the cache.
Target: >= 2,000,000 simulated requests/s on one core for the kernel.
"""
from __future__ import annotations

import argparse
import heapq
import math
import time

import numpy as np
import simpy

from clover_rl.errors import ConfigError
from clover_rl.mig.catalog import get_gpu
from clover_rl.mig.config import Configuration
from clover_rl.services import load_service
from clover_rl.serving import simulator as sim
from clover_rl.serving.profile import QUANTILE_LEVELS, Profile, ProfileEntry, load_default_profile
from clover_rl.serving.replay import ReplayBackend
from clover_rl.workload.arrivals import poisson_arrivals

GPU = get_gpu("a100-40gb")
TOL = {"p50": 0.03, "p95": 0.03, "p99": 0.05, "mean": 0.03, "util": 0.01, "energy": 0.01}


def _profile() -> tuple[Profile, str]:
    try:
        return load_default_profile("efficientnet", "a100-40gb"), "shipped efficientnet_a100-40gb (estimated)"
    except ConfigError:
        shape = (0.75, 0.85, 0.88, 0.94, 1.0, 1.06, 1.12, 1.18, 1.35, 1.6)
        ms = {"b1": 40.0, "b3": 60.0, "b5": 150.0, "b7": 400.0}
        entries = {}
        for p in GPU.base_profiles():
            for v, m in ms.items():
                t = m * 7 / p.compute_slices ** 0.85
                entries[(p.name, v)] = ProfileEntry(p.name, v, tuple(t * s for s in shape), 25.0 * p.compute_slices)
        return Profile("a100-40gb", "efficientnet", 38.0, 12.0, {v: 3.0 for v in ms}, entries), "synthetic"


# ------------------------------------------------------------------ references


def _service_time(q: np.ndarray, x: float) -> float:
    lv = QUANTILE_LEVELS
    k = 0
    while k < len(lv) - 2 and x >= lv[k + 1]:
        k += 1
    frac = (x - lv[k]) / (lv[k + 1] - lv[k])
    return q[k] + frac * (q[k + 1] - q[k])


def heapq_reference(servers: sim.Servers, arrivals: np.ndarray, u: np.ndarray, timeout_s: float):
    """Same algorithm as the kernel in plain Python: idle heap by priority, busy heap by free time."""
    q = servers.quantiles_s.tolist()
    busy = [(0.0, s) for s in range(len(q))]
    heapq.heapify(busy)
    idle: list[int] = []
    lat = np.empty(arrivals.size)
    srv = np.empty(arrivals.size, dtype=np.int64)
    busy_s = np.zeros(len(q))
    last = 0.0
    for i, (t, x) in enumerate(zip(arrivals.tolist(), u.tolist())):
        while busy and busy[0][0] <= t:
            heapq.heappush(idle, heapq.heappop(busy)[1])
        if idle:
            s = heapq.heappop(idle)
            start = t
        else:
            start, s = busy[0]
            if start - t > timeout_s:
                lat[i], srv[i] = math.nan, -1
                continue
            heapq.heappop(busy)
        svc = _service_time(q[s], x)
        end = start + svc
        heapq.heappush(busy, (end, s))
        lat[i], srv[i] = end - t, s
        busy_s[s] += svc
        last = max(last, end)
    return lat, srv, busy_s, last


def simpy_reference(servers: sim.Servers, arrivals: np.ndarray, u: np.ndarray, timeout_s: float):
    """Process-based model: a source, a FIFO queue, a dispatcher taking the preferred idle
    server from a PriorityStore (or giving up at the timeout), and one process per service."""
    env = simpy.Environment()
    queue = simpy.Store(env)
    idle = simpy.PriorityStore(env)
    q = servers.quantiles_s.tolist()
    arr = arrivals.tolist()
    ux = u.tolist()
    lat = np.full(arrivals.size, math.nan)
    srv = np.full(arrivals.size, -1, dtype=np.int64)
    busy_s = np.zeros(len(q))
    last = [0.0]
    for s in range(len(q)):
        idle.put(s)

    def source():
        for i, t in enumerate(arr):
            if t > env.now:
                yield env.timeout(t - env.now)
            queue.put(i)

    def serve(i: int, s: int):
        svc = _service_time(q[s], ux[i])
        yield env.timeout(svc)
        lat[i], srv[i] = env.now - arr[i], s
        busy_s[s] += svc
        last[0] = max(last[0], env.now)
        idle.put(s)

    def dispatcher():
        while True:
            i = yield queue.get()
            remaining = arr[i] + timeout_s - env.now
            if remaining < 0:
                continue  # already waited longer than the timeout: dropped
            get = idle.get()
            res = yield get | env.timeout(remaining)
            if get not in res:
                get.cancel()
                continue
            env.process(serve(i, get.value))

    env.process(source())
    env.process(dispatcher())
    env.run()
    return lat, srv, busy_s, last[0]


def _summary(servers: sim.Servers, arrivals, lat, srv, busy_s, last, duration):
    res = sim.SimResult(servers, arrivals, lat, srv, busy_s, np.bincount(srv[srv >= 0], minlength=len(servers)),
                        float(last), float(duration), 30.0)
    m = res.metrics()
    return {"p50": m.p50_ms, "p95": m.p95_ms, "p99": m.p99_ms, "mean": m.mean_ms,
            "util": float(np.mean(list(m.utilization.values()))), "energy": m.energy_j / m.duration_s}


def _workload(servers: sim.Servers, load: float, n: int, seed: int):
    rng = np.random.default_rng(seed)
    rate = load * servers.capacity_rps
    arr = poisson_arrivals(rate, n / rate, rng)
    return arr, rng.random(arr.size), rate


# ------------------------------------------------------------------ main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=5_000_000, help="requests for the kernel speed run")
    ap.add_argument("--agree-requests", type=int, default=200_000, help="requests per SimPy agreement case")
    ap.add_argument("--replications", type=int, default=30, help="numba runs behind the sampling error")
    args = ap.parse_args()
    profile, where = _profile()
    service = load_service("efficientnet")
    print(f"profile: {where}; GPU a100-40gb; timeout 30 s; one core (numba kernel is single-threaded)")

    def cfg(*pairs):
        return Configuration.of(GPU, pairs)

    # ---- speed
    speed_cfgs = [("1 GPU 4g:b7,3g:b5", cfg(("4g", "b7"), ("3g", "b5")), 1),
                  ("8 GPUs 3g,2g,1g,1g", cfg(("3g", "b5"), ("2g", "b3"), ("1g", "b1"), ("1g", "b3")), 8)]
    print("\n== speed: simulated requests/s at 85% load ==")
    print(f"{'case':<22}{'numba kernel':>14}{'numba e2e':>12}{'heapq':>12}{'SimPy':>12}{'x heapq':>10}{'x SimPy':>10}")
    for label, c, n_gpus in speed_cfgs:
        sv = sim.build_servers(c, profile, service, n_gpus)
        arr, u, _ = _workload(sv, 0.85, 10_000, 1)
        sim.simulate_arrays(sv, arr, u, arr[-1] + 1)  # warm-up (JIT / cache load)
        arr, u, rate = _workload(sv, 0.85, args.requests, 2)
        t0 = time.perf_counter()
        sim.simulate_arrays(sv, arr, u, arr[-1] + 1)
        k_rps = arr.size / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        m = sim.simulate(c, profile, service, n_gpus, rate, arr[-1], seed=3, servers=sv)
        e_rps = m.arrived / (time.perf_counter() - t0)
        n_ref = 200_000
        t0 = time.perf_counter()
        heapq_reference(sv, arr[:n_ref], u[:n_ref], 30.0)
        h_rps = n_ref / (time.perf_counter() - t0)
        n_sp = 50_000
        t0 = time.perf_counter()
        simpy_reference(sv, arr[:n_sp], u[:n_sp], 30.0)
        s_rps = n_sp / (time.perf_counter() - t0)
        print(f"{label:<22}{k_rps:>14,.0f}{e_rps:>12,.0f}{h_rps:>12,.0f}{s_rps:>12,.0f}"
              f"{k_rps / h_rps:>9.0f}x{k_rps / s_rps:>9.0f}x")
        print(f"{'':<22}target >= 2,000,000 req/s: {'PASS' if k_rps >= 2e6 else 'FAIL'}")

    # ---- agreement
    cases = [("7g:b7 rho=0.5", cfg(("7g", "b7")), 1, 0.5),
             ("4g:b7,3g:b5 rho=0.8", cfg(("4g", "b7"), ("3g", "b5")), 1, 0.8),
             ("2x 3g,2g,1g,1g rho=0.9", cfg(("3g", "b5"), ("2g", "b3"), ("1g", "b1"), ("1g", "b3")), 2, 0.9),
             ("2x 2g,2g,2g,1g rho=0.95", cfg(("2g", "b3"), ("2g", "b3"), ("2g", "b5"), ("1g", "b1")), 2, 0.95)]
    n = args.agree_requests
    reps = args.replications
    print(f"\n== agreement numba vs SimPy ({n:,} requests per run; relative difference / tolerance) ==")
    print("same: identical arrivals and draws in both (max relative difference over all figures).")
    print(f"indep: SimPy vs the mean of {reps} independent numba runs of the same length; tolerance =")
    print("       max(fixed tolerance, 3 sigma of one run from those replications)")
    keys = list(TOL)
    print(f"{'case':<26}{'same':>9} " + "".join(f"{k:>15}" for k in keys) + "  verdict")
    all_ok = True
    for label, c, n_gpus, load in cases:
        sv = sim.build_servers(c, profile, service, n_gpus)
        arr, u, rate = _workload(sv, load, n, 11)
        dur = float(arr[-1]) + 1e-9
        s_sum = _summary(sv, arr, *simpy_reference(sv, arr, u, 30.0), dur)
        same = sim.simulate_arrays(sv, arr, u, dur)
        n_same = _summary(sv, arr, same.latency_s, same.server, same.busy_s, same.last_completion_s, dur)
        same_max = max(abs(n_same[k] - s_sum[k]) / abs(s_sum[k]) for k in keys)
        runs = []
        for r in range(reps):
            a2, u2, _ = _workload(sv, load, n, 1000 + r)
            d2 = float(a2[-1]) + 1e-9
            x = sim.simulate_arrays(sv, a2, u2, d2)
            runs.append(_summary(sv, a2, x.latency_s, x.server, x.busy_s, x.last_completion_s, d2))
        cells = []
        ok = same_max < 1e-9
        for k in keys:
            vals = np.array([r[k] for r in runs])
            mu, sd = vals.mean(), vals.std(ddof=1) * math.sqrt(1 + 1 / reps)
            tol = max(TOL[k], 3 * sd / mu)
            rel = (s_sum[k] - mu) / mu
            ok &= abs(rel) <= tol
            cells.append(f"{rel:+.2%}/{tol:.1%}")
        all_ok &= ok
        print(f"{label:<26}{same_max:>9.0e} " + "".join(f"{c_:>15}" for c_ in cells)
              + f"  {'PASS' if ok else 'FAIL'}")
    print("fixed tolerance: " + ", ".join(f"{k} {v:.0%}" for k, v in TOL.items())
          + f" -> overall {'PASS' if all_ok else 'FAIL'}")

    # ---- steady-state cached run
    b = ReplayBackend(service, profile, "a100-40gb", n_gpus=4, seed=0)
    c = cfg(("4g", "b7"), ("3g", "b5"))
    b.apply(c)
    cap = b.capacity_rps()
    rates = np.linspace(0.3, 0.7, 5) * cap
    t0 = time.perf_counter()
    for r in rates:
        b.run(3600.0, r)  # fills the cache (2 grid simulations per rate)
    miss = (time.perf_counter() - t0) / len(rates)
    reps = 20_000
    t0 = time.perf_counter()
    for i in range(reps):
        b.run(3600.0, rates[i % len(rates)])
    hit = (time.perf_counter() - t0) / reps
    print(f"\n== steady-state ReplayBackend.run (4 GPUs, 1 h interval) ==\n"
          f"cache hit: {hit * 1e6:.1f} us/run; first visit of a rate (2 cached simulations of "
          f"{sim.STEADY_REQUESTS:,} requests): {miss * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
