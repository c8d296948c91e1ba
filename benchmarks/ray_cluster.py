"""A fleet on Ray losing a node under load: 2 nodes x 2 emulated GPUs, one raylet killed and restored.

Starts a local Ray cluster (``ray.cluster_utils.Cluster``, in its own temp folder: nothing else
on the machine is touched) with two nodes, each offering 2 emulated A100s (``clover_gpu: 2``,
labels ``clover-node=a|b``), and runs ``clover-rl deploy --ray`` on it (the same
:class:`RayDeployment`: KServe v2 front end + rolling Ray pool + supervised controller process)
with emulated models, the ``--policy`` (default ``mpc``) and a short ``--interval``. Open-loop
Poisson load at ``--rate`` req/s is offered from a separate process through four phases:

1. ``steady``   -- the whole fleet;
2. ``node down`` -- node b's raylet is SIGKILLed ``--kill-at`` s in (its slice actors die with it);
3. ``rejoin``   -- a new raylet for node b is started; the fleet monitor takes it back and its
   GPUs get their intended configuration again;
4. ``after``    -- the whole fleet again.

Per phase: requests sent, answered 200, refused (explicit 503 from admission control), lost (no
answer at all within 30 s), p95 (client side, answered requests), GPUs in the fleet at the end.
Also how long the monitor took to notice the loss and the rejoin. Target: lost = 0 (refusals
only while capacity is gone). Last line: ``nodes=2 gpus=4 sent=S answered=A lost=L node_killed=1``.

Run: ``python benchmarks/ray_cluster.py [--phase 40] [--rate 4] [--interval 20] [--policy mpc] [--scenario S]``;
``--scenario efficientnet-fleet`` runs a fleet scenario (a configuration per GPU) on the same cluster.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fault_injection import wait_for  # noqa: E402

CLIENT_TIMEOUT_S = 30.0


def offer(load: Any, url: str, svc: Any, seconds: float, rate: float, seed: int, out: list) -> threading.Thread:
    def go() -> None:
        out.append(load.run(url, svc, seconds, rate, seed=seed, timeout_s=CLIENT_TIMEOUT_S, image_size=16))

    t = threading.Thread(target=go, daemon=True)
    t.start()
    return t


def totals(results: list) -> tuple[int, int, int, int, float]:
    sent = sum(r.sent for r in results)
    ok = sum(r.answered for r in results)
    lost = sum(r.status_counts.get(0, 0) + r.status_counts.get(-1, 0) for r in results)
    lat = np.concatenate([r.latencies_ms for r in results]) if results else np.zeros(0)
    return sent, ok, sent - ok - lost, lost, float(np.percentile(lat, 95)) if lat.size else float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--phase", type=float, default=40.0, help="seconds of load per phase")
    ap.add_argument("--rate", type=float, default=4.0, help="offered load (req/s)")
    ap.add_argument("--interval", type=float, default=20.0, help="control interval (s)")
    ap.add_argument("--policy", default="mpc", help="the controller's policy")
    ap.add_argument("--kill-at", type=float, default=5.0, help="seconds into the node-down phase")
    ap.add_argument("--scenario", default="efficientnet")
    args = ap.parse_args()
    import ray

    from clover_rl.controller.deployment import DeploySettings
    from clover_rl.controller.loop import ControllerOptions
    from clover_rl.errors import CloverError
    from clover_rl.serving.live.loadgen import LoadProcess
    from clover_rl.serving.ray.deploy import RayDeployment, RaySettings
    from clover_rl.serving.ray.local import LocalCluster

    work = Path(tempfile.mkdtemp(prefix="clover-ray-bench-"))
    t0 = time.time()
    try:
        cluster = LocalCluster(nodes=2, gpus=2, attempts=5)
    except CloverError as e:  # a machine too busy for Ray's 30 s raylet start-up window
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"local Ray cluster: 2 nodes x 2 emulated GPUs up in {time.time() - t0:.0f} s ({cluster.temp_dir})",
          flush=True)
    dep: Any = None
    stop = threading.Event()
    load = LoadProcess()
    rows: list[tuple] = []
    killed_at = lost_seen = rejoin_at = joined_seen = serving_again = float("nan")
    try:
        opts = ControllerOptions(interval_s=args.interval, guard_window_s=args.interval / 2, echo=None)
        settings = DeploySettings(scenario=args.scenario, policy=args.policy, carbon="file:caiso_pge:eval,speed=180",
                                  state_dir=str(work / "state"), device="cpu", port=0, models="emulated", options=opts)
        dep = RayDeployment(settings, RaySettings(address=cluster.address, max_down_fraction=0.25,
                                                  monitor_options={"period_s": 1.0}),
                            echo=lambda t: print(f"  {t}", flush=True))
        th = threading.Thread(target=lambda: dep.run(stop), daemon=True)
        th.start()
        if not wait_for(lambda: dep.backend is not None and dep.backend.pool.ready_count > 0
                        and dep.backend.pool.configuration is not None, 600):
            raise RuntimeError("the deployment did not come up")
        pool, url, svc = dep.backend.pool, dep.backend.url, dep.service
        print(f"serving {pool.configuration.label()} on {len(pool.live_gpus)} GPUs after {time.time() - t0:.0f} s; "
              f"{args.rate:g} req/s offered, phases of {args.phase:g} s, policy {args.policy}, interval "
              f"{args.interval:g} s", flush=True)
        print(f"{'phase':10s} {'sent':>6} {'ok':>6} {'refused':>7} {'lost':>5} {'p95 ms':>8} {'GPUs':>5}  fleet",
              flush=True)
        for k, phase in enumerate(("steady", "node down", "rejoin", "after")):
            results: list = []
            t = offer(load, url, svc, args.phase, args.rate, k, results)
            if phase == "node down":
                time.sleep(args.kill_at)
                killed_at = time.time()
                cluster.kill_raylet(1)
                wait_for(lambda: pool.lost_gpus, args.phase)
                lost_seen = time.time()
            elif phase == "rejoin":
                time.sleep(2.0)
                rejoin_at = time.time()
                cluster.restart_node(1)
                wait_for(lambda: not pool.lost_gpus, args.phase)
                joined_seen = time.time()
                wait_for(lambda: len(pool.fleet_configuration) == len(pool.fleet), args.phase)
                serving_again = time.time()
            t.join()
            sent, ok, refused, lost, p95 = totals(results)
            fleet = ", ".join(f"{g}:{c.label()}" for g, c in pool.fleet_configuration.items())
            rows.append((sent, ok, refused, lost))
            print(f"{phase:10s} {sent:6d} {ok:6d} {refused:7d} {lost:5d} {p95:8.0f} {len(pool.live_gpus):5d}  {fleet}",
                  flush=True)
        print(f"node loss noticed {lost_seen - killed_at:.1f} s after the raylet was killed (control window "
              f"{opts.window_s():g} s); node back in the fleet {joined_seen - rejoin_at:.1f} s after its new raylet "
              f"started, its GPUs serving again after {serving_again - rejoin_at:.1f} s; most GPUs reconfiguring at "
              f"once: {pool.max_in_transition} (limit {pool.max_down()})",
              flush=True)
    finally:
        stop.set()
        if dep is not None:
            dep.close()
        load.close()
        cluster.close()
        if ray.is_initialized():
            ray.shutdown()
    s, o, r, lo = (int(sum(x)) for x in zip(*rows)) if rows else (0, 0, 0, 0)
    print(f"nodes=2 gpus=4 sent={s} answered={o + r} lost={lo} node_killed=1")
    return 0 if lo == 0 and len(rows) == 4 else 1


if __name__ == "__main__":
    sys.exit(main())
