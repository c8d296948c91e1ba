"""Soak: a live CPU deployment under ~70% load for 20 minutes, with a fault every 2 minutes.

The ``clover-rl deploy`` assembly of ``fault_injection.py`` (front end, worker processes,
supervised controller process, the carbon-threshold policy that reconfigures when a loopback
Electricity Maps fake alternates its intensity) with emulated models, offered open-loop Poisson
load from a separate process at ``--load`` (0.7) x the capacity measured in a warm-up (the
lowest service rate of the workers while the policy alternates between its configurations, see
``serving/live/dispatch.py``). Each phase of
``--phase`` seconds (120) gets one fault, 20 s in, in rotation:

1. worker SIGKILL (one busy worker)        4. carbon API: HTTP 500, then time-outs (30 s each)
2. controller SIGKILL                       5. a 20 s burst at 3x (two extra load processes)
3. a failed reconfiguration (the next one)

Per phase it prints: requests sent, answered 200, refused (an explicit error status: 503 from
admission control or a drain), lost (no answer within 30 s: time-out or connection error),
p95 latency vs the SLA (client-side, answered requests) over the whole phase and outside its
fault window (``p95 out``: requests sent before the fault, or more than ``SETTLE_S`` after the
fault's injection ended), and RSS of the serving process tree (front end + workers +
controller) vs the first phase, and of the front end's process alone (``FE MB``: the one
serving process that lives through the whole soak; workers and the controller are restarted by
the faults, and how many workers run follows the configuration the policy chose). Targets (issue 14): lost = 0, refusals
only in burst phases, p95 within the SLA outside fault windows, RSS growth < 10%.
The last line is ``sent=S ok=O refused=R lost=L``.

Run: ``python benchmarks/soak.py [--minutes 20] [--phase 120] [--load 0.7]``.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fault_injection import busy_worker, counter, threshold_policy, wait_for  # noqa: E402
from frontend_overhead import tree_pids  # noqa: E402

FAULTS = ("worker SIGKILL", "controller SIGKILL", "failed reconfiguration", "carbon API 500/timeout", "burst 3x")
FAULT_AT_S = 20.0
BURST_S = 20.0
CLIENT_TIMEOUT_S = 30.0
SETTLE_S = 10.0  # after a fault's injection ends, still its window (recovery, the queue draining)


def measure_capacity(pool: Any, load: Any, url: str, svc: Any, seconds: float) -> float:
    """Requests/s the workers complete (the slowest seen while the policy alternates between its
    configurations): light load for ``seconds`` while sampling the pool's service rate."""
    t = threading.Thread(target=lambda: load.run(url, svc, seconds, 2.0, image_size=16), daemon=True)
    t.start()
    seen: list[float] = []
    time.sleep(min(5.0, seconds / 4))
    while t.is_alive():
        est = pool.service_rate()
        if est is not None:
            seen.append(est[0])
        time.sleep(0.5)
    return min(seen) if seen else 2.0


def rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                total += next(int(x.split()[1]) for x in f if x.startswith("VmRSS:"))
        except (OSError, StopIteration):
            pass
    return total / 1024.0


