"""A local multi-node Ray cluster on one machine (tests, benchmarks, the docs' two-node example).

``ray.cluster_utils.Cluster`` starts each node as its own raylet; :func:`local_cluster` gives every
node ``gpus`` emulated GPUs (the ``clover_gpu`` resource) and a ``clover-node`` label (``a``,
``b``, ...), keeps the cluster's files in a private temp folder (short: Ray's socket paths must
fit; no clash with other Ray users of ``/tmp/ray``), and retries start-up: Ray gives a raylet a
fixed 30 s to register, which a busy 2-core machine can miss.
"""
from __future__ import annotations

import shutil
import tempfile
import time
from typing import Any

from clover_rl.errors import BackendError
from clover_rl.serving.ray import EMULATED_GPU_RESOURCE, NODE_LABEL, require_ray


def node_args(name: str, gpus: int = 2, num_cpus: int = 1) -> dict[str, Any]:
    """``Cluster.add_node`` keyword arguments of one emulated-GPU fleet node."""
    return {"num_cpus": num_cpus, "resources": {EMULATED_GPU_RESOURCE: gpus}, "labels": {NODE_LABEL: name}}


class LocalCluster:
    """``nodes`` raylets x ``gpus`` emulated GPUs; :meth:`close` stops them and removes the folder."""

    def __init__(self, nodes: int = 2, gpus: int = 2, *, num_cpus: int = 1, attempts: int = 3) -> None:
        require_ray()
        from ray.cluster_utils import Cluster

        self.gpus = gpus
        self.num_cpus = num_cpus
        self.names = [chr(ord("a") + i) for i in range(nodes)]
        self.temp_dir = tempfile.mkdtemp(prefix="cr-", dir="/tmp")
        last: Exception | None = None
        for attempt in range(attempts):
            self.cluster = Cluster(initialize_head=False)
            try:
                head = {**node_args(self.names[0], gpus, num_cpus), "include_dashboard": False,
                        "temp_dir": self.temp_dir}
                self.nodes = [self.cluster.add_node(**head)]
                self.nodes += [self.cluster.add_node(**node_args(n, gpus, num_cpus)) for n in self.names[1:]]
                return
            except Exception as e:  # a raylet that missed Ray's start-up window: clean up, retry
                last = e
                self.cluster.shutdown()
                time.sleep(2.0 * (attempt + 1))
        shutil.rmtree(self.temp_dir, ignore_errors=True)
        raise BackendError(f"could not start a local Ray cluster in {attempts} attempts: {last}")

    @property
    def address(self) -> str:
        return str(self.cluster.address)

    def kill_raylet(self, index: int) -> None:
        """SIGKILL node ``index``'s raylet (its workers and actors die with it)."""
        self.nodes[index].kill_raylet()

    def restart_node(self, index: int) -> None:
        """Remove node ``index`` (whatever is left of it) and start a new raylet with its name."""
        self.cluster.remove_node(self.nodes[index], allow_graceful=False)
        self.nodes[index] = self.cluster.add_node(**node_args(self.names[index], self.gpus, self.num_cpus))

    def close(self) -> None:
        try:
            self.cluster.shutdown()
        finally:
            shutil.rmtree(self.temp_dir, ignore_errors=True)

    def __enter__(self) -> LocalCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
