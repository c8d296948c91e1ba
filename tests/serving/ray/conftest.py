"""A tiny local Ray cluster: 2 nodes x 2 emulated GPUs (``clover_gpu``), labels ``clover-node=a|b``,
one CPU each, no dashboard, in its own temp folder (``LocalCluster``); one per test module (starting
one takes ~30 s on 2 cores), always shut down. A test that ends the driver's connection (``deploy
--ray`` shuts Ray down when it stops) must be the module's last."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[Any]:
    from clover_rl.serving.ray.local import LocalCluster

    cluster = LocalCluster(nodes=2, gpus=2)
    try:
        ray.init(address=cluster.address, log_to_driver=False, namespace="clover-rl-test")
        yield cluster
    finally:
        if ray.is_initialized():
            ray.shutdown()
        cluster.close()


@pytest.fixture(scope="module")
def emulated() -> tuple[Any, Any]:
    """(service with profiled-delay noop models, GPU model) of the efficientnet scenario."""
    from clover_rl.controller.emulate import emulated_service
    from clover_rl.scenario import load_scenario

    sc = load_scenario("efficientnet")
    return emulated_service(sc.service_spec(), sc.load_profile(), sc.gpu_model()), sc.gpu_model()