class Phase:
    """One phase's load (a LoadProcess run in a thread) and the fault injected into it."""

    def __init__(self) -> None:
        self.results: list[Any] = []
        self.lock = threading.Lock()
        self.t0 = time.perf_counter()
        self.window = (float("inf"), float("inf"))  # the fault's, in s from the phase's start

    def p95_outside(self) -> float:
        """p95 (ms) of the phase's main load (the first offered) outside the fault window."""
        if not self.results:
            return float("nan")
        main = min(self.results, key=lambda r: -r.offered_s)  # the phase-long load, not a burst's
        at = main.sent_s
        keep = (at < self.window[0]) | (at > self.window[1])
        lat = main.latencies_ms[keep] if at.size == main.latencies_ms.size else main.latencies_ms
        return float(np.percentile(lat, 95)) if lat.size else float("nan")

    def offer(self, load: Any, url: str, svc: Any, seconds: float, rate: float, seed: int) -> threading.Thread:
        def go() -> None:
            r = load.run(url, svc, seconds, rate, seed=seed, timeout_s=CLIENT_TIMEOUT_S, image_size=16)
            with self.lock:
                self.results.append(r)

        t = threading.Thread(target=go, daemon=True)
        t.start()
        return t

    def totals(self) -> tuple[int, int, int, int, np.ndarray]:
        sent = sum(r.sent for r in self.results)
        ok = sum(r.answered for r in self.results)
        lost = sum(r.status_counts.get(0, 0) + r.status_counts.get(-1, 0) for r in self.results)
        lat = np.concatenate([r.latencies_ms for r in self.results]) if self.results else np.zeros(0)
        return sent, ok, sent - ok - lost, lost, lat


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=20.0, help="total length")
    ap.add_argument("--phase", type=float, default=120.0, help="seconds per phase (one fault each)")
    ap.add_argument("--load", type=float, default=0.7, help="offered load as a share of measured capacity")
    ap.add_argument("--interval", type=float, default=20.0, help="control interval (s)")
    args = ap.parse_args()
    from clover_rl.controller.deployment import Deployment, DeploySettings
    from clover_rl.controller.faults import FailingPlacement
    from clover_rl.controller.loop import ControllerOptions
    from clover_rl.envs.serving_env import CloverServingEnv
    from clover_rl.serving.live.loadgen import LoadProcess
    from tests.support.apis import ElectricityMapsFake, Fault

    work = Path(tempfile.mkdtemp(prefix="clover-soak-"))
    hi_ci, lo_ci = 420.0, 260.0
    env = CloverServingEnv("efficientnet", interval_s=args.interval)
    run_dir = threshold_policy(work / "threshold_policy", env, threshold_g=(hi_ci + lo_ci) / 2)
    env.close()
    fake = ElectricityMapsFake(latest=hi_ci)
    os.environ["ELECTRICITYMAPS_API_TOKEN"] = fake.token
    carbon = f"electricitymaps:DE,base_url={fake.url},timeout=0.5,retries=0,ttl=0,failure_ttl=0"
    opts = ControllerOptions(interval_s=args.interval, guard_window_s=args.interval / 2, echo=None)
    state = work / "state"
    settings = DeploySettings(scenario="efficientnet", policy=str(run_dir), carbon=carbon, state_dir=str(state),
                              device="cpu", port=0, models="emulated", options=opts)
    dep = Deployment(settings, echo=lambda t: print(f"  {t}", flush=True), placement_wrapper=FailingPlacement)
    stop = threading.Event()
    th = threading.Thread(target=lambda: dep.run(stop), daemon=True)
    th.start()
    grid_stop = threading.Event()

    def grid() -> None:  # the intensity alternates at every decision, so the policy keeps reconfiguring
        while not grid_stop.wait(0.2):
            fake.latest = lo_ci if counter(state, "decisions") % 2 else hi_ci

    loads = [LoadProcess(), LoadProcess(), LoadProcess()]
    n_phases = max(1, int(round(args.minutes * 60 / args.phase)))
    totals = np.zeros(4, dtype=int)
    rss0: float | None = None
    fe0: float | None = None
    rows: list[str] = []
    try:
        if not wait_for(lambda: dep.backend is not None and dep.backend.pool.ready_count > 0
                        and dep.backend.pool.configuration is not None, 300):
            raise RuntimeError("the deployment did not come up")
        threading.Thread(target=grid, daemon=True).start()
        pool, url, svc = dep.backend.pool, dep.backend.url, dep.service
        capacity = measure_capacity(pool, loads[0], url, svc, 2 * args.interval)
        rate = args.load * capacity
        print(f"soak: {n_phases} phases of {args.phase:g} s at {rate:.2f} req/s = {args.load:g} x the capacity "
              f"measured in warm-up ({capacity:.2f} req/s, the slower configuration), "
              f"faults in rotation: {', '.join(FAULTS)}; state {state}", flush=True)
        print(f"{'phase':>5} {'fault':24s} {'rate':>6} {'sent':>6} {'ok':>6} {'refused':>7} {'lost':>5} "
              f"{'p95 ms':>8} {'p95 out':>8} {'SLA ms':>7} {'RSS MB':>7} {'growth':>7} {'FE MB':>6} {'growth':>7}",
              flush=True)
        for k in range(n_phases):
            fault = FAULTS[k % len(FAULTS)]
            ph = Phase()
            main_t = ph.offer(loads[0], url, svc, args.phase, rate, seed=k)
            time.sleep(FAULT_AT_S)
            start = time.perf_counter() - ph.t0
            note = inject(fault, dep, fake, Fault, ph, loads, url, svc, rate, k, args.load)
            ph.window = (start, time.perf_counter() - ph.t0 + SETTLE_S)
            main_t.join()
            sent, ok, refused, lost, lat = ph.totals()
            totals += (sent, ok, refused, lost)
            rss = rss_mb(tree_pids(os.getpid(), exclude={ld.proc.pid for ld in loads}))
            rss0 = rss0 if rss0 is not None else rss
            fe = rss_mb([os.getpid()])
            fe0 = fe0 if fe0 is not None else fe
            sla = float(dep.plane.published.get("sla_ms", float("nan")))
            p95 = float(np.percentile(lat, 95)) if lat.size else float("nan")
            row = (f"{k:5d} {fault:24s} {rate:6.2f} {sent:6d} {ok:6d} {refused:7d} {lost:5d} {p95:8.0f} "
                   f"{ph.p95_outside():8.0f} {sla:7.0f} {rss:7.0f} {100 * (rss / rss0 - 1):6.1f}% {fe:6.0f} "
                   f"{100 * (fe / fe0 - 1):6.1f}%  {note}")
            rows.append(row)
            print(row, flush=True)
    finally:
        grid_stop.set()
        stop.set()
        th.join(120)
        dep.close()
        for ld in loads:
            ld.close()
        fake.close()
    c = {key: counter(state, key) for key in ("restarts", "reconfigurations", "failed_reconfigurations",
                                               "stale_readings", "guard_triggers")}
    print(f"controller counters: {c}; supervisor restarts {dep.supervisor.restarts if dep.supervisor else 0}")
    with open("/proc/loadavg") as f:
        print(f"host load average at the end: {f.read().split()[0]} on {os.cpu_count()} CPUs (shared machine)")
    s, o, r, lo = (int(x) for x in totals)
    print(f"sent={s} ok={o} refused={r} lost={lo}")
    return 0 if lo == 0 else 1


