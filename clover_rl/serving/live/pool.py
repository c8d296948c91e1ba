"""The worker pool: one central FIFO queue, one worker process per slice, the paper's dispatch.

Each worker has a feeder thread that takes the head of the central queue only when its worker is
free, so the next request always goes to whichever worker frees up first. Requests are never
dropped silently: a request whose worker crashes goes back to the head of the queue (and the
worker is restarted); a request that cannot be served ends with an explicit status:

- 400: the model rejected the input;
- 500: the request crashed ``max_attempts`` workers in a row;
- 503: it waited longer than ``max_queue_wait_s``, or no worker at all was ready for
  ``no_worker_timeout_s`` (e.g. every slice down during a MIG re-partition), or shutdown.

``reconfigure`` keeps workers whose (slice, variant) is unchanged. With a make-before-break
placement (CPU emulation) it starts the new workers, waits until they are warm, then retires the
removed ones, so capacity never drops; with real MIG it must retire the changed slices first.
Retiring workers finish their in-flight request. Either way, requests keep flowing through the
unaffected slices or wait in the queue.
"""
from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import Counter, deque
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass
from typing import Any

import numpy as np

from clover_rl.errors import BackendError, ConfigError
from clover_rl.mig.catalog import GpuModel
from clover_rl.mig.config import Configuration
from clover_rl.mig.partition import Slice
from clover_rl.services import ServiceSpec
from clover_rl.serving.backend import ReconfigReport
from clover_rl.serving.live.placement import CpuPlacement, PlacementProvider
from clover_rl.serving.live.worker import WorkerCrashed, WorkerProcess, WorkerSpec, WorkerStartError

log = logging.getLogger("clover_rl.serving.live")


