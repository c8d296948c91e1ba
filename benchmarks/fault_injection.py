"""Fault injection on a live CPU deployment under steady load: nothing is lost, nothing stops.

Runs the real ``clover-rl deploy`` assembly (KServe v2 front end, worker processes, controller
process under its supervisor, state folder) on the CPU backend with emulated models, against a
loopback Electricity Maps fake whose intensity alternates every interval, with a deterministic
carbon-threshold policy saved as a MaskablePPO run folder (so it loads through the normal SB3
path and reconfigures the service when the intensity crosses its threshold). While the load
generator offers steady Poisson load it:

1. kills a worker process (SIGKILL)               -> the pool restarts it, the request is retried
2. makes the carbon API answer 500, then garbage, then time out
                                                  -> stale readings, logged; the loop continues
3. makes the next reconfiguration fail            -> rolled back, the service keeps serving
4. kills the controller process (SIGKILL)         -> the supervisor restarts it; it resumes from
                                                     the state folder without reconfiguring

and checks that every request sent got an answer (200, or an explicit error status only while no
worker could take it), the controller is running at the end, and the state survived. The last
line is ``sent=N answered=N lost=0``.

Run: ``python benchmarks/fault_injection.py [--interval 6] [--rate 2.5] [--state DIR]``.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.support.apis: the loopback API fakes the carbon tests use

HIGH_CI_CONFIG = "4g:b5,3g:b5"  # smaller models when the grid is dirty
LOW_CI_CONFIG = "7g:b7"  # BASE when it is clean


def threshold_policy(run_dir: Path, env: Any, threshold_g: float, high: str = HIGH_CI_CONFIG,
                     low: str = LOW_CI_CONFIG) -> Path:
    """A MaskablePPO run folder whose greedy action is ``high`` above ``threshold_g`` g/kWh, else ``low``.

    No hidden layers: logits = W obs + b with W, b set by hand on the ``ci_now`` feature, so the
    policy is deterministic and readable while going through the real checkpoint loader.
    """
    import torch as th
    from sb3_contrib import MaskablePPO

    from clover_rl.training.run import env_metadata

    sc = env.scenario
    x0 = threshold_g * sc.carbon.pue / (sc.objective.reference_intensity * sc.objective.reference_pue)
    model = MaskablePPO("MlpPolicy", env, n_steps=8, batch_size=8, seed=0, policy_kwargs={"net_arch": []})
    a_hi, a_lo = env.catalog.lookup(high), env.catalog.lookup(low)
    i_ci = env.observation_names.index("ci_now")
    net = model.policy.action_net
    with th.no_grad():
        net.weight.zero_()
        net.bias.fill_(-50.0)
        k = 40.0
        net.weight[a_hi, i_ci], net.bias[a_hi] = k, -k * x0
        net.weight[a_lo, i_ci], net.bias[a_lo] = -k, k * x0
    run_dir.mkdir(parents=True, exist_ok=True)
    model.save(run_dir / "model.zip")
    meta = {"algo": "maskable_ppo", "policy_name": f"threshold@{threshold_g:g}g/kWh", **env_metadata(env)}
    (run_dir / "metadata.json").write_text(json.dumps(meta, default=str))
    return run_dir


def read_state(state_dir: Path) -> dict:
    try:
        return json.loads((state_dir / "state.json").read_text())
    except (OSError, ValueError):
        return {}


def counter(state_dir: Path, key: str) -> int:
    return int((read_state(state_dir).get("counters") or {}).get(key, 0))


def wait_for(cond: Callable[[], bool], timeout_s: float, stop: threading.Event | None = None) -> bool:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if cond():
            return True
        if stop is not None and stop.is_set():
            return False
        time.sleep(0.2)
    return cond()


def busy_worker(pool: Any, timeout_s: float) -> Any:
    """A ready worker with a request in flight (its busy time grows between two snapshots)."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        a = {s.pid: s.busy_s for s in pool.snapshot().slots}
        time.sleep(0.01)
        busy = [s for s in pool.snapshot().slots
                if s.state == "ready" and s.pid and s.pid in a and s.busy_s > a[s.pid] + 1e-4]
        if busy:
            return busy[0]
    return next(s for s in pool.snapshot().slots if s.state == "ready" and s.pid)


