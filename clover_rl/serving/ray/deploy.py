"""``clover-rl deploy --ray ADDRESS``: the deployment of ``controller.deployment`` on a Ray fleet.

Everything but the serving plane is the local deployment's: the supervised controller process
(``Supervisor`` <-> ``PlaneHost`` RPC), the state folder, the load generator, SIGTERM draining.
The plane is a :class:`~.plane.RayPlane` over the GPUs every fleet node offers; the driver joins
an existing cluster (``auto`` = the one ``ray start`` made on this machine) and leaves it running.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from clover_rl.controller.deployment import Deployment, DeploySettings
from clover_rl.errors import ConfigError
from clover_rl.serving.live.placement import check_device
from clover_rl.serving.ray import require_ray


@dataclass
class RaySettings:
    address: str = "auto"
    max_down_fraction: float = 0.25  # at most this share of the live GPUs in transition at once
    monitor_options: dict[str, Any] = field(default_factory=dict)  # FleetMonitor: period_s, misses, ...
    init_options: dict[str, Any] = field(default_factory=dict)  # extra ray.init keyword arguments
    mig_backend: str = "nvml"  # the node agents' MIG owner: nvml, or gpu-operator (Kubernetes)


class RayDeployment(Deployment):
    """A :class:`Deployment` whose plane is the Ray fleet (see the module docstring)."""

    def __init__(self, settings: DeploySettings, ray_settings: RaySettings, *,
                 echo: Callable[[str], None] | None = print) -> None:
        if not 0 < ray_settings.max_down_fraction <= 1:
            raise ConfigError(f"--max-down must be in (0, 1], got {ray_settings.max_down_fraction}")
        check_device(settings.device)
        if ray_settings.mig_backend not in ("nvml", "gpu-operator"):
            raise ConfigError(f"--mig-backend must be nvml or gpu-operator, got {ray_settings.mig_backend!r}")
        if ray_settings.mig_backend == "gpu-operator" and not (settings.device == "cuda" and settings.mig):
            raise ConfigError("--mig-backend gpu-operator: needs --device cuda with MIG (--mig)")
        ray = require_ray()
        self.ray_settings = ray_settings
        if not ray.is_initialized():
            try:
                ray.init(address=ray_settings.address, log_to_driver=False, namespace="clover-rl",
                         **ray_settings.init_options)
            except (ConnectionError, ValueError, RuntimeError) as e:
                raise ConfigError(f"--ray {ray_settings.address}: cannot join the Ray cluster "
                                  f"({str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__})") from None
        from clover_rl.serving.ray.nodes import fleet_nodes

        nodes = [(name, count) for name, (_, count) in sorted(fleet_nodes(settings.device).items())]
        n = sum(count for _, count in nodes)
        if n == 0:
            hint = ("ray start ... --resources '{\"clover_gpu\": 2}'" if settings.device == "cpu"
                    else "nodes with GPUs")
            raise ConfigError(f"--ray {ray_settings.address}: no node offers GPUs for --device {settings.device} "
                              f"({hint})")
        if settings.gpus is not None and settings.gpus != n:
            raise ConfigError(f"--gpus {settings.gpus}: the Ray fleet has {n} GPU(s); drop --gpus or resize the fleet")
        super().__init__(replace(settings, gpus=None), echo=echo)
        # the controller plans for the GPUs the cluster has (a fleet scenario: on its nodes)
        from clover_rl.fleet.layout import resize_overrides
        from clover_rl.scenario import load_scenario

        self.base_scenario = self.scenario
        self.overrides = resize_overrides(self.scenario, nodes)
        self.scenario = load_scenario(self.scenario, **self.overrides)

    def start_serving(self) -> None:
        """Slice actors on the fleet + the KServe v2 front end here (no configuration yet)."""
        from clover_rl.controller.emulate import ProfileEnergyModel, emulated_service
        from clover_rl.controller.telemetry import register_collector
        from clover_rl.serving.ray.plane import RayBackend, RayPlane

        s, sc, rs = self.settings, self.scenario, self.ray_settings
        service = sc.service_spec()
        gpu = sc.gpu_model()
        profile = sc.load_profile()
        if s.models == "emulated":
            service = emulated_service(service, profile, gpu)
        self.service = service
        pool = {"max_queue_wait_s": sc.timeout_s, "deadline_s": self.deadline_s, **s.pool_options}
        self.backend = RayBackend(service, gpu, s.device, s.port, host=s.host, mig=s.mig,
                                  max_down_fraction=rs.max_down_fraction, cpu_scale=s.cpu_scale,
                                  cpu_threads=s.cpu_threads,
                                  monitor_options={"agent_options": {"mig_backend": rs.mig_backend},
                                                   **rs.monitor_options},
                                  fleet_view=sc.fleet is not None, **pool)
        # no hardware meter is read on remote nodes: energy from the profile, labelled estimated
        self.plane = RayPlane(self.backend, energy_model=ProfileEnergyModel(profile, sc.gpus), timeout_s=sc.timeout_s,
                              deadline_factor=self.deadline_factor)
        register_collector(self.backend.frontend.app.state.registry, lambda: self.plane.published)
        nodes = sorted(self.backend.pool.monitor.nodes.values(), key=lambda n: n.name)
        self.echo(f"KServe v2 front end on {self.backend.url} (model {service.name!r}; metrics at "
                  f"{self.backend.url}/metrics); Ray fleet {', '.join(f'{n.name}:{n.n_gpus}' for n in nodes)} = "
                  f"{sc.gpus} x {gpu.name} on {s.device}, at most {self.backend.pool.max_down()} GPU(s) reconfiguring "
                  f"at once" + (", emulated models (profiled delays)" if s.models == "emulated" else "")
                  + "; energy from the profile (estimated)")

    def start_controller(self) -> Any:
        """The supervised controller; restarted with the live GPU count whenever the fleet shrinks
        or grows back, so it plans with the GPUs that are there (its state carries over)."""
        from clover_rl.fleet.layout import resize_overrides
        from clover_rl.fleet.rolling import live_gpu_counts

        sup = super().start_controller()
        pool = self.backend.pool
        full = sup.spec  # the spec for the fleet's size at start (its policy, online learning)

        def changed(live: int) -> None:
            if live and live != sup.spec.overrides.get("gpus"):
                policy = fleet_policy(full.policy, self.scenario.fleet is not None, live, self.scenario.gpus)
                note = "" if policy == full.policy else (f"; the learned fleet policy fits {self.scenario.gpus} "
                                                          f"GPU(s): {policy} decides until they are back")
                sup.spec = full if policy == full.policy else replace(
                    full, policy=policy, options=replace(full.options, learn=False))
                sup.replan(f"the fleet now serves on {live} of {len(pool.fleet)} GPU(s); planning with those" + note,
                           resize_overrides(self.base_scenario, live_gpu_counts(pool.fleet)))

        pool.on_fleet_change = changed
        return sup

    def close(self, drain_timeout_s: float = 120.0) -> None:
        try:
            super().close(drain_timeout_s)
        finally:
            import ray

            if ray.is_initialized():
                ray.shutdown()  # leaves the cluster running: it is the user's


def fleet_policy(spec: str, fleet: bool, gpus: int, trained_for: int, fallback: str = "mpc") -> str:
    """The controller's policy on ``gpus`` live GPUs: ``spec``, except a learned policy (a
    checkpoint) on a fleet scenario while the fleet is not the ``trained_for`` GPUs it started
    with -- a fleet action space depends on the GPU count, so the checkpoint cannot decide there
    (it would not load) -- then ``fallback`` until the GPUs are back."""
    from clover_rl.agents.registry import POLICY_NAMES

    if not fleet or gpus == trained_for or spec.strip().lower() in POLICY_NAMES:
        return spec
    return fallback