class RequestError(Exception):
    """A request that ended without an answer; ``status`` is the HTTP status to send."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class InferResult:
    outputs: dict[str, np.ndarray]
    slot_id: str
    variant: str
    queue_s: float  # first enqueue to last dispatch
    service_s: float  # worker-reported (includes the CPU throttle)
    latency_s: float  # enqueue to answer, inside the pool
    attempts: int


@dataclass(frozen=True)
class RequestRecord:
    """One finished request, for interval metrics and profiling."""

    status: int
    slot_id: str | None
    variant: str | None
    done_at: float  # time.perf_counter()
    queue_s: float
    service_s: float
    latency_s: float


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


class _Pending:
    __slots__ = ("attempts", "dispatched", "enqueued", "future", "inputs", "rid")

    def __init__(self, rid: int, inputs: dict[str, np.ndarray]):
        self.rid = rid
        self.inputs = inputs
        self.future: Future = Future()
        self.enqueued = time.perf_counter()
        self.dispatched = self.enqueued
        self.attempts = 0


class _Worker:
    def __init__(self, key: str, plan: SlotPlan, spec: WorkerSpec):
        self.key = key
        self.plan = plan
        self.spec = spec
        self.proc: WorkerProcess | None = None
        self.thread: threading.Thread | None = None
        self.state = "starting"
        self.ready = threading.Event()
        self.exited = threading.Event()
        self.error = ""
        self.retiring = False
        self.current: _Pending | None = None
        self.busy_since = 0.0
        self.busy_s = 0.0
        self.served = 0
        self.restarts = 0
        self.load_s = 0.0
        self.ready_at = 0.0


def _set(fut: Future, result: Any = None, exc: BaseException | None = None) -> None:
    try:
        if exc is not None:
            fut.set_exception(exc)
        else:
            fut.set_result(result)
    except InvalidStateError:  # cancelled by the client meanwhile
        pass


class WorkerPool:
    """Worker processes for every slice of ``n_gpus`` GPUs behind one FIFO queue."""

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
        max_queue_wait_s: float | None = 60.0,
        no_worker_timeout_s: float = 30.0,
        start_timeout_s: float = 600.0,
        request_timeout_s: float | None = 300.0,
        max_attempts: int = 3,
        max_restarts: int = 3,
        context: str = "spawn",
        worker_env: dict[str, str] | None = None,
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
        self.max_queue_wait_s = max_queue_wait_s
        self.no_worker_timeout_s = no_worker_timeout_s
        self.start_timeout_s = start_timeout_s
        self.request_timeout_s = request_timeout_s
        self.max_attempts = max_attempts
        self.max_restarts = max_restarts
        self.context = context
        self.worker_env = dict(worker_env or {})
        self._cond = threading.Condition()
        self._reconf = threading.Lock()
        self._queue: deque[_Pending] = deque()
        self._workers: dict[str, _Worker] = {}
        self._records: deque[RequestRecord] = deque(maxlen=2_000_000)
        self._ids = itertools.count(1)
        self._gen = itertools.count(1)
        self._closed = False
        self._no_worker_since: float | None = time.perf_counter()
        self._configuration: Configuration | None = None
        self.reconfiguring = False
        self.last_placement_s = 0.0  # time the placement provider took in the last reconfiguration
        self._monitor = threading.Thread(target=self._watch, name="clover-pool-monitor", daemon=True)
        self._monitor.start()

    # ------------------------------------------------------------------ requests
    @property
    def configuration(self) -> Configuration | None:
        return self._configuration

    def submit(self, inputs: dict[str, np.ndarray]) -> Future:
        """Enqueue a request; the future resolves to InferResult or raises RequestError."""
        p = _Pending(next(self._ids), inputs)
        with self._cond:
            if self._closed:
                _set(p.future, exc=RequestError(503, "server is shutting down"))
                return p.future
            self._queue.append(p)
            self._cond.notify()
        return p.future

    def infer(self, inputs: dict[str, np.ndarray], timeout_s: float | None = None) -> InferResult:
        return self.submit(inputs).result(timeout_s)

    def _finish(self, p: _Pending, status: int, w: _Worker | None, result: InferResult | None = None,
                message: str = "", service_s: float = 0.0) -> None:
        now = time.perf_counter()
        self._records.append(RequestRecord(
            status, w.plan.slot_id if w else None, w.plan.variant if w else None, now,
            p.dispatched - p.enqueued, service_s, now - p.enqueued))
        if result is not None:
            _set(p.future, result)
        else:
            _set(p.future, exc=RequestError(status, message))

    def drain_records(self) -> list[RequestRecord]:
        """Finished requests since the previous call."""
        out = []
        while True:
            try:
                out.append(self._records.popleft())
            except IndexError:
                return out

    # ------------------------------------------------------------------ feeders
    def _feed(self, w: _Worker) -> None:
        try:
            self._start(w, first=True)
            while w.state == "ready":
                with self._cond:
                    while not (w.retiring or self._closed or self._queue):
                        self._cond.wait()
                    if w.retiring or self._closed:
                        break
                    p = self._queue.popleft()
                    if p.future.cancelled():
                        continue
                    w.current = p
                    p.dispatched = w.busy_since = time.perf_counter()
                    p.attempts += 1
                try:
                    reply = w.proc.call(p.rid, p.inputs, self.request_timeout_s)  # type: ignore[union-attr]
                except WorkerCrashed as e:
                    self._crashed(w, p, str(e))
                    continue
                with self._cond:
                    w.busy_s += time.perf_counter() - w.busy_since
                    w.current = None
                    w.served += 1
                if reply[0] == "done":
                    _, _, outputs, service_s, _compute = reply
                    now = time.perf_counter()
                    self._finish(p, 200, w, InferResult(outputs, w.plan.slot_id, w.plan.variant,
                                                        p.dispatched - p.enqueued, service_s, now - p.enqueued,
                                                        p.attempts), service_s=service_s)
                else:
                    self._finish(p, 400, w, message=f"model {w.plan.variant} rejected the request: {reply[2]}",
                                 service_s=reply[3])
        finally:
            if w.proc is not None:
                w.proc.stop()
            with self._cond:
                if w.state != "failed":
                    w.state = "stopped"
                self._workers.pop(w.key, None)
                self._cond.notify_all()
            w.ready.set()
            w.exited.set()

    def _start(self, w: _Worker, first: bool) -> None:
        """Spawn (or respawn) the worker; state ends 'ready' or 'failed'."""
        failures = 0
        while True:
            w.proc = WorkerProcess(w.spec, self.context)
            t0 = time.perf_counter()
            try:
                w.proc.start()
                info = w.proc.wait_ready(self.start_timeout_s)
            except (WorkerStartError, OSError) as e:
                failures += 1
                w.error = str(e)
                if first or failures >= self.max_restarts or w.retiring or self._closed:
                    log.error("%s", e)
                    with self._cond:
                        w.state = "failed"
                    return
                log.warning("%s; retrying", e)
                time.sleep(min(5.0, 0.5 * failures))
                continue
            w.load_s = time.perf_counter() - t0
            w.ready_at = time.perf_counter()
            if first:
                weights = ("random weights (accuracy figures come from the service catalog)"
                           if info.get("weights") == "random" else f"weights {info.get('weights')}")
                log.info("%s: %s ready in %.1f s on %s, %s; %s", w.plan.slot_id, w.plan.variant, w.load_s,
                         w.spec.device, weights, info.get("detail", ""))
            with self._cond:
                w.state = "ready"
                self._cond.notify_all()
            w.ready.set()
            return

    def _crashed(self, w: _Worker, p: _Pending, why: str) -> None:
        with self._cond:
            w.busy_s += time.perf_counter() - w.busy_since
            w.current = None
            w.state = "restarting"
            w.restarts += 1
            if p.attempts >= self.max_attempts:
                retry = False
            else:
                retry = True
                self._queue.appendleft(p)  # served next, by whichever worker is free
                self._cond.notify()
        log.warning("%s: worker (%s) crashed: %s; restarting, request %s", w.plan.slot_id, w.plan.variant, why,
                    "re-queued at the head" if retry else "failed")
        if not retry:
            self._finish(p, 500, w, message=f"request crashed {p.attempts} workers (last: {why})")
        if w.retiring or self._closed:
            with self._cond:
                w.state = "stopped"
            return
        self._start(w, first=False)

    # ------------------------------------------------------------------ monitor
    def _watch(self) -> None:
        while True:
            time.sleep(0.05)
            now = time.perf_counter()
            expired: list[tuple[_Pending, str]] = []
            with self._cond:
                if self._closed:
                    expired = [(p, "server is shutting down") for p in self._queue]
                    self._queue.clear()
                else:
                    if any(w.state == "ready" for w in self._workers.values()):
                        self._no_worker_since = None
                    elif self._no_worker_since is None:
                        self._no_worker_since = now
                    if self.max_queue_wait_s is not None:
                        while self._queue and now - self._queue[0].enqueued > self.max_queue_wait_s:
                            expired.append((self._queue.popleft(), f"queued longer than {self.max_queue_wait_s:g} s"))
                    nws = self._no_worker_since
                    if nws is not None and now - nws > self.no_worker_timeout_s:
                        keep: deque[_Pending] = deque()
                        for p in self._queue:
                            if now - max(p.enqueued, nws) > self.no_worker_timeout_s:
                                expired.append((p, f"no worker available for {self.no_worker_timeout_s:g} s"))
                            else:
                                keep.append(p)
                        self._queue = keep
            for p, why in expired:
                self._finish(p, 503, None, message=why)
            if self._closed:
                return

    # ------------------------------------------------------------------ configuration
    def plan(self, configuration: Configuration) -> list[SlotPlan]:
        """Slots of ``configuration`` on every GPU, reusing current (slice, variant) pairs."""
        if configuration.gpu != self.gpu.name:
            raise ConfigError(f"configuration {configuration.label()} is for {configuration.gpu}, the pool serves {self.gpu.name}")
        for v in set(configuration.variants):
            self.service.variant(v)
        part = configuration.partition(self.gpu)
        current = Counter((w.plan.slot_id, w.plan.variant) for w in self._workers.values() if not w.retiring)
        out: list[SlotPlan] = []
        for g in range(self.n_gpus):
            for prof in dict.fromkeys(configuration.profiles):
                want = Counter(v for p, v in configuration.pairs if p == prof)
                slices = [s for s in part.slices if s.profile == prof]
                chosen: dict[Slice, str] = {}
                for s in slices:  # keep running variants where possible
                    sid = f"gpu{g}/{s.profile}@{s.start}"
                    for v in sorted(want):
                        if want[v] and current[(sid, v)]:
                            chosen[s] = v
                            want[v] -= 1
                            current[(sid, v)] -= 1
                            break
                rest = list(want.elements())
                for s in slices:
                    if s not in chosen:
                        chosen[s] = rest.pop(0)
                for s in slices:
                    out.append(SlotPlan(f"gpu{g}/{s.profile}@{s.start}", g, s, chosen[s],
                                        self.gpu.profile(s.profile).compute_slices))
        return sorted(out, key=lambda sp: sp.slot_id)

    def _spawn(self, plan: SlotPlan, device: str) -> _Worker:
        spec = WorkerSpec(
            slot_id=plan.slot_id, service=self.service, variant=plan.variant, device=device,
            compute_slices=plan.compute_slices, total_slices=self.gpu.whole.compute_slices,
            input_scale=self.input_scale, cpu_threads=self.cpu_threads, throttle=self.throttle,
            warmup_requests=self.warmup_requests, env=self.worker_env,
        )
        w = _Worker(f"{plan.slot_id}#{next(self._gen)}", plan, spec)
        with self._cond:
            self._workers[w.key] = w
        w.thread = threading.Thread(target=self._feed, args=(w,), name=f"clover-feed {w.key}", daemon=True)
        w.thread.start()
        return w

    def _retire(self, workers: list[_Worker], wait: bool = True) -> None:
        with self._cond:
            for w in workers:
                w.retiring = True
                if w.state == "ready" and w.current is None:
                    w.state = "retiring"
            self._cond.notify_all()
        if wait:
            for w in workers:
                w.exited.wait(self.request_timeout_s or None)

    def _devices(self, gpus: set[int], configuration: Configuration) -> dict[str, str]:
        part = configuration.partition(self.gpu)
        devices: dict[str, str] = {}
        for g in sorted(gpus):
            mapping = self.placement.realize(g, part)
            for s, dev in mapping.items():
                devices[f"gpu{g}/{s.profile}@{s.start}"] = dev
        return devices

    def reconfigure(self, configuration: Configuration) -> ReconfigReport:
        """Serve ``configuration`` on every GPU; blocks until new workers are warm."""
        with self._reconf:
            if self._closed:
                raise BackendError("worker pool is closed")
            t0 = time.perf_counter()
            previous = self._configuration
            plans = self.plan(configuration)
            with self._cond:
                active = [w for w in self._workers.values() if not w.retiring and w.state != "failed"]
            pool_free = {w.key: w for w in active}
            keep: list[_Worker] = []
            new: list[SlotPlan] = []
            for sp in plans:
                match = next((w for w in pool_free.values()
                              if w.plan.slot_id == sp.slot_id and w.plan.variant == sp.variant), None)
                if match is not None:
                    keep.append(pool_free.pop(match.key))
                else:
                    new.append(sp)
            old = list(pool_free.values())
            if not new and not old:
                self._configuration = configuration
                return ReconfigReport(previous != configuration, previous, configuration, {}, 0, True, "unchanged")
            self.reconfiguring = True
            try:
                return self._switch(configuration, previous, new, old, t0)
            finally:
                self.reconfiguring = False

    def _switch(self, configuration: Configuration, previous: Configuration | None, new: list[SlotPlan],
                old: list[_Worker], t0: float) -> ReconfigReport:
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
        started = [self._spawn(sp, devices.get(sp.slot_id, "cpu")) for sp in new]
        for w in started:
            w.ready.wait(self.start_timeout_s + 30)
        failed = [w for w in started if w.state != "ready"]
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
        return len(self._queue)

    @property
    def ready_count(self) -> int:
        with self._cond:
            return sum(w.state == "ready" for w in self._workers.values())

    def worker_pids(self) -> list[int]:
        with self._cond:
            return [w.proc.pid for w in self._workers.values() if w.proc is not None and w.proc.pid]

    def snapshot(self) -> PoolSnapshot:
        now = time.perf_counter()
        with self._cond:
            slots = tuple(
                SlotStatus(w.plan.slot_id, w.plan.variant, w.state, w.spec.device,
                           w.proc.pid if w.proc else None,
                           w.busy_s + (now - w.busy_since if w.current is not None else 0.0),
                           w.served, w.restarts, w.load_s, now - w.ready_at if w.ready_at else 0.0)
                for w in sorted(self._workers.values(), key=lambda w: w.key)
            )
            in_flight = sum(w.current is not None for w in self._workers.values())
            return PoolSnapshot(now, len(self._queue), in_flight, slots, self._configuration)

    def close(self) -> None:
        """Fail queued requests with 503, let in-flight ones finish, stop every worker."""
        with self._reconf:
            with self._cond:
                if self._closed:
                    return
                self._closed = True
                workers = list(self._workers.values())
                self._cond.notify_all()
            self._retire(workers, wait=False)
            for w in workers:
                w.exited.wait(10.0)
            self._monitor.join(2.0)
            self.placement.close()
