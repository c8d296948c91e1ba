"""``RayPool``: the local worker pool's queue and admission control over a fleet of Ray nodes.

The queue, deadlines, admission control and crash re-queueing are the local plane's
:class:`~clover_rl.serving.live.pool.WorkerPool` (its dispatcher drives
:class:`~.handle.RayWorkerHandle` instead of local processes). What this class adds:

- **Per-GPU configurations.** ``reconfigure`` takes one configuration (every GPU) or a mapping
  ``{fleet GPU index: Configuration}``; only GPUs whose slots change are touched.
- **Rolling, make-before-break per GPU.** Changed GPUs go in batches of at most
  ``max(1, floor(max_down_fraction x live GPUs))``. On a node whose slices can overlap (CPU
  emulation) a GPU's new slice actors start and warm up before its old ones retire; on MIG the
  changed slices are retired, the node agent re-partitions (the NVML manager rolls back a failed
  change) and the new ones start -- that GPU is the one "down", the rest of the fleet serves.
  A GPU whose switch fails is put back on its previous configuration.
- **Lost nodes.** A slice actor that dies quarantines its node's idle slices at once and asks the
  :class:`~.nodes.FleetMonitor` to check; a lost node's GPUs leave the fleet (its slices retire,
  their requests go back to the queue for other nodes); a node that returns gets its GPUs'
  intended configuration back.
"""
from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from clover_rl.errors import BackendError, ConfigError
from clover_rl.fleet.configuration import FleetConfiguration, assign_gpus
from clover_rl.mig.catalog import GpuModel
from clover_rl.mig.config import Configuration
from clover_rl.mig.partition import Partition, Slice
from clover_rl.services import ServiceSpec
from clover_rl.serving.backend import ReconfigReport
from clover_rl.serving.live.dispatch import Worker
from clover_rl.serving.live.pool import SlotPlan, WorkerPool
from clover_rl.serving.ray.actors import SliceActor
from clover_rl.serving.ray.handle import RayWorkerHandle, one_line
from clover_rl.serving.ray.nodes import FleetMonitor, FleetNode

log = logging.getLogger("clover_rl.serving.ray")

FleetTarget = Configuration | Mapping[int, Configuration] | FleetConfiguration


def fleet_targets(target: FleetTarget, gpus: list[int], live: list[int], serving: Mapping[int, Configuration],
                  previous: Mapping[int, Configuration]) -> dict[int, Configuration]:
    """Every fleet GPU's intended configuration for ``target``: one configuration (all GPUs), a
    map ``{GPU: configuration}`` (GPUs it omits keep ``previous``), or a
    :class:`~clover_rl.fleet.FleetConfiguration` for the ``live`` GPUs (or for all ``gpus``),
    assigned so the fewest serving GPUs change (``fleet.assign_gpus``); lost GPUs keep theirs."""
    if isinstance(target, Configuration):
        return {g: target for g in gpus}
    if isinstance(target, FleetConfiguration):
        on = live if target.n_gpus == len(live) else gpus if target.n_gpus == len(gpus) else None
        if on is None:
            raise ConfigError(f"fleet configuration for {target.n_gpus} GPU(s); the fleet has {len(live)} live of "
                              f"{len(gpus)}")
        current = [serving.get(g) or previous.get(g) for g in on]
        picked = assign_gpus(target, current if all(current) else None)  # type: ignore[arg-type]
        target = dict(zip(on, picked))
    out = dict(previous)
    for g, c in target.items():
        if int(g) not in gpus:
            raise ConfigError(f"fleet configuration names GPU {g}; the fleet has GPUs 0..{len(gpus) - 1}")
        out[int(g)] = c
    missing = [g for g in gpus if g not in out]
    if missing:
        common = Counter(out.values()).most_common(1)
        if not common:
            raise ConfigError(f"fleet configuration gives no configuration for GPU(s) {missing}")
        out.update({g: common[0][0] for g in missing})  # lost before ever configured: the fleet's
    return out


@dataclass
class FleetGpu:
    index: int  # fleet-wide GPU index (slot ids are gpu{index}/...)
    node: str  # node name
    local: int  # GPU index on its node
    up: bool = True


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


