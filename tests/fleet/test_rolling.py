"""The local plane with a configuration per GPU (``RollingPool``): only the GPUs whose
configuration changes are touched, at most ``max_down`` at once, and the live controller drives a
heterogeneous fleet through it without rollbacks. Emulated workers (profiled delays) on CPU."""
from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from clover_rl.errors import ConfigError
from clover_rl.fleet.configuration import FleetConfiguration
from clover_rl.fleet.layout import resize_overrides
from clover_rl.fleet.rolling import rolling_pool_class
from clover_rl.mig.config import parse_configuration
from clover_rl.scenario import load_scenario


def test_resize_overrides(tiny_fleet: str) -> None:
    sc = load_scenario(tiny_fleet)
    over = resize_overrides(sc, [("x", 2), ("y", 1)])
    assert over["gpus"] == 3 and over["fleet"]["nodes"] == [{"name": "x", "gpus": 2}, {"name": "y", "gpus": 1}]
    assert (over["fleet"]["candidates"], over["fleet"]["levels"]) == (3, 2)
    resized = load_scenario(sc, **over)
    assert resized.gpus == 3 and [n.name for n in resized.fleet.nodes] == ["x", "y"]
    assert resize_overrides(load_scenario("efficientnet"), [("a", 2), ("b", 2)]) == {"gpus": 4}
    with pytest.raises(ConfigError, match="max-down"):
        rolling_pool_class(sc, 1.5)


@pytest.fixture(scope="module")
def fleet_backend(tiny_fleet: str) -> Iterator[Any]:
    from clover_rl.controller.emulate import emulated_service
    from clover_rl.serving.live.backend import LiveBackend

    sc = load_scenario(tiny_fleet)
    svc = emulated_service(sc.service_spec(), sc.load_profile(), sc.gpu_model())
    be = LiveBackend(svc, sc.gpu_model(), 2, "cpu", 0, loadgen="thread", start_timeout_s=120.0,
                     pool_class=rolling_pool_class(sc, 0.5))
    try:
        yield be
    finally:
        be.close()


@pytest.mark.live
def test_only_changed_gpus_reconfigure(fleet_backend: Any) -> None:
    from clover_rl.serving.live.models import synthetic_inputs

    be = fleet_backend
    gpu, names = be.gpu, be.service.variant_names
    big, split = (parse_configuration(x, gpu, names) for x in ("7g:b7", "4g:b7,3g:b1"))
    mixed = FleetConfiguration.of([big, split])
    rep = be.apply(mixed)
    assert rep.ok, rep.message
    assert be.configuration == mixed  # the fleet view: what the controller compares with its actions
    assert sorted(c.label() for c in be.pool.fleet_configuration.values()) == ["4g:b7,3g:b1", "7g:b7"]
    x = synthetic_inputs(be.service, np.random.default_rng(0))
    slots = {be.pool.submit(x).result(60).slot_id for _ in range(30)}
    assert {s.split("/")[0] for s in slots} == {"gpu0", "gpu1"}  # both GPUs serve
    # the same multiset in any order is the same fleet: nothing moves
    rep = be.apply(FleetConfiguration.of([split, big]))
    assert rep.ok and rep.slices_changed == 0 and rep.message == "unchanged"
    # all on 7g: only the split GPU changes (one worker started), the other keeps serving
    kept = {g for g, c in be.pool.fleet_configuration.items() if c == big}
    be.pool.max_in_transition = 0
    rep = be.apply(FleetConfiguration.identical(big, 2))
    assert rep.ok and rep.slices_changed == 1 and be.pool.max_in_transition == 1, rep.message
    assert "1 GPU(s) reconfigured" in rep.message
    assert {g for g, c in be.pool.fleet_configuration.items() if c == big} == {0, 1} and kept


