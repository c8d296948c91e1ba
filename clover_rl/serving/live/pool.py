"""The worker pool: one central FIFO queue, one worker process per slice, the paper's dispatch.

The queue and the workers' pipes belong to a :class:`~.dispatch.Dispatcher` event loop: the next
request always goes to whichever worker frees up first, and admission control refuses at once
what could not be answered within its deadline (see ``dispatch``). Requests are never dropped
silently: a request whose worker crashes goes back to the head of the queue (and the worker is
restarted); a request that cannot be served ends with an explicit status:

- 400: the model rejected the input;
- 500: the request crashed ``max_attempts`` workers in a row;
- 503: refused on arrival (draining, queue full, expected answer past the deadline), its
  deadline passed while queued, it waited longer than ``max_queue_wait_s``, no worker at all
  was ready for ``no_worker_timeout_s`` (e.g. every slice down during a MIG re-partition), or
  shutdown.

``reconfigure`` keeps workers whose (slice, variant) is unchanged. With a make-before-break
placement (CPU emulation) it starts the new workers, waits until they are warm, then retires the
removed ones, so capacity never drops; with real MIG it must retire the changed slices first.
Retiring workers finish their in-flight request. Either way, requests keep flowing through the
unaffected slices or wait in the queue. ``drain`` (SIGTERM) stops admitting and lets every
accepted request finish.
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import numpy as np

from clover_rl.errors import BackendError, ConfigError
from clover_rl.mig.catalog import GpuModel
from clover_rl.mig.config import Configuration
from clover_rl.mig.partition import Slice
from clover_rl.services import ServiceSpec
from clover_rl.serving.backend import ReconfigReport
from clover_rl.serving.live.dispatch import (
    Dispatcher,
    InferResult,
    RequestError,
    RequestRecord,
    Worker,
)
from clover_rl.serving.live.placement import CpuPlacement, PlacementProvider
from clover_rl.serving.live.worker import WorkerSpec
from clover_rl.serving.slots import slice_id, slot_assignment

log = logging.getLogger("clover_rl.serving.live")


@dataclass(frozen=True)
class SlotPlan:
    slot_id: str  # gpu{i}/{profile}@{start}
    gpu_index: int
    slice: Slice
    variant: str
    compute_slices: int


@dataclass(frozen=True)
class SlotStatus:
    slot_id: str
    variant: str
    state: str  # starting | ready | restarting | retiring | failed | stopped
    device: str
    pid: int | None
    busy_s: float
    served: int
    restarts: int
    load_s: float
    age_s: float  # since the worker became ready (0 while starting)


@dataclass(frozen=True)
class PoolSnapshot:
    time: float
    queue_length: int
    in_flight: int
    slots: tuple[SlotStatus, ...]
    configuration: Configuration | None

    @property
    def ready(self) -> int:
        return sum(s.state == "ready" for s in self.slots)


class WorkerPool:
    """Worker processes for every slice of ``n_gpus`` GPUs behind one FIFO queue.

    Subclasses (the LLM pool) swap the dispatcher, the worker record and the worker spec through
    the class attributes below; ``spec_options`` are extra fields of ``spec_class``."""

    dispatcher_class: type[Dispatcher] = Dispatcher
    worker_class: type[Worker] = Worker
    spec_class: type[WorkerSpec] = WorkerSpec

    def __init__(
        self,
        service: ServiceSpec,
        gpu: GpuModel,
        n_gpus: int = 1,
        placement: PlacementProvider | None = None,
        *,
        input_scale: float = 1.0,
        cpu_threads: int = 1,
        throttle: bool = True,
        warmup_requests: int = 2,
        max_queue: int | None = 1024,
        deadline_s: float | None = None,
        max_queue_wait_s: float | None = 60.0,
        no_worker_timeout_s: float = 30.0,
        start_timeout_s: float = 600.0,
        request_timeout_s: float | None = 300.0,
        max_attempts: int = 3,
        max_restarts: int = 3,
        context: str = "spawn",
        worker_env: dict[str, str] | None = None,
        process_factory: Callable[[WorkerSpec, str], Any] | None = None,
    ):
        if n_gpus < 1:
            raise ConfigError(f"n_gpus must be >= 1, got {n_gpus}")
        if cpu_threads < 1:
            raise ConfigError(f"cpu_threads must be >= 1, got {cpu_threads}")
        self.service = service
        self.gpu = gpu
        self.n_gpus = n_gpus
        self.placement = placement or CpuPlacement()
        self.input_scale = input_scale
        self.cpu_threads = cpu_threads
        self.throttle = throttle
        self.warmup_requests = warmup_requests
        self.context = context
        self.worker_env = dict(worker_env or {})
        if max_queue is not None and max_queue < 1:
            raise ConfigError(f"max_queue must be >= 1, got {max_queue}")
        if deadline_s is not None and deadline_s <= 0:
            raise ConfigError(f"deadline must be > 0 s, got {deadline_s}")
        self.spec_options: dict = {}
        self._d = self.dispatcher_class(
            context=context, start_timeout_s=start_timeout_s, request_timeout_s=request_timeout_s,
            max_attempts=max_attempts, max_restarts=max_restarts, max_queue=max_queue,
            max_queue_wait_s=max_queue_wait_s, no_worker_timeout_s=no_worker_timeout_s, deadline_s=deadline_s,
            process_factory=process_factory)
        self.loop: asyncio.AbstractEventLoop = self._d.loop  # the front end serves on this loop
        self.request_timeout_s = request_timeout_s
        self.start_timeout_s = start_timeout_s
        self._reconf = threading.Lock()
        self._gen = itertools.count(1)
        self._closed = False
        self._configuration: Configuration | None = None
        self.reconfiguring = False
        self.last_placement_s = 0.0  # time the placement provider took in the last reconfiguration

    # ------------------------------------------------------------------ requests
    @property
    def configuration(self) -> Configuration | None:
        return self._configuration

    @property
    def max_queue_wait_s(self) -> float | None:
        """Longest a request may wait in the queue (s); None: no limit but its deadline."""
        return self._d.max_queue_wait_s

    @property
    def deadline_s(self) -> float | None:
        """Default deadline (s) of requests that bring none; None: only ``max_queue_wait_s``."""
        return self._d.deadline_s

    @deadline_s.setter
    def deadline_s(self, value: float | None) -> None:
        if value is not None and value <= 0:
            raise ConfigError(f"deadline must be > 0 s, got {value}")
        self._d.deadline_s = value

    def submit(self, inputs: dict[str, np.ndarray], timeout_s: float | None = None) -> Future:
        """Enqueue a request (thread-safe); the future resolves to InferResult or raises
        RequestError. ``timeout_s``: the client's deadline (default: the pool's)."""
        return self._d.submit(inputs, timeout_s)

    async def submit_async(self, inputs: dict[str, np.ndarray], timeout_s: float | None = None) -> InferResult:
        """The same from a coroutine (no thread hop when it runs on :attr:`loop`)."""
        return await self._d.submit_async(inputs, timeout_s)

    def submit_cb(self, inputs: dict[str, np.ndarray], timeout_s: float | None,
                  fn: Callable[[InferResult | None, BaseException | None], None]) -> Callable[[], None]:
        """On :attr:`loop` only: enqueue; ``fn(result, error)`` is called once on the loop (see
        ``Dispatcher.submit_cb``). Returns a cancel callable."""
        return self._d.submit_cb(inputs, timeout_s, fn)

    def submit_to(self, inputs: dict[str, np.ndarray], timeout_s: float | None, future: Any) -> None:
        """On :attr:`loop` only: enqueue a request whose end goes to ``future`` (``done()``,
        ``set_result``, ``set_exception``; see ``Dispatcher.submit_to``). The front end calls the
        dispatcher's own method (:attr:`submit_fast`), one call less per request."""
        self._d.submit_to(inputs, timeout_s, future)

    @property
    def submit_fast(self) -> Callable[[dict[str, np.ndarray], float | None, Any], None]:
        """``submit_to`` of the dispatcher itself (bound once by the front end)."""
        return self._d.submit_to

    def infer(self, inputs: dict[str, np.ndarray], timeout_s: float | None = None) -> InferResult:
        return self.submit(inputs).result(timeout_s)

    def drain_records(self) -> list[RequestRecord]:
        """Finished requests since the previous call."""
        out = []
        records = self._d.records
        while True:
            try:
                out.append(records.popleft())
            except IndexError:
                return out

    def service_rate(self) -> tuple[float, float] | None:
        """(requests/s the ready workers complete, mean service s) from recent replies; None
        before any reply. The capacity figure admission control uses."""
        return self._d.service_rate()

    def admission(self) -> dict[str, int]:
        """Counters since start: requests admitted, refused on arrival, expired in the queue."""
        d = self._d
        return {"admitted": d.admitted, "rejected": d.rejected, "expired": d.expired}

    # ------------------------------------------------------------------ configuration
    def plan(self, configuration: Configuration) -> list[SlotPlan]:
        """Slots of ``configuration`` on every GPU, reusing current (slice, variant) pairs."""
        self._check(configuration)
        out: list[SlotPlan] = []
        for g in range(self.n_gpus):
            running = [w for w in self._workers() if not w.retiring and w.plan.gpu_index == g]
            out += self._gpu_slots(g, configuration, running)
        return sorted(out, key=lambda sp: sp.slot_id)

    def _check(self, configuration: Configuration) -> None:
        """ConfigError unless ``configuration`` is for this pool's GPU model and service."""
        if configuration.gpu != self.gpu.name:
            raise ConfigError(f"configuration {configuration.label()} is for {configuration.gpu}, the pool serves {self.gpu.name}")
        for v in set(configuration.variants):
            self.service.variant(v)

    def _gpu_slots(self, g: int, configuration: Configuration, running: list[Worker]) -> list[SlotPlan]:
        """GPU ``g``'s slots of ``configuration``; the (slice, variant) pairs of its ``running``
        workers stay where they are (no needless reload)."""
        previous = {(w.plan.slice.profile, w.plan.slice.start): w.plan.variant for w in running}
        return [SlotPlan(slice_id(g, s), g, s, v, self.gpu.profile(s.profile).compute_slices)
                for s, v in slot_assignment(configuration, self.gpu, previous)]

    @staticmethod
    def _match(plans: list[SlotPlan], workers: list[Worker]) -> tuple[list[SlotPlan], list[Worker]]:
        """(plans no worker serves yet, workers no plan keeps): a worker whose slot and variant
        are unchanged keeps serving."""
        free = {w.key: w for w in workers}
        new: list[SlotPlan] = []
        for sp in plans:
            match = next((w for w in free.values()
                          if w.plan.slot_id == sp.slot_id and w.plan.variant == sp.variant), None)
            if match is not None:
                free.pop(match.key)
            else:
                new.append(sp)
        return new, list(free.values())

    def _start(self, placed: list[tuple[SlotPlan, str]]) -> tuple[list[Worker], list[Worker]]:
        """Spawn a worker per (slot, device) and wait until each is ready or has given up (its
        start timeout + 30 s); returns (started, failed)."""
        started = [self._spawn(sp, dev) for sp, dev in placed]
        for w in started:
            w.ready.wait(self.start_timeout_s + 30)
        return started, [w for w in started if w.state != "ready"]

    def _workers(self) -> list[Worker]:
        return list(self._d.workers.values())

    def _spawn(self, plan: SlotPlan, device: str) -> Worker:
        spec = self.spec_class(
            slot_id=plan.slot_id, service=self.service, variant=plan.variant, device=device,
            compute_slices=plan.compute_slices, total_slices=self.gpu.whole.compute_slices,
            input_scale=self.input_scale, cpu_threads=self.cpu_threads, throttle=self.throttle,
            warmup_requests=self.warmup_requests, env=self.worker_env, **self.spec_options,
        )
        w = self.worker_class(f"{plan.slot_id}#{next(self._gen)}", plan, spec)
        self._d.call(self._d.add, w)
        return w

    def _retire(self, workers: list[Worker], wait: bool = True) -> None:
        self._d.call(self._d.retire, workers)
        if wait:
            for w in workers:
                w.exited.wait(self.request_timeout_s or None)

    def _devices(self, gpus: set[int], configuration: Configuration) -> dict[str, str]:
        part = configuration.partition(self.gpu)
        devices: dict[str, str] = {}
        for g in sorted(gpus):
            mapping = self.placement.realize(g, part)
            for s, dev in mapping.items():
                devices[slice_id(g, s)] = dev
        return devices

    def reconfigure(self, configuration: Configuration) -> ReconfigReport:
        """Serve ``configuration`` on every GPU; blocks until new workers are warm."""
        with self._reconf:
            if self._closed:
                raise BackendError("worker pool is closed")
            t0 = time.perf_counter()
            previous = self._configuration
            plans = self.plan(configuration)
            new, old = self._match(plans, [w for w in self._workers() if not w.retiring and w.state != "failed"])
            if not new and not old:
                self._configuration = configuration
                return ReconfigReport(previous != configuration, previous, configuration, {}, 0, True, "unchanged")
            self.reconfiguring = True
            try:
                return self._switch(configuration, previous, new, old, t0)
            finally:
                self.reconfiguring = False

    def _switch(self, configuration: Configuration, previous: Configuration | None, new: list[SlotPlan],
                old: list[Worker], t0: float) -> ReconfigReport:
        old_ids = {w.plan.slot_id for w in old}
        stopped_at: dict[str, float] = {}
        mbb = self.placement.make_before_break
        if not mbb:
            self._retire(old)
            stopped_at = {w.plan.slot_id: time.perf_counter() for w in old}
        tp = time.perf_counter()
        try:
            devices = self._devices({sp.gpu_index for sp in new} | {w.plan.gpu_index for w in old}, configuration)
        except Exception as e:
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            log.error("reconfiguration to %s failed: %s", configuration.label(), msg)
            return ReconfigReport(True, previous, previous or configuration, {}, 0, False, f"placement failed: {msg}")
        self.last_placement_s = time.perf_counter() - tp
        started, failed = self._start([(sp, devices.get(sp.slot_id, "cpu")) for sp in new])
        if failed and mbb:
            self._retire(started, wait=False)
            msg = failed[0].error or "worker failed to start"
            log.error("reconfiguration to %s failed; keeping %s: %s", configuration.label(),
                      previous.label() if previous else "nothing", msg)
            return ReconfigReport(True, previous, previous or configuration, {}, 0, False, msg)
        if mbb:
            self._retire(old)
        downtime: dict[str, float] = {}
        for w in started:
            sid = w.plan.slot_id
            if mbb and sid in old_ids:
                downtime[sid] = 0.0  # the old variant served until the new one was warm
            else:
                downtime[sid] = max(0.0, (w.ready_at or time.perf_counter()) - stopped_at.get(sid, t0))
        for sid in old_ids - {w.plan.slot_id for w in started}:
            downtime.setdefault(sid, 0.0)
        self._configuration = configuration
        ok = not failed
        loads = ", ".join(f"{w.plan.slot_id}:{w.plan.variant} {w.load_s:.1f}s" for w in started if w.state == "ready")
        msg = f"started {len(started)}, retired {len(old)} workers in {time.perf_counter() - t0:.1f} s ({loads})"
        if failed:
            msg += f"; {len(failed)} failed: {failed[0].error}"
        return ReconfigReport(True, previous, configuration, downtime, len(started), ok, msg)

    # ------------------------------------------------------------------ status
    @property
    def queue_length(self) -> int:
        return len(self._d.queue)

    @property
    def ready_count(self) -> int:
        return sum(w.state == "ready" for w in self._workers())

    @property
    def draining(self) -> bool:
        return self._d.draining or self._d.closed

    def worker_pids(self) -> list[int]:
        return [w.proc.pid for w in self._workers() if w.proc is not None and w.proc.pid]

    def snapshot(self) -> PoolSnapshot:
        now = time.perf_counter()
        workers = sorted(self._workers(), key=lambda w: w.key)
        slots = tuple(
            SlotStatus(w.plan.slot_id, w.plan.variant, w.state, w.spec.device, w.proc.pid if w.proc else None,
                       w.busy_s + (now - w.busy_since if w.current is not None else 0.0),
                       w.served, w.restarts, w.load_s, now - w.ready_at if w.ready_at else 0.0)
            for w in workers
        )
        return PoolSnapshot(now, len(self._d.queue), self._d.in_flight(), slots, self._configuration)

    def begin_drain(self) -> None:
        """Stop admitting now (readiness false, new requests 503); accepted ones keep being served."""
        self._d.draining = True

    def drain(self, grace_s: float) -> int:
        """Stop admitting (readiness turns false; new requests get 503) and wait up to ``grace_s``
        for every accepted request -- queued or in flight -- to be answered. Returns how many
        were still unanswered when the grace period ended (``close`` then answers them 503)."""
        d = self._d
        self.begin_drain()
        deadline = time.monotonic() + grace_s
        while True:
            left = d.call(lambda: len(d.queue) + d.in_flight())
            if left == 0 or time.monotonic() >= deadline:
                return int(left)
            time.sleep(0.02)

    def close(self) -> None:
        """Fail queued requests with 503, let in-flight ones finish, stop every worker."""
        with self._reconf:
            if self._closed:
                return
            self._closed = True
            workers = self._workers()
            self._d.call(self._d.close)
            for w in workers:
                w.exited.wait(10.0)
            self._d.stop_loop()
            self.placement.close()


__all__ = ["InferResult", "PoolSnapshot", "RequestError", "RequestRecord", "SlotPlan", "SlotStatus", "WorkerPool"]