def run(interval_s: float = 6.0, rate: float = 2.5, state_dir: str | Path | None = None,
        echo: Callable[[str], None] = print, tail_intervals: int = 2) -> dict[str, Any]:
    from clover_rl.controller.deployment import Deployment, DeploySettings
    from clover_rl.controller.faults import FailingPlacement
    from clover_rl.controller.loop import ControllerOptions
    from clover_rl.envs.serving_env import CloverServingEnv
    from tests.support.apis import ElectricityMapsFake, Fault

    work = Path(tempfile.mkdtemp(prefix="clover-faults-"))
    state = Path(state_dir) if state_dir else work / "state"
    hi_ci, lo_ci = 420.0, 260.0
    env = CloverServingEnv("efficientnet", interval_s=interval_s)
    run_dir = threshold_policy(work / "threshold_policy", env, threshold_g=(hi_ci + lo_ci) / 2)
    env.close()
    results: dict[str, Any] = {"faults": {}}
    fake = ElectricityMapsFake(latest=hi_ci)
    os.environ["ELECTRICITYMAPS_API_TOKEN"] = fake.token
    carbon = f"electricitymaps:DE,base_url={fake.url},timeout=0.5,retries=0,ttl=0,failure_ttl=0"
    opts = ControllerOptions(interval_s=interval_s, guard_window_s=interval_s / 2, echo=None)
    settings = DeploySettings(scenario="efficientnet", policy=str(run_dir), carbon=carbon, state_dir=str(state),
                              device="cpu", port=0, models="emulated", load_rps=rate, load_image_size=16,
                              options=opts)
    dep = Deployment(settings, echo=lambda t: echo(f"  {t}"), placement_wrapper=FailingPlacement)
    stop = threading.Event()
    err: dict[str, BaseException] = {}

    def deploy() -> None:
        try:
            dep.run(stop)
        except BaseException as e:
            err["e"] = e

    grid_stop = threading.Event()

    def grid() -> None:  # the intensity alternates at every decision, so the policy keeps reconfiguring
        while not grid_stop.wait(0.2):
            fake.latest = lo_ci if counter(state, "decisions") % 2 else hi_ci

    t0 = time.time()
    th_dep = threading.Thread(target=deploy, daemon=True)
    th_dep.start()
    th_grid = threading.Thread(target=grid, daemon=True)
    try:
        if not wait_for(lambda: dep.load is not None, 180, stop) or "e" in err:
            raise RuntimeError(f"deployment did not come up: {err.get('e')}")
        th_grid.start()
        echo(f"serving at {dep.url}; steady load {rate:g} req/s; state {state}")
        wait_for(lambda: counter(state, "intervals") >= 1, 10 * interval_s)

        # 1. a worker process dies while it serves a request (just after a decision, so it is not
        #    about to be retired by a reconfiguration)
        d = counter(state, "decisions")
        wait_for(lambda: counter(state, "decisions") > d, 3 * interval_s)
        victim = busy_worker(dep.backend.pool, 10.0)
        os.kill(victim.pid, signal.SIGKILL)

        def replaced() -> str:  # the dead process is gone from the pool: restarted, or retired by a reconfiguration
            slots = dep.backend.pool.snapshot().slots
            if any(s.pid == victim.pid for s in slots):
                return ""
            same = [s for s in slots if s.slot_id == victim.slot_id and s.variant == victim.variant]
            return "restarted" if same and same[0].restarts >= 1 else "replaced by a reconfiguration"

        ok = wait_for(lambda: bool(replaced()), 60)
        how = replaced() or "NOT restarted"
        results["faults"]["worker killed"] = f"{victim.slot_id} pid {victim.pid}: {how}"
        echo(f"fault 1: killed worker {victim.slot_id} (pid {victim.pid}) -> {how}")

        # 2. the carbon API fails three ways
        for name, fault in (("HTTP 500", Fault.status(500)), ("garbage body", Fault.body("<html>oops")),
                            ("timeout", Fault.sleep(1.5))):
            before = counter(state, "stale_readings")
            fake.down = fault
            ok = wait_for(lambda b=before: counter(state, "stale_readings") > b, 6 * interval_s)
            results["faults"][f"carbon {name}"] = "stale reading logged" if ok else "NOT observed"
            echo(f"fault 2: carbon API {name} -> {'stale reading, loop continues' if ok else 'not observed'}")
        fake.down = None

        # 3. a reconfiguration fails
        before = counter(state, "failed_reconfigurations")
        dep.placement.arm(1)
        ok = wait_for(lambda: counter(state, "failed_reconfigurations") > before, 8 * interval_s)
        results["faults"]["reconfiguration failed"] = "rolled back" if ok else "NOT observed"
        echo(f"fault 3: reconfiguration failed -> {'rolled back, still serving' if ok else 'not observed'}")

        # 4. the controller process dies
        pid = dep.supervisor.controller_pid if dep.supervisor else None
        restarts = counter(state, "restarts")
        decisions = counter(state, "decisions")
        if pid:
            os.kill(pid, signal.SIGKILL)
        ok = wait_for(lambda: counter(state, "restarts") > restarts and counter(state, "decisions") > decisions,
                      120 + 4 * interval_s)
        results["faults"]["controller killed"] = f"pid {pid}: " + ("restarted and resumed" if ok else "NOT resumed")
        echo(f"fault 4: killed controller pid {pid} -> {'restarted, resumed from state' if ok else 'not resumed'}")

        n = counter(state, "intervals")
        wait_for(lambda: counter(state, "intervals") >= n + tail_intervals, (tail_intervals + 2) * interval_s)
        results["controller_alive"] = bool(dep.supervisor and dep.supervisor.controller_pid)
        import httpx

        text = httpx.get(f"{dep.url}/metrics", timeout=10).text  # serving and controller figures, one scrape
        results["metrics"] = {line.split(" ")[0]: line.rsplit(" ", 1)[-1] for line in text.splitlines()
                              if line.startswith(("clover_controller_", "clover_requests_total"))}
    finally:
        grid_stop.set()
        stop.set()
        th_dep.join(120)
        dep.close()
        fake.close()
    if "e" in err:
        raise err["e"]
    tot = dep.load_totals
    st = read_state(state)
    results.update(
        sent=tot.sent, answered=tot.answered, lost=tot.lost, ok=tot.ok,
        explicit_errors={k: v for k, v in tot.status.items() if k != 200}, lost_reasons=dict(tot.lost_reasons),
        counters=st.get("counters", {}), state_config=st.get("config"), state_dir=str(state),
        supervisor_restarts=dep.supervisor.restarts if dep.supervisor else 0, wall_s=time.time() - t0,
    )
    return results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--interval", type=float, default=6.0, help="control interval (s)")
    ap.add_argument("--rate", type=float, default=2.5, help="steady load (req/s)")
    ap.add_argument("--state", default=None, help="state folder (default: a temporary one)")
    a = ap.parse_args()
    r = run(a.interval, a.rate, a.state)
    c = r["counters"]
    print("faults: " + "; ".join(f"{k}: {v}" for k, v in r["faults"].items()))
    print(f"controller: alive at the end={r['controller_alive']}, restarts={c.get('restarts')}, "
          f"intervals={c.get('intervals')}, reconfigurations={c.get('reconfigurations')}, "
          f"failed={c.get('failed_reconfigurations')}, stale readings={c.get('stale_readings')}, "
          f"guard triggers={c.get('guard_triggers')}; state {r['state_dir']} serving {r['state_config']}")
    print(f"requests: ok={r['ok']} explicit errors={r['explicit_errors']} lost reasons={r['lost_reasons']} "
          f"({r['wall_s']:.0f} s)")
    print(f"sent={r['sent']} answered={r['answered']} lost={r['lost']}")
    return 0 if r["lost"] == 0 and r["sent"] == r["answered"] else 1


if __name__ == "__main__":
    sys.exit(main())