@pytest.mark.live
def test_controller_drives_a_mixed_fleet_live(fleet_backend: Any, tiny_fleet: str, tmp_path: Any) -> None:
    """The live controller (in process, real clock, short intervals) applies a fleet action that
    mixes two configurations; the plane's fleet view matches it, so no rollback is counted."""
    from clover_rl.controller.emulate import ProfileEnergyModel
    from clover_rl.controller.loop import Controller, ControllerOptions
    from clover_rl.controller.plane import LivePlane
    from clover_rl.controller.supervisor import make_carbon_source
    from clover_rl.service_model import ServiceModel
    from tests.support.controller import FixedPolicy

    model = ServiceModel.from_scenario(tiny_fleet, control_interval_s=2.0)
    cat = model.catalog
    mix = min((i for i in range(cat.n_identical, len(cat)) if cat.feasible[i]),
              key=lambda i: sum(len(c.pairs) * n for c, n in cat.configs[i].counts))
    sc = model.scenario
    plane = LivePlane(fleet_backend, energy_model=ProfileEnergyModel(sc.load_profile(), sc.gpus), timeout_s=sc.timeout_s)
    ctl = Controller(tiny_fleet, "fixed", plane, make_carbon_source("file:caiso_pge:eval"), tmp_path,
                     ControllerOptions(interval_s=2.0, duration_s=4.0, echo=None, tensorboard=False),
                     model=model, policy_obj=FixedPolicy(mix))
    ctl.run()
    assert not cat.configs[mix].is_identical
    assert fleet_backend.configuration == cat.configs[mix]
    events = [json.loads(line) for line in (tmp_path / "decisions.jsonl").read_text().splitlines()]
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["config"] == cat.configs[mix].label() and "+" in state["config"]
    assert not state["counters"].get("failed_reconfigurations") and not [e for e in events if e["kind"] == "rollback"]
    assert [e["config"] for e in events if e["kind"] == "decision"][0] == cat.configs[mix].label()


def test_controller_resumes_a_resized_fleet(tiny_fleet: str, tmp_path: Any) -> None:
    """A Ray node lost: the controller restarts on fewer GPUs (another fleet action space) and
    continues from what the plane serves, without a needless reconfiguration."""
    from clover_rl.controller.clock import FakeClock
    from clover_rl.controller.loop import Controller, ControllerOptions
    from clover_rl.controller.plane import ReplayPlane
    from clover_rl.controller.supervisor import make_carbon_source
    from clover_rl.service_model import ServiceModel
    from tests.support.controller import FixedPolicy

    clock = FakeClock(1.7e9)
    carbon = make_carbon_source("file:caiso_pge:eval", start=clock.time(), clock=clock)
    opts = ControllerOptions(interval_s=3600.0, duration_s=3600.0, echo=None, tensorboard=False)
    m2 = ServiceModel.from_scenario(tiny_fleet)
    mix = next(i for i in range(m2.catalog.n_identical, len(m2.catalog)) if m2.catalog.feasible[i])
    plane2 = ReplayPlane(m2.replay_backend(seed=0), clock, m2.mean_rate)
    Controller(tiny_fleet, "fixed", plane2, carbon, tmp_path, opts, clock=clock, model=m2,
               policy_obj=FixedPolicy(mix)).run()
    left = plane2.backend.gpu_configurations[0]  # node b is lost; node a's GPU keeps serving
    m1 = ServiceModel.from_scenario(tiny_fleet, **resize_overrides(m2.scenario, [("a", 1)]))
    assert m1.catalog.signature != m2.catalog.signature
    be1 = m1.replay_backend(seed=0)
    be1.apply(FleetConfiguration.identical(left, 1))
    ctl = Controller(tiny_fleet, "fixed", ReplayPlane(be1, clock, m1.mean_rate), carbon, tmp_path, opts, clock=clock,
                     model=m1, policy_obj=FixedPolicy())
    ctl.start()
    try:
        assert ctl.current == m1.catalog.index[FleetConfiguration.identical(left, 1)]
        events = [json.loads(x) for x in (tmp_path / "decisions.jsonl").read_text().splitlines()]
        assert [e["config"] for e in events if e["kind"] == "fleet_resized"] == [left.label()]
        assert "already serves" in events[-1]["note"]
    finally:
        ctl.close()
    # another scenario in the same state folder is still refused
    with pytest.raises(ConfigError, match="another configuration catalog"):
        Controller("efficientnet", "base", ReplayPlane(be1, clock, 1.0), carbon, tmp_path, opts, clock=clock).start()
