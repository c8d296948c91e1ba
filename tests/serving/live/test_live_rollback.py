"""The LiveBackend owns rollback (Backend contract): a reconfiguration that fails part-way --
break-before-make placement retired the old workers before the fault -- is restored once,
inside ``apply``, and the report and ``configuration`` say what serves afterwards."""
from __future__ import annotations

import numpy as np
import pytest

from clover_rl.controller.faults import FailingPlacement
from clover_rl.mig.config import parse_configuration
from clover_rl.serving.live.backend import LiveBackend
from clover_rl.serving.live.placement import default_placement
from tests.support.live import GPU, noop_service

pytestmark = [pytest.mark.live, pytest.mark.timeout(120)]


def test_break_before_make_failure_is_restored_by_the_backend_once() -> None:
    svc = noop_service()
    placement = FailingPlacement(default_placement("cpu", GPU))
    placement.make_before_break = False  # as MIG: old slices go before new ones exist
    old = parse_configuration("4g:b1,3g:b3", GPU, svc.variant_names)
    new = parse_configuration("7g:b7", GPU, svc.variant_names)
    with LiveBackend(svc, GPU, placement=placement) as b:
        assert b.apply(old).ok
        placement.arm(1)
        rep = b.apply(new)  # the backend itself restores (no plane or controller around it)
        assert not rep.ok and rep.current == old and b.configuration == old
        assert "injected fault" in rep.message and f"restored {old.label()}" in rep.message
        assert placement.injected == 1
        assert b.pool.ready_count == 2  # the previous slices serve again
        x = {"INPUT__0": np.zeros((1, 4, 4, 3), np.uint8)}
        assert {b.pool.infer(x, 10).variant for _ in range(4)} <= {"b1", "b3"}
