"""The Ray serving plane on a local 2-node cluster (one per module): per-GPU configurations and
fleets, rolling reconfiguration within the max-down fraction, a node lost under load and back,
and ``clover-rl deploy --ray`` of a fleet scenario (last: it shuts the driver's Ray down)."""
from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import pytest

from clover_rl.fleet.configuration import FleetConfiguration
from clover_rl.mig.config import parse_configuration
from clover_rl.serving.live.models import synthetic_inputs

pytestmark = pytest.mark.live


def _backend(emulated: Any, **kwargs: Any) -> Any:
    from clover_rl.serving.ray.plane import RayBackend

    svc, gpu = emulated
    return RayBackend(svc, gpu, "cpu", 0, start_timeout_s=120.0,
                      monitor_options={"period_s": 0.5, "ping_timeout_s": 2.0}, **kwargs)


def _cfg(emulated: Any, label: str) -> Any:
    svc, gpu = emulated
    return parse_configuration(label, gpu, svc.variant_names)


def _ask(backend: Any, n: int) -> list[Any]:
    x = synthetic_inputs(backend.service, np.random.default_rng(0))
    futs = [backend.pool.submit(x) for _ in range(n)]
    return [f.result(120) for f in futs]


def test_per_gpu_configuration_and_rolling_limit(ray_cluster: Any, emulated: Any) -> None:
    be = _backend(emulated, max_down_fraction=0.5)
    try:
        assert [(g.index, g.node, g.local) for g in be.pool.fleet] == [(0, "a", 0), (1, "a", 1), (2, "b", 0), (3, "b", 1)]
        big, split = _cfg(emulated, "7g:b7"), _cfg(emulated, "4g:b7,3g:b5")
        rep = be.apply({0: big, 1: split, 2: split, 3: big})
        assert rep.ok, rep.message
        assert {g: c.label() for g, c in be.pool.fleet_configuration.items()} == {
            0: "7g:b7", 1: "4g:b7,3g:b5", 2: "4g:b7,3g:b5", 3: "7g:b7"}
        slots = {r.slot_id for r in _ask(be, 40)}
        assert {s.split("/")[0] for s in slots} == {"gpu0", "gpu1", "gpu2", "gpu3"}
        assert slots <= {"gpu0/7g.40gb@0", "gpu3/7g.40gb@0", "gpu1/4g.20gb@0", "gpu1/3g.20gb@4",
                         "gpu2/4g.20gb@0", "gpu2/3g.20gb@4"}
        # the node agents hold the layouts (on node b: local GPU 0 split, local GPU 1 whole)
        import ray

        b = be.pool.monitor.nodes["b"]
        assert ray.get(b.agent.ping.remote(), timeout=30)["layouts"] == {0: ["4g.20gb@0", "3g.20gb@4"], 1: ["7g.40gb@0"]}
        # swap every GPU: at most floor(0.5 x 4) = 2 in transition at once, and requests keep
        # being answered throughout (make-before-break on emulated slices)
        be.pool.max_in_transition = 0
        answers: list[Any] = []
        done = threading.Event()

        def traffic() -> None:
            while not done.is_set():
                answers.extend(_ask(be, 2))

        t = threading.Thread(target=traffic, daemon=True)
        t.start()
        rep = be.apply({0: split, 1: big, 2: big, 3: split})
        done.set()
        t.join(60)
        assert rep.ok, rep.message
        assert be.pool.max_in_transition == 2
        assert answers and all(a.slot_id for a in answers)
        # one at a time with a quarter of the fleet; an unchanged GPU is not touched
        be.pool.max_down_fraction, be.pool.max_in_transition = 0.25, 0
        rep = be.apply({0: big, 1: split, 2: big, 3: split})
        assert rep.ok and be.pool.max_in_transition == 1 and rep.slices_changed == 3  # 7g on 0; 4g + 3g on 1
        assert "2 GPU(s) reconfigured" in rep.message
        # a fleet (GPUs per configuration) lands on the GPUs that already serve it: nothing moves;
        # in the fleet view the pool reports it as the controller's fleet action
        rep = be.apply(FleetConfiguration.of([split, split, big, big]))
        assert rep.ok and rep.slices_changed == 0 and rep.message == "unchanged"
        be.pool.fleet_view = True
        assert be.configuration == FleetConfiguration.of([big, big, split, split])
        rep = be.apply(FleetConfiguration.of([big, big, big, split]))
        assert rep.ok and rep.slices_changed == 1 and "1 GPU(s) reconfigured" in rep.message
    finally:
        be.close()