def inject(fault: str, dep: Any, fake: Any, fault_kind: Any, ph: Phase, loads: list, url: str, svc: Any,
           rate: float, k: int, load_share: float) -> str:
    """Inject ``fault`` now; a short note on what happened."""
    if fault == "worker SIGKILL":
        victim = busy_worker(dep.backend.pool, 10.0)
        os.kill(victim.pid, signal.SIGKILL)
        return f"killed {victim.slot_id} pid {victim.pid}"
    if fault == "controller SIGKILL":
        pid = dep.supervisor.controller_pid if dep.supervisor else None
        if pid:
            os.kill(pid, signal.SIGKILL)
        return f"killed controller pid {pid}"
    if fault == "failed reconfiguration":
        before = counter(Path(dep.settings.state_dir), "failed_reconfigurations")
        dep.placement.arm(1)
        ok = wait_for(lambda: counter(Path(dep.settings.state_dir), "failed_reconfigurations") > before, 60)
        return "rolled back" if ok else "no reconfiguration attempted in 60 s"
    if fault == "carbon API 500/timeout":
        fake.down = fault_kind.status(500)
        time.sleep(30)
        fake.down = fault_kind.sleep(1.5)
        time.sleep(30)
        fake.down = None
        return "500 for 30 s, then time-outs for 30 s"
    capacity = rate / load_share
    extra_rate = max(0.0, 3.0 * capacity - rate) / 2  # two more processes: 3x capacity in all
    extra = [ph.offer(loads[i], url, svc, BURST_S, extra_rate, seed=1000 * k + i) for i in (1, 2)]
    for t in extra:
        t.join()
    return f"{BURST_S:g} s at 3x"


if __name__ == "__main__":
    sys.exit(main())
