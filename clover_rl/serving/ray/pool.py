"""``RayPool``: the rolling fleet pool over the nodes of a Ray cluster.

Queue, admission control, per-GPU configurations and rolling make-before-break reconfiguration
within ``max_down_fraction`` are :class:`~clover_rl.fleet.rolling.RollingPool`'s (its dispatcher
drives :class:`~.handle.RayWorkerHandle` instead of local processes). What this class adds:

- **Node agents.** Each GPU's layout is realised by its node's agent (:class:`AgentPlacement`);
  whether a GPU can make-before-break is its node's (emulated slices can overlap, MIG cannot).
- **Lost nodes.** A slice actor that dies quarantines its node's idle slices at once and asks the
  :class:`~.nodes.FleetMonitor` to check; a lost node's GPUs leave the fleet (its slices retire,
  their requests go back to the queue for other nodes); a node that returns gets its GPUs'
  intended configuration back.
"""
from __future__ import annotations

import logging
import threading
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any

from clover_rl.errors import BackendError
from clover_rl.fleet.layout import FleetLayout
from clover_rl.fleet.rolling import FleetGpu, FleetTarget, RollingPool
from clover_rl.mig.catalog import GpuModel
from clover_rl.mig.partition import Partition, Slice
from clover_rl.services import ServiceSpec
from clover_rl.serving.live.dispatch import Worker
from clover_rl.serving.ray.actors import SliceActor
from clover_rl.serving.ray.handle import RayWorkerHandle, one_line
from clover_rl.serving.ray.nodes import FleetMonitor, FleetNode

log = logging.getLogger("clover_rl.serving.ray")

__all__ = ["AgentPlacement", "FleetTarget", "RayPool"]


class AgentPlacement:
    """The placement provider of a fleet: each GPU's layout is realised by its node's agent."""

    device_kind = "ray"
    make_before_break = True  # decided per GPU by RayPool (``node.make_before_break``)

    def __init__(self, pool: RayPool, timeout_s: float = 600.0) -> None:
        self.pool = pool
        self.timeout_s = timeout_s

    def realize(self, gpu_index: int, partition: Partition) -> dict[Slice, str]:
        import ray

        g = self.pool.fleet[gpu_index]
        node = self.pool.monitor.nodes.get(g.node)
        if node is None or not node.alive:
            raise BackendError(f"GPU {gpu_index} (node {g.node}) is lost")
        try:
            return ray.get(node.agent.realize.remote(g.local, partition), timeout=self.timeout_s)
        except Exception as e:
            raise BackendError(f"node {g.node} GPU {g.local}: {one_line(e)}") from None

    def close(self) -> None:
        pass


