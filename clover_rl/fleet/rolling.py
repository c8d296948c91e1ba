"""``RollingPool``: the local worker pool with a configuration per GPU and rolling reconfiguration.

The queue, deadlines, admission control and crash re-queueing are
:class:`~clover_rl.serving.live.pool.WorkerPool`'s. What this class changes:

- **Per-GPU configurations.** ``reconfigure`` takes one configuration (every GPU), a mapping
  ``{fleet GPU index: Configuration}``, or a :class:`~clover_rl.fleet.FleetConfiguration` (how
  many GPUs run each configuration), placed by :func:`~clover_rl.fleet.assign_gpus` so the fewest
  GPUs change (:func:`fleet_targets`). Only GPUs whose slots change are touched.
- **Rolling, make-before-break per GPU.** Changed GPUs go in batches of at most
  ``max(1, floor(max_down_fraction x live GPUs))``. Where new slices can exist beside the old
  ones (CPU emulation, whole GPUs) a GPU's new workers start and warm up before its old ones
  retire; on MIG the changed GPU's workers retire, its partition is changed and the new ones start
  -- that GPU is the one down while the rest of the fleet serves. A GPU whose switch fails is put
  back on its previous configuration.
- **The fleet view.** With ``fleet_view`` the pool's ``configuration`` is the
  ``FleetConfiguration`` its live GPUs serve (what a fleet scenario's controller compares with its
  action space); otherwise the configuration most GPUs serve (the paper's one-configuration view).

Used by the local plane for a scenario with a ``fleet:`` block (``clover-rl deploy --scenario
efficientnet-fleet``) and, with node agents and lost nodes, by the Ray plane
(:class:`clover_rl.serving.ray.pool.RayPool`).
"""
from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from clover_rl.errors import BackendError, ConfigError
from clover_rl.fleet.configuration import FleetConfiguration, assign_gpus
from clover_rl.fleet.layout import FleetLayout, layout_of
from clover_rl.mig.catalog import GpuModel
from clover_rl.mig.config import Configuration
from clover_rl.services import ServiceSpec
from clover_rl.serving.backend import ReconfigReport
from clover_rl.serving.live.dispatch import Worker
from clover_rl.serving.live.placement import PlacementProvider
from clover_rl.serving.live.pool import SlotPlan, WorkerPool

log = logging.getLogger("clover_rl.serving.live")

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


