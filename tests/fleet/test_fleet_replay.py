"""FleetReplayBackend: identical fleets replay exactly as ReplayBackend; a change charges downtime
only to the GPUs that change, and the others keep serving."""
from __future__ import annotations

import pytest

from clover_rl.envs.actions import ActionCatalog
from clover_rl.errors import ConfigError
from clover_rl.fleet import FleetConfiguration
from clover_rl.fleet.replay import FleetReplayBackend
from clover_rl.mig.catalog import get_gpu
from clover_rl.mig.config import parse_configuration
from clover_rl.services import load_service
from clover_rl.serving.replay import ReplayBackend

GPU = get_gpu("a100-40gb")
SVC = load_service("efficientnet")
CAT = ActionCatalog(GPU, SVC)


def cfg(text: str):
    return parse_configuration(text, GPU, SVC.variant_names)


A, B, C = cfg("7g:b7"), cfg("4g:b7,2g:b5,1g:b5"), cfg("3g:b7,3g:b7")


@pytest.mark.parametrize("mode", ["steady", "exact"])
def test_identical_fleet_replays_exactly_like_the_paper_backend(mode: str) -> None:
    plain = ReplayBackend(SVC, None, GPU, 3, seed=5, mode=mode)
    fleet = FleetReplayBackend(SVC, None, GPU, 3, seed=5, mode=mode)
    for c, rate in ((A, 2.0), (B, 3.0), (B, 3.0), (C, 1.5)):
        ra, rb = plain.apply(c), fleet.apply(FleetConfiguration.identical(c, 3))
        assert ra.downtime_s == rb.downtime_s
        ma, mb = plain.run(600.0, rate), fleet.run(600.0, rate)
        assert ma == mb


def test_downtime_only_on_changed_gpus_and_the_rest_keep_serving() -> None:
    be = FleetReplayBackend(SVC, None, GPU, 4, seed=1, mode="exact")
    be.apply(FleetConfiguration.identical(A, 4))
    be.run(60.0, 2.0)
    target = FleetConfiguration.of({A: 3, B: 1})
    rep = be.apply(target)
    assert be.configuration == target
    changed = {sid.split("/")[0] for sid, d in rep.downtime_s.items() if d > 0}
    assert changed == {"gpu3"}  # one GPU changes: GPUs keep A in order while A is still wanted
    assert all(d == 0.0 for sid, d in rep.downtime_s.items() if not sid.startswith("gpu3/"))
    assert set(be.pending_downtime_s) == {s for s in rep.downtime_s if s.startswith("gpu3/")}
    assert be.gpu_configurations == (A, A, A, B)
    m = be.run(60.0, 2.0)  # the three unchanged GPUs serve through gpu3's reconfiguration
    assert m.served > 0 and m.dropped == 0
    # going back changes that GPU only, again
    rep = be.apply(FleetConfiguration.identical(A, 4))
    assert {sid.split("/")[0] for sid, d in rep.downtime_s.items() if d > 0} == {"gpu3"}


def test_plain_configuration_means_identical_and_bad_fleets_are_refused() -> None:
    be = FleetReplayBackend(SVC, None, GPU, 2, seed=0)
    be.apply(B)
    assert be.configuration == FleetConfiguration.identical(B, 2)
    with pytest.raises(ConfigError, match="has 3 GPUs"):
        be.apply(FleetConfiguration.identical(A, 3))
    st = be.steady_state(2.0, FleetConfiguration.of({A: 1, C: 1}))
    assert st.capacity_rps == pytest.approx(be.capacity_rps(A) / 2 + be.capacity_rps(C) / 2)
