"""The two actors the Ray plane places on every node (plain classes; ``ray.remote`` wraps them
at use, so this module imports without Ray).

- :class:`SliceActor` -- one per MIG slice: loads the variant with the same code as the local
  worker process (``worker.prepare_worker``: ``CUDA_VISIBLE_DEVICES=<MIG UUID>`` set before CUDA
  initialises, or an emulated CPU slice with the duty-cycle throttle) and answers one request
  at a time (Ray's default actor concurrency of 1 is the slice's single queue slot).
- :class:`NodeAgent` -- one per node: owns that node's MIG layout. On CUDA it drives
  :class:`clover_rl.mig.manager.MigManager` per GPU (idempotent: unchanged instances keep their
  UUIDs; a failed change is rolled back to the previous layout), or with ``mig_backend=
  "gpu-operator"`` the Kubernetes GPU operator's MIG manager
  (:class:`clover_rl.mig.gpu_operator.GpuOperatorPlacement`: whole node, minutes, label rollback);
  on the CPU device it keeps the emulated layout. ``ping`` is the heartbeat the fleet monitor watches.
"""
from __future__ import annotations

import os
import time
from typing import Any

from clover_rl.mig.partition import Partition, Slice
from clover_rl.serving.live.worker import (
    WorkerSpec,
    one_line,
    pin_device,
    prepare_worker,
    serve_request,
)


class SliceActor:
    """One slice's model server. ``ready()`` -> ``("ready", info)`` or ``("error", message)``
    (a failed load is reported, not raised, so the caller gets a one-line reason)."""

    def __init__(self, spec: WorkerSpec) -> None:
        self.spec = spec
        self.servable: Any = None
        try:
            self.servable, self.info = prepare_worker(spec, pin_device(spec))
            self.error = ""
        except Exception as e:
            self.info, self.error = {}, one_line(e)

    def ready(self) -> tuple[str, Any]:
        return ("error", self.error) if self.error else ("ready", self.info)

    def infer(self, rid: int, inputs: dict[str, Any]) -> tuple:
        """Same reply tuples as the worker process's pipe protocol (``serve_request``)."""
        return serve_request(self.servable, self.spec, rid, inputs)


class NodeAgent:
    """The MIG owner of one node. ``device``: ``cpu`` (emulated GPUs) or ``cuda``.

    ``realize(gpu, partition)`` makes local GPU ``gpu`` hold ``partition`` and returns one device
    string per slice (``cpu`` or ``cuda:<MIG UUID>``); applying the layout a GPU already has
    changes nothing. Errors are :class:`~clover_rl.errors.BackendError` with one line.
    """

    def __init__(self, device: str, gpu_name: str, n_gpus: int, mig: bool = True, nvml: Any = None,
                 mig_backend: str = "nvml", operator: dict[str, Any] | None = None) -> None:
        from clover_rl.mig.catalog import get_gpu
        from clover_rl.serving.live.placement import MigPlacement, default_placement

        self.device = device
        self.n_gpus = int(n_gpus)
        gpu = get_gpu(gpu_name)
        # nvml: a stand-in NVML module (tests); None: the real one
        if device == "cuda" and mig and mig_backend == "gpu-operator":
            from clover_rl.mig.gpu_operator import operator_placement

            self.placement: Any = operator_placement(gpu, nvml=nvml, **(operator or {}))
        elif mig_backend not in ("nvml", "gpu-operator"):
            from clover_rl.errors import ConfigError

            raise ConfigError(f"--mig-backend must be nvml or gpu-operator, got {mig_backend!r}")
        else:
            self.placement = MigPlacement(gpu, nvml=nvml) if device == "cuda" and mig else default_placement(device, gpu, mig)
        self.layouts: dict[int, tuple[str, ...]] = {}
        self.changes = 0
        self.started = time.time()

    def ping(self) -> dict[str, Any]:
        import ray

        return {"node_id": ray.get_runtime_context().get_node_id(), "pid": os.getpid(), "gpus": self.n_gpus,
                "device": self.device, "layouts": {g: list(v) for g, v in self.layouts.items()},
                "changes": self.changes}

    def make_before_break(self) -> bool:
        return bool(self.placement.make_before_break)

    def realize(self, gpu_index: int, partition: Partition) -> dict[Slice, str]:
        from clover_rl.errors import BackendError

        if not 0 <= gpu_index < self.n_gpus:
            raise BackendError(f"node has {self.n_gpus} GPU(s); no GPU {gpu_index}")
        layout = tuple(f"{s.profile}@{s.start}" for s in partition.slices)
        mapping = self.placement.realize(gpu_index, partition)
        if self.layouts.get(gpu_index) != layout:
            self.changes += 1
        self.layouts[gpu_index] = layout
        return mapping

    def close(self) -> None:
        self.placement.close()