class RollingPool(WorkerPool):
    """See the module docstring. ``nodes``: the fleet's nodes (default: all GPUs on one node)."""

    def __init__(self, service: ServiceSpec, gpu: GpuModel, n_gpus: int = 1,
                 placement: PlacementProvider | None = None, *, nodes: FleetLayout | None = None,
                 max_down_fraction: float = 0.25, fleet_view: bool = False, **pool_options: Any) -> None:
        if not 0 < max_down_fraction <= 1:
            raise ConfigError(f"--max-down must be in (0, 1], got {max_down_fraction}")
        layout = nodes or FleetLayout.single(n_gpus, "local")
        if layout.n_gpus != n_gpus:
            raise ConfigError(f"fleet nodes hold {layout.n_gpus} GPU(s), the pool {n_gpus}")
        self.max_down_fraction = float(max_down_fraction)
        self.fleet_view = fleet_view
        self.fleet: list[FleetGpu] = []
        for node in layout.nodes:
            base = len(self.fleet)
            self.fleet += [FleetGpu(base + i, node.name, i) for i in range(node.gpus)]
        super().__init__(service, gpu, n_gpus, placement, **pool_options)
        self.targets: dict[int, Configuration] = {}
        self.serving: dict[int, Configuration] = {}
        self.in_transition: set[int] = set()
        self.max_in_transition = 0  # the most GPUs ever in transition at once (checked by tests)
        self._tlock = threading.Lock()

    # ------------------------------------------------------------------ fleet view
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
    def configuration(self) -> Configuration | FleetConfiguration | None:  # type: ignore[override]
        """With ``fleet_view``: the live GPUs' ``FleetConfiguration``; else the configuration every
        live GPU serves (or most of them)."""
        served = list(self.fleet_configuration.values())
        if not served:
            return None
        if self.fleet_view:
            return FleetConfiguration.of(served)
        return Counter(served).most_common(1)[0][0]

    def max_down(self) -> int:
        """GPUs that may reconfigure at once: ``max(1, floor(max_down_fraction x live GPUs))``."""
        return max(1, math.floor(self.max_down_fraction * max(1, len(self.live_gpus)) + 1e-9))

    def _make_before_break(self, g: int) -> bool:
        """Whether GPU ``g``'s new slices can start beside its old ones (the placement's rule)."""
        return bool(self.placement.make_before_break)

    # ------------------------------------------------------------------ reconfiguration
    def _targets(self, target: FleetTarget) -> dict[int, Configuration]:
        return fleet_targets(target, [g.index for g in self.fleet], self.live_gpus, self.serving, self.targets)

    def _gpu_workers(self, g: int) -> list[Worker]:
        return [w for w in self._workers() if w.plan.gpu_index == g and not w.retiring and w.state != "failed"]

    def _gpu_plan(self, g: int, configuration: Configuration) -> tuple[list[SlotPlan], list[Worker]]:
        """(slots to start, workers to retire) for GPU ``g`` to serve ``configuration``; running
        (slice, variant) pairs stay (no needless reload)."""
        self._check(configuration)
        running = self._gpu_workers(g)
        return self._match(self._gpu_slots(g, configuration, running), running)

    def reconfigure(self, configuration: FleetTarget) -> ReconfigReport:  # type: ignore[override]
        """Serve ``configuration`` (one for every GPU, per GPU, or a fleet); rolling, see the
        module docstring. The report's ``current`` is what serves after it."""
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
            fallback = configuration if not isinstance(configuration, Mapping) else next(iter(targets.values()))
            if not work:
                self._configuration = self.configuration  # type: ignore[assignment]
                return ReconfigReport(previous != self.configuration, previous, self.configuration or fallback,  # type: ignore[arg-type]
                                      {}, 0, True, "unchanged")
            k = self.max_down()
            self.reconfiguring = True
            results = []
            try:
                for i in range(0, len(work), k):
                    batch = work[i:i + k]
                    with ThreadPoolExecutor(len(batch), thread_name_prefix="clover-switch") as ex:
                        results += list(ex.map(lambda a: self._switch_gpu(*a), batch))
            finally:
                self.reconfiguring = False
            self._configuration = current = self.configuration  # type: ignore[assignment]
            downtime: dict[str, float] = {}
            for r in results:
                downtime.update(r[1])
            failed = [r[3] for r in results if not r[0]]
            msg = (f"{len(work)} GPU(s) reconfigured, at most {k} at a time, in {time.perf_counter() - t0:.1f} s; "
                   f"started {sum(r[2] for r in results)} worker(s)")
            if failed:
                msg += f"; {len(failed)} GPU(s) kept their previous configuration: {failed[0]}"
            return ReconfigReport(True, previous, current or fallback, downtime,  # type: ignore[arg-type]
                                  sum(r[2] for r in results), not failed, msg)

    def _transition(self, g: int, entering: bool) -> None:
        with self._tlock:
            (self.in_transition.add if entering else self.in_transition.discard)(g)
            self.max_in_transition = max(self.max_in_transition, len(self.in_transition))

    def _switch_gpu(self, g: int, target: Configuration, new: list[SlotPlan],
                    old: list[Worker]) -> tuple[bool, dict[str, float], int, str]:
        """Move GPU ``g`` to ``target``; (ok, downtime per slot, workers started, message)."""
        mbb = self._make_before_break(g)
        before = self.serving.get(g)
        self._transition(g, True)
        t0 = time.perf_counter()
        try:
            if not mbb:
                self._retire(old)
            try:
                devices = self.placement.realize(g, target.partition(self.gpu))
            except Exception as e:  # placement faults are reported, never raised (Backend contract)
                if not mbb:
                    self._restore(g, before, old)
                return False, {}, 0, f"GPU {g}: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
            started, failed = self._start([(sp, devices.get(sp.slice, "cpu")) for sp in new])
            if failed:
                self._retire(started, wait=False)
                if not mbb:
                    self._restore(g, before, old)
                return False, {}, 0, f"GPU {g}: {failed[0].error or 'worker failed to start'}"
            if mbb:
                self._retire(old)
            self.serving[g] = target
            down = {w.plan.slot_id: (0.0 if mbb else max(0.0, (w.ready_at or t0) - t0)) for w in started}
            return True, down, len(started), ""
        finally:
            self._transition(g, False)

    def _restore(self, g: int, before: Configuration | None, old: list[Worker]) -> None:
        """Break-before-make: put GPU ``g`` back on ``before`` after a failed switch (the old slots restart)."""
        if before is None:
            return
        try:
            devices = self.placement.realize(g, before.partition(self.gpu))
            self._start([(w.plan, devices.get(w.plan.slice, "cpu")) for w in old])
        except Exception as e:
            log.error("GPU %d: could not restore %s: %s", g, before.label(), str(e).splitlines()[0] if str(e) else e)


def live_gpu_counts(fleet: Sequence[FleetGpu]) -> list[tuple[str, int]]:
    """(node, live GPUs) of every node with a live GPU, in fleet order."""
    out: dict[str, int] = {}
    for g in fleet:
        if g.up:
            out[g.node] = out.get(g.node, 0) + 1
    return list(out.items())


def rolling_pool_class(scenario: Any, max_down_fraction: float) -> Callable[..., RollingPool]:
    """The local plane's pool for a fleet ``scenario``: a :class:`RollingPool` on its nodes, in
    the fleet view, at most ``max_down_fraction`` of the GPUs reconfiguring at once."""
    from functools import partial

    if not 0 < max_down_fraction <= 1:
        raise ConfigError(f"--max-down must be in (0, 1], got {max_down_fraction}")
    return partial(RollingPool, nodes=layout_of(scenario), max_down_fraction=max_down_fraction, fleet_view=True)
