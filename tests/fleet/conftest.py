"""A tiny fleet scenario (two EfficientNet variants, 2 GPUs on 2 nodes): fast fleet tables."""
from __future__ import annotations

import pytest
import yaml

from clover_rl.paths import configs_dir


@pytest.fixture(scope="session")
def tiny_fleet(tmp_path_factory: pytest.TempPathFactory) -> str:
    d = tmp_path_factory.mktemp("tiny_fleet")
    svc = yaml.safe_load((configs_dir() / "services" / "efficientnet.yaml").read_text())
    svc["variants"] = [v for v in svc["variants"] if v["name"] in ("b1", "b7")]
    (d / "efficientnet.yaml").write_text(yaml.safe_dump(svc))
    sc = {"name": "tiny-fleet", "service": "efficientnet.yaml", "gpus": 2,
          "fleet": {"nodes": [{"name": "a", "gpus": 1}, {"name": "b", "gpus": 1}], "candidates": 3, "levels": 2},
          "carbon": {"trace": "caiso_pge", "forecast_hours": 2}, "episode_hours": 3,
          "workload": {"kind": "constant", "rate_rps": 2.0},
          "objective": {"kind": "accuracy_floor", "floor": 0.98}}
    (d / "tiny-fleet.yaml").write_text(yaml.safe_dump(sc))
    return str(d / "tiny-fleet.yaml")


@pytest.fixture(scope="module")
def env(tiny_fleet: str):
    """The tiny fleet's env on the CAISO trace, one per module (the fleet tables take seconds)."""
    from clover_rl.envs.serving_env import CloverServingEnv

    e = CloverServingEnv(tiny_fleet, carbon_trace="caiso_pge")
    yield e
    e.close()
