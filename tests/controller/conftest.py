"""Controller fixtures: one replay environment, a fake clock, and the replay rig
(``tests.support.controller``)."""
from __future__ import annotations

import pytest

from clover_rl.controller.clock import FakeClock
from tests.support.controller import Rig


@pytest.fixture(scope="session")
def env():
    from clover_rl.envs.serving_env import CloverServingEnv

    return CloverServingEnv("efficientnet")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def rig(env, clock, tmp_path) -> Rig:
    return Rig(env, clock, tmp_path / "state")
