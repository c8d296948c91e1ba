"""A tiny local Ray cluster: 2 nodes x 2 emulated GPUs (``clover_gpu``), labels ``clover-node=a|b``,
one CPU each, no dashboard, in its own temp folder; always shut down."""
from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest

ray = pytest.importorskip("ray")


def node_args(name: str) -> dict[str, Any]:
    return {"num_cpus": 1, "resources": {"clover_gpu": 2}, "labels": {"clover-node": name}}


@pytest.fixture
def ray_node_args() -> Any:
    """``name -> add_node keyword arguments`` (to bring a node back)."""
    return node_args


@pytest.fixture
def ray_cluster() -> Iterator[Any]:
    from ray.cluster_utils import Cluster

    temp = tempfile.mkdtemp(prefix="cr-t-", dir="/tmp")  # short: Ray's socket paths must fit
    cluster = None
    try:
        cluster = Cluster(initialize_head=True,
                          head_node_args={**node_args("a"), "include_dashboard": False, "temp_dir": temp})
        cluster.add_node(**node_args("b"))
        ray.init(address=cluster.address, log_to_driver=False, namespace="clover-rl-test")
        yield cluster
    finally:
        if ray.is_initialized():
            ray.shutdown()
        if cluster is not None:
            cluster.shutdown()
        shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture(scope="module")
def emulated() -> tuple[Any, Any]:
    """(service with profiled-delay noop models, GPU model) of the efficientnet scenario."""
    from clover_rl.controller.emulate import emulated_service
    from clover_rl.scenario import load_scenario

    sc = load_scenario("efficientnet")
    return emulated_service(sc.service_spec(), sc.load_profile(), sc.gpu_model()), sc.gpu_model()
