"""``RayBackend`` and ``RayPlane``: the fleet behind the local plane's contract.

``RayBackend`` = a :class:`~.pool.RayPool` (slice actors on the Ray nodes) + the existing KServe
v2 front end, serving on the pool's event loop in the driver (the front end calls the slice
actors through their Ray handles). ``RayPlane`` is the controller's
:class:`~clover_rl.controller.plane.ServicePlane` over it: the same measurements as
:class:`~clover_rl.controller.plane.LivePlane` (latency inside the service, status, variant of
every request the front end served), plus the fleet view (``fleet_configuration``,
``live_gpus``, ``lost_gpus``) and ``apply`` of a per-GPU mapping.

Why the existing front end calling handles rather than Ray Serve HTTP ingress: one queue with
admission control for the whole fleet (Serve routes per replica with its own queues and no
deadline-aware refusal), the same KServe v2 protocol and ``/metrics`` as the local plane, and one
hop (front end -> slice actor) instead of two (proxy -> ingress deployment -> replica).
``benchmarks/ray_cluster.py`` measures what it serves.
"""
from __future__ import annotations

import logging
from typing import Any

from clover_rl.controller.plane import LivePlane
from clover_rl.errors import CloverError
from clover_rl.fleet.configuration import FleetConfiguration
from clover_rl.mig.catalog import GpuModel
from clover_rl.mig.config import Configuration
from clover_rl.services import ServiceSpec
from clover_rl.serving.backend import ReconfigReport
from clover_rl.serving.live.realtime import start_front_end, stop_front_end
from clover_rl.serving.live.server import create_app
from clover_rl.serving.ray.pool import FleetTarget, RayPool

log = logging.getLogger("clover_rl.serving.ray")


class ProfileOnlyMeter:
    """The Ray plane reads no hardware meter on remote nodes: its energy comes from the profile
    (``ProfileEnergyModel``, labelled estimated); this meter only keeps the plane's interface."""

    estimated = True
    source = "profile"

    def read_joules(self) -> float:
        return 0.0

    def close(self) -> None:
        pass


class RayBackend:
    """Slice actors on every fleet node + the KServe v2 front end on ``host:port`` (driver)."""

    name = "ray"

    def __init__(self, service: ServiceSpec, gpu: GpuModel, device: str = "cpu", port: int = 0, *,
                 host: str = "127.0.0.1", mig: bool = True, max_down_fraction: float = 0.25,
                 cpu_scale: float = 1.0, cpu_threads: int = 1, monitor_options: dict[str, Any] | None = None,
                 request_timeout_s: float = 60.0, fleet_view: bool = False, **pool_options: Any) -> None:
        self.service = service
        self.gpu = gpu
        self.device = device
        self.request_timeout_s = request_timeout_s
        self.pool = RayPool.connect(service, gpu, device, mig=mig, max_down_fraction=max_down_fraction,
                                    monitor_options=monitor_options,
                                    input_scale=cpu_scale if device == "cpu" else 1.0, cpu_threads=cpu_threads,
                                    fleet_view=fleet_view, **pool_options)
        self.n_gpus = len(self.pool.fleet)
        self.meter, self.frontend = start_front_end(
            self.pool, lambda _meter: create_app(self.pool, None, device=f"ray-{device}"),  # type: ignore[arg-type]
            ProfileOnlyMeter(), device, self.n_gpus, host, port)  # type: ignore[arg-type]
        self._closed = False

    @property
    def url(self) -> str:
        return self.frontend.url

    @property
    def configuration(self) -> Configuration | None:
        return self.pool.configuration

    @property
    def outage_timeout_s(self) -> float:
        """Latency charged to an unanswered request (as ``LiveBackend``: the first to give up)."""
        wait = self.pool.max_queue_wait_s
        return min(float(self.request_timeout_s), float(wait) if wait is not None else float("inf"))

    def apply(self, configuration: FleetTarget) -> ReconfigReport:
        """One configuration for every GPU, or ``{GPU index: configuration}``; faults are reported."""
        previous = self.pool.configuration
        try:
            return self.pool.reconfigure(configuration)
        except CloverError as e:
            fallback = (configuration if isinstance(configuration, Configuration) else configuration.configs[0]
                        if isinstance(configuration, FleetConfiguration) else next(iter(configuration.values())))
            return ReconfigReport(True, previous, previous or fallback, ok=False, message=str(e))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        stop_front_end(self.frontend, self.pool, self.meter)  # type: ignore[arg-type]


class RayPlane(LivePlane):
    """The controller's plane over a :class:`RayBackend` (see the module docstring)."""

    def __init__(self, backend: RayBackend, **kwargs: Any) -> None:
        super().__init__(backend, **kwargs)
        self.name = f"ray:{backend.device}"

    def apply(self, configuration: FleetTarget) -> ReconfigReport:  # type: ignore[override]
        """Rolling reconfiguration; a GPU whose switch fails is already back on its previous
        configuration when this returns (the pool restores it), so no fleet-wide rollback."""
        return self.backend.apply(configuration)

    def _energy(self, records: Any, wall_s: float, meter_j: float) -> float:
        if self.energy_model is not None and hasattr(self.energy_model, "n_gpus"):
            self.energy_model.n_gpus = len(self.pool.live_gpus)  # idle power of the GPUs still there
        return super()._energy(records, wall_s, meter_j)

    @property
    def fleet_configuration(self) -> dict[int, Configuration]:
        return self.pool.fleet_configuration

    @property
    def live_gpus(self) -> list[int]:
        return self.pool.live_gpus

    @property
    def lost_gpus(self) -> list[int]:
        return self.pool.lost_gpus
