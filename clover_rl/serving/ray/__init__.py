"""The Ray serving plane: a fleet of (emulated or MIG) GPUs on several nodes behind one front end.

Why Ray: it is what Python serving users already run (Ray Serve, KubeRay), so a fleet is one
``ray start`` per node rather than home-made RPC. Layout (see ``docs/ray.md``)::

    clover-rl deploy --ray ADDRESS   (driver: KServe v2 front end, dispatcher, controller)
      RayPool (pool.py)       per-GPU plan, rolling make-before-break reconfiguration, <= a
                              fraction of the fleet in transition at once; lost GPUs
      FleetMonitor (nodes.py) node discovery, heartbeats to the node agents, loss / rejoin
      RayWorkerHandle (handle.py)   the dispatcher's worker, one SliceActor per slice
    on every node (actors.py):
      NodeAgent     owns the node's MIG layout (NVML manager: idempotent, with rollback)
      SliceActor    one per slice; ``CUDA_VISIBLE_DEVICES=<MIG UUID>`` or an emulated slice
    RayBackend / RayPlane (plane.py), RayDeployment (deploy.py, ``deploy --ray``),
    LocalCluster (local.py: a multi-node cluster on one machine for tests and benchmarks)

Ray is an optional extra: nothing here imports it at package import; :func:`require_ray`
gives the one-line error that names the extra.
"""
from __future__ import annotations

from types import ModuleType

from clover_rl.errors import ConfigError

#: Ray resource that makes a node a fleet member with that many emulated GPUs (CPU device).
EMULATED_GPU_RESOURCE = "clover_gpu"
#: Ray node label naming a node stably across raylet restarts (default: its hostname).
NODE_LABEL = "clover-node"


def require_ray() -> ModuleType:
    """``import ray``, or ConfigError naming the extra to install."""
    try:
        import ray
    except ImportError:
        raise ConfigError("the Ray serving plane needs Ray: pip install 'clover-rl[ray]'") from None
    return ray


__all__ = ["EMULATED_GPU_RESOURCE", "NODE_LABEL", "require_ray"]