@pytest.mark.slow
def test_node_killed_is_lost_requests_answered_and_rejoins(ray_cluster: Any, emulated: Any) -> None:
    be = _backend(emulated)
    try:
        assert be.apply(_cfg(emulated, "4g:b7,3g:b5")).ok
        x = synthetic_inputs(be.service, np.random.default_rng(0))
        futs = [be.pool.submit(x) for _ in range(30)]
        t0 = time.time()
        ray_cluster.kill_raylet(1)
        futs += [be.pool.submit(x) for _ in range(30)]
        answers = [f.result(120) for f in futs]  # RequestError (no answer) would raise here
        assert len(answers) == 60
        while not be.pool.lost_gpus and time.time() - t0 < 30:
            time.sleep(0.2)
        assert be.pool.lost_gpus == [2, 3], "node b's GPUs are marked lost"
        assert time.time() - t0 < 10, "noticed within one control window"
        assert {a.slot_id.split("/")[0] for a in _ask(be, 10)} <= {"gpu0", "gpu1"}
        assert set(be.pool.fleet_configuration) == {0, 1}
        # back: a new raylet with the same label takes GPUs 2 and 3 back, with their configuration
        ray_cluster.restart_node(1)
        while len(be.pool.fleet_configuration) < 4 and time.time() - t0 < 150:
            time.sleep(0.5)
        assert {g: c.label() for g, c in be.pool.fleet_configuration.items()} == {g: "4g:b7,3g:b5" for g in range(4)}
        assert {a.slot_id.split("/")[0] for a in _ask(be, 40)} & {"gpu2", "gpu3"}
    finally:
        be.close()


def test_deploy_fleet_scenario_on_ray(ray_cluster: Any, tmp_path: Any, capsys: Any) -> None:
    """A fleet scenario written for other nodes is deployed on the cluster's (a:2, b:2): the
    controller plans on a 4-GPU fleet action space and the plane's fleet view matches its choice
    (no failed reconfiguration)."""
    import json

    import yaml

    from clover_rl.cli import main
    from clover_rl.fleet.layout import resize_overrides
    from clover_rl.scenario import load_scenario
    from clover_rl.service_model import ServiceModel

    sc = {"name": "ray-fleet", "service": "efficientnet", "gpus": 2,
          "fleet": {"nodes": [{"name": "n1", "gpus": 1}, {"name": "n2", "gpus": 1}], "candidates": 3, "levels": 4},
          "carbon": {"trace": "caiso_pge", "period": "eval", "forecast_hours": 2},
          "workload": {"kind": "constant", "rate_rps": 2.0}, "objective": {"kind": "accuracy_floor", "floor": 0.98}}
    path = tmp_path / "ray-fleet.yaml"
    path.write_text(yaml.safe_dump(sc))
    state = tmp_path / "state"
    rc = main(["deploy", "--ray", ray_cluster.address, "--scenario", str(path), "--policy", "base", "--carbon",
               "file:caiso_pge:eval,speed=180", "--models", "emulated", "--interval", "6s", "--duration", "12s",
               "--port", "0", "--load", "2", "--state", str(state), "--max-down", "0.5"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "Ray fleet a:2, b:2 = 4 x a100-40gb" in out and "at most 2 GPU(s) reconfiguring at once" in out
    st = json.loads((state / "state.json").read_text())
    resized = load_scenario(str(path), **resize_overrides(load_scenario(str(path)), [("a", 2), ("b", 2)]))
    assert st["catalog_signature"] == ServiceModel.from_scenario(resized, control_interval_s=6.0).catalog.signature  # 4 GPUs
    assert st["config"] == "7g:b7" and not st["counters"].get("failed_reconfigurations"), st
    assert st["counters"].get("decisions", 0) >= 1