class RayPool(WorkerPool):
    """See the module docstring. Build with :meth:`connect` (discovers the fleet)."""

    def __init__(self, service: ServiceSpec, gpu: GpuModel, monitor: FleetMonitor, *,
                 max_down_fraction: float = 0.25, **pool_options: Any) -> None:
        if not 0 < max_down_fraction <= 1:
            raise ConfigError(f"--max-down must be in (0, 1], got {max_down_fraction}")
        self.monitor = monitor
        self.max_down_fraction = float(max_down_fraction)
        self.fleet: list[FleetGpu] = []
        for node in sorted(monitor.nodes.values(), key=lambda n: n.name):
            base = len(self.fleet)
            self.fleet += [FleetGpu(base + i, node.name, i) for i in range(node.n_gpus)]
        if not self.fleet:
            raise BackendError(f"no fleet node in the Ray cluster offers GPUs for device {monitor.device!r} "
                               "(ray start --resources '{\"clover_gpu\": 2}' for emulated GPUs)")
        import ray

        self._actor_class = ray.remote(SliceActor)
        pool_options.setdefault("max_attempts", 5)
        super().__init__(service, gpu, len(self.fleet), AgentPlacement(self),
                         process_factory=self._handle, **pool_options)
        self.targets: dict[int, Configuration] = {}
        self.serving: dict[int, Configuration] = {}
        self.in_transition: set[int] = set()
        self.max_in_transition = 0  # the most GPUs ever in transition at once (checked by tests)
        self._suspects: dict[str, list[Worker]] = defaultdict(list)
        # called with the live GPU count once a node is lost or its GPUs serve again (the
        # deployment restarts the controller with it: it plans with what is left)
        self.on_fleet_change: Callable[[int], None] | None = None
        self._tlock = threading.Lock()
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

    @property
    def live_gpus(self) -> list[int]:
        return [g.index for g in self.fleet if g.up]

    @property
    def lost_gpus(self) -> list[int]:
        return [g.index for g in self.fleet if not g.up]

    @property
    def fleet_configuration(self) -> dict[int, Configuration]:
        """What each live GPU serves now (GPU index -> configuration)."""
        return {g: c for g, c in sorted(self.serving.items()) if self.fleet[g].up}

    @property
    def configuration(self) -> Configuration | None:
        """The configuration every live GPU serves, else the one most of them serve."""
        served = list(self.fleet_configuration.values())
        return Counter(served).most_common(1)[0][0] if served else None

    def max_down(self) -> int:
        return max(1, math.floor(self.max_down_fraction * max(1, len(self.live_gpus)) + 1e-9))

    def _handle(self, spec: Any, _context: str) -> RayWorkerHandle:
        g = int(spec.slot_id.split("/", 1)[0][3:])
        node = self.node_of(g)
        alive = node is not None and node.alive and self.fleet[g].up
        return RayWorkerHandle(spec, node.node_id if alive and node else None, self._actor_class,
                               on_death=self._on_death, node_name=self.fleet[g].node)

    # ------------------------------------------------------------------ reconfiguration
    def _targets(self, target: FleetTarget) -> dict[int, Configuration]:
        return fleet_targets(target, [g.index for g in self.fleet], self.live_gpus, self.serving, self.targets)

    def _gpu_workers(self, g: int) -> list[Worker]:
        return [w for w in self._workers() if w.plan.gpu_index == g and not w.retiring and w.state != "failed"]

    def _gpu_plan(self, g: int, configuration: Configuration) -> tuple[list[SlotPlan], list[Worker]]:
        """(slots to start, workers to retire) for GPU ``g`` to serve ``configuration``."""
        plans = [sp for sp in self.plan(configuration) if sp.gpu_index == g]
        free = {w.key: w for w in self._gpu_workers(g)}
        new = []
        for sp in plans:
            match = next((w for w in free.values() if (w.plan.slot_id, w.plan.variant) == (sp.slot_id, sp.variant)), None)
            if match is not None:
                free.pop(match.key)
            else:
                new.append(sp)
        return new, list(free.values())

    def reconfigure(self, configuration: FleetTarget) -> ReconfigReport:  # type: ignore[override]
        """Serve ``configuration`` (one for every GPU, or per GPU); rolling, see the module docstring."""
        with self._reconf:
            if self._closed:
                raise BackendError("worker pool is closed")
            t0 = time.perf_counter()
            previous = self.configuration
            targets = self._targets(configuration)
            self.targets = targets
            work = []
            for g in self.live_gpus:
                new, old = self._gpu_plan(g, targets[g])
                if new or old:
                    work.append((g, targets[g], new, old))
                else:
                    self.serving[g] = targets[g]
            if not work:
                self._configuration = self.configuration
                return ReconfigReport(previous != self.configuration, previous, self.configuration or
                                      next(iter(targets.values())), {}, 0, True, "unchanged")
            k = self.max_down()
            self.reconfiguring = True
            results = []
            try:
                for i in range(0, len(work), k):
                    batch = work[i:i + k]
                    with ThreadPoolExecutor(len(batch), thread_name_prefix="clover-ray-switch") as ex:
                        results += list(ex.map(lambda a: self._switch_gpu(*a), batch))
            finally:
                self.reconfiguring = False
            self._configuration = current = self.configuration
            downtime: dict[str, float] = {}
            for r in results:
                downtime.update(r[1])
            failed = [r[3] for r in results if not r[0]]
            msg = (f"{len(work)} GPU(s) reconfigured, at most {k} at a time, in {time.perf_counter() - t0:.1f} s; "
                   f"started {sum(r[2] for r in results)} slice actor(s)")
            if failed:
                msg += f"; {len(failed)} GPU(s) kept their previous configuration: {failed[0]}"
            return ReconfigReport(True, previous, current or next(iter(targets.values())), downtime,
                                  sum(r[2] for r in results), not failed, msg)

    def _transition(self, g: int, entering: bool) -> None:
        with self._tlock:
            (self.in_transition.add if entering else self.in_transition.discard)(g)
            self.max_in_transition = max(self.max_in_transition, len(self.in_transition))

    def _switch_gpu(self, g: int, target: Configuration, new: list[SlotPlan],
                    old: list[Worker]) -> tuple[bool, dict[str, float], int, str]:
        """Move GPU ``g`` to ``target``; (ok, downtime per slot, slices started, message)."""
        node = self.node_of(g)
        mbb = bool(node.make_before_break) if node is not None else True
        before = self.serving.get(g)
        self._transition(g, True)
        t0 = time.perf_counter()
        try:
            if not mbb:
                self._retire(old)
            try:
                devices = self.placement.realize(g, target.partition(self.gpu))
            except BackendError as e:
                if not mbb:
                    self._restore(g, before, old)
                return False, {}, 0, f"GPU {g}: {e}"
            started = [self._spawn(sp, devices[sp.slice]) for sp in new]
            for w in started:
                w.ready.wait(self.start_timeout_s + 30)
            failed = [w for w in started if w.state != "ready"]
            if failed:
                self._retire(started, wait=False)
                if not mbb:
                    self._restore(g, before, old)
                return False, {}, 0, f"GPU {g}: {failed[0].error or 'slice actor failed to start'}"
            if mbb:
                self._retire(old)
            self.serving[g] = target
            down = {w.plan.slot_id: (0.0 if mbb else max(0.0, (w.ready_at or t0) - t0)) for w in started}
            return True, down, len(started), ""
        finally:
            self._transition(g, False)

    def _restore(self, g: int, before: Configuration | None, old: list[Worker]) -> None:
        """MIG: put GPU ``g`` back on ``before`` after a failed switch (the old slots restart)."""
        if before is None:
            return
        try:
            devices = self.placement.realize(g, before.partition(self.gpu))
            for w in [self._spawn(w.plan, devices[w.plan.slice]) for w in old]:
                w.ready.wait(self.start_timeout_s + 30)
        except BackendError as e:
            log.error("GPU %d: could not restore %s: %s", g, before.label(), e)

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