class RayPool(RollingPool):
    """See the module docstring. Build with :meth:`connect` (discovers the fleet)."""

    def __init__(self, service: ServiceSpec, gpu: GpuModel, monitor: FleetMonitor, *,
                 max_down_fraction: float = 0.25, fleet_view: bool = False, **pool_options: Any) -> None:
        self.monitor = monitor
        nodes = [(n.name, n.n_gpus) for n in sorted(monitor.nodes.values(), key=lambda n: n.name)]
        if not nodes:
            raise BackendError(f"no fleet node in the Ray cluster offers GPUs for device {monitor.device!r} "
                               "(ray start --resources '{\"clover_gpu\": 2}' for emulated GPUs)")
        import ray

        self._actor_class = ray.remote(SliceActor)
        pool_options.setdefault("max_attempts", 5)
        layout = FleetLayout.of(nodes)
        super().__init__(service, gpu, layout.n_gpus, AgentPlacement(self), nodes=layout,
                         max_down_fraction=max_down_fraction, fleet_view=fleet_view,
                         process_factory=self._handle, **pool_options)
        self._suspects: dict[str, list[Worker]] = defaultdict(list)
        # called with the live GPU count once a node is lost or its GPUs serve again (the
        # deployment restarts the controller with it: it plans with what is left)
        self.on_fleet_change: Callable[[int], None] | None = None
        monitor.on_lost = self._node_lost
        monitor.on_joined = self._node_joined

    @classmethod
    def connect(cls, service: ServiceSpec, gpu: GpuModel, device: str, *, mig: bool = True,
                max_down_fraction: float = 0.25, monitor_options: dict[str, Any] | None = None,
                **pool_options: Any) -> RayPool:
        monitor = FleetMonitor(device, gpu.name, mig=mig, **(monitor_options or {}))
        monitor.discover()
        try:
            pool = cls(service, gpu, monitor, max_down_fraction=max_down_fraction, **pool_options)
        except BaseException:
            monitor.close()
            raise
        monitor.start()
        return pool

    # ------------------------------------------------------------------ fleet view
    def node_of(self, gpu_index: int) -> FleetNode | None:
        return self.monitor.nodes.get(self.fleet[gpu_index].node)

    def _make_before_break(self, g: int) -> bool:
        node = self.node_of(g)
        return bool(node.make_before_break) if node is not None else True

    def _handle(self, spec: Any, _context: str) -> RayWorkerHandle:
        g = int(spec.slot_id.split("/", 1)[0][3:])
        node = self.node_of(g)
        alive = node is not None and node.alive and self.fleet[g].up
        return RayWorkerHandle(spec, node.node_id if alive and node else None, self._actor_class,
                               on_death=self._on_death, node_name=self.fleet[g].node)

    # ------------------------------------------------------------------ node loss and return
    def _on_death(self, handle: RayWorkerHandle, why: str) -> None:
        """(Dispatcher loop) a slice actor died: stop dispatching to its node's idle slices until
        the monitor has checked the node (they come back if it answers)."""
        name = handle.node_name
        d = self._d
        for w in list(d.idle):
            if self.fleet[w.plan.gpu_index].node == name:
                d.idle.remove(w)
                w.state = "suspect"
                self._suspects[name].append(w)
        log.warning("slice actor on node %s died (%s); checking the node", name, why)
        threading.Thread(target=self._verify, args=(name,), name="clover-ray-verify", daemon=True).start()

    def _verify(self, name: str) -> None:
        try:
            healthy = self.monitor.check()
        except Exception as e:
            log.warning("fleet check failed: %s", one_line(e))
            healthy = set()
        if name in healthy:
            self._d.post(self._release, name, True)
        # a lost node's suspects are retired by _node_lost; otherwise the next check decides
        elif (n := self.monitor.nodes.get(name)) is not None and n.alive:
            threading.Timer(self.monitor.period_s, self._verify, args=(name,)).start()

    def _release(self, name: str, back: bool) -> None:
        """(Loop) suspects of node ``name`` serve again (``back``) or retire (node lost)."""
        d = self._d
        for w in self._suspects.pop(name, []):
            if w.state != "suspect":
                continue
            w.state = "ready"
            if back and not w.retiring and not d.closed:
                d.idle.append(w)
            else:
                d.retire([w])
        d._dispatch()

    def _node_lost(self, node: FleetNode) -> None:
        """(Monitor thread) the node's GPUs leave the fleet; its slices retire."""
        gpus = [g for g in self.fleet if g.node == node.name]
        for g in gpus:
            g.up = False
            self.serving.pop(g.index, None)

        def retire() -> None:
            self._release(node.name, False)
            doomed = [w for w in self._workers() if self.fleet[w.plan.gpu_index].node == node.name]
            for w in doomed:
                if w.state == "suspect":
                    w.state = "ready"
            self._d.retire(doomed)
            for w in doomed:  # their answers will never come: requests back to the queue now
                if w.current is not None:
                    self._d._crashed(w, f"node {node.name} lost")

        self._d.post(retire)
        if self.on_fleet_change is not None:
            self.on_fleet_change(len(self.live_gpus))

    def _node_joined(self, node: FleetNode) -> None:
        """(Monitor thread) a node (back or new): its GPUs rejoin with their intended configuration."""
        mine = [g for g in self.fleet if g.node == node.name]
        if not mine:  # a node the fleet has not seen: new GPUs at the end of the index
            base = len(self.fleet)
            mine = [FleetGpu(base + i, node.name, i) for i in range(node.n_gpus)]
            self.fleet += mine
            self.n_gpus = len(self.fleet)
        for g in mine:
            g.up = True
        if not self.targets:
            return  # not brought up yet: the first reconfigure covers it
        common = Counter(self.targets.values()).most_common(1)[0][0]
        for g in mine:
            self.targets.setdefault(g.index, common)
        threading.Thread(target=self._heal, name="clover-ray-rejoin", daemon=True).start()

    def _heal(self) -> None:
        try:
            rep = self.reconfigure(dict(self.targets))
            log.warning("rejoined GPUs brought up: %s", rep.message)
            if self.on_fleet_change is not None:
                self.on_fleet_change(len(self.live_gpus))
        except Exception as e:
            log.error("could not bring rejoined GPUs up: %s", one_line(e))

    def close(self) -> None:
        self.monitor.close()
        super().close()
