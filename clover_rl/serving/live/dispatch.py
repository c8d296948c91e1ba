"""The worker pool's dispatcher: one asyncio event loop owns the central queue and reads every
worker's pipe itself.

Why one loop: with a feeder thread per worker, each request crossed three threads (HTTP handler
-> feeder -> back to the handler's loop), paying a lock, two wake-ups and GIL hand-offs on the
way. Here the KServe front end runs on this same loop (:class:`~.server.FrontEnd` serves uvicorn
on it), so admission, dispatch (a pickle and a write to the worker's pipe) and the reply (a
read once the pipe is readable) happen on one thread, with no locks on the request path.
Blocking work -- spawning a worker and waiting for its model to load, reaping a dead one --
runs in short-lived threads that hand the result back to the loop.

Admission control, at arrival (every refusal is an explicit 503, with ``Retry-After``):

- the pool is draining or closed;
- ``max_queue`` requests already wait (a bounded queue);
- the request has a deadline (the client's, else the pool's default) and its expected
  completion lands past it. Expected completion = ``max(0, queued + 1 - idle) / rate`` plus one
  mean service time, where ``rate`` (req/s) is the sum over ready workers of ``1 / s_i`` and
  ``s_i`` is an EWMA (weight 0.2) of worker ``i``'s recent dispatch-to-reply times.

A queued request whose deadline passes is answered 503 within :data:`TICK_S` and never reaches
a worker (no work for clients that have left). Counters ``admitted``, ``rejected``, ``expired``
feed ``/metrics``; every refused or expired request is also a :class:`RequestRecord` with
status 503, so the controller counts it as a failed request, never as a quiet interval.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

from clover_rl.serving.live.requests import (
    InferResult,
    Pending,
    Reply,
    RequestError,
    RequestRecord,
    settle,
)
from clover_rl.serving.live.worker import WorkerCrashed, WorkerProcess, WorkerSpec, WorkerStartError

log = logging.getLogger("clover_rl.serving.live")

TICK_S = 0.05  # how often queued deadlines, lost workers and hung requests are checked
EWMA = 0.2


def new_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop where installed (a C loop: less CPU per callback and socket read than asyncio's)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class Worker:
    """One slice's worker process as the dispatcher sees it. ``plan`` is the pool's SlotPlan."""

    def __init__(self, key: str, plan: Any, spec: WorkerSpec):
        self.key = key
        self.plan = plan
        self.spec = spec
        self.proc: WorkerProcess | None = None
        self.state = "starting"  # starting | ready | restarting | retiring | failed | stopped
        self.ready = threading.Event()
        self.exited = threading.Event()
        self.error = ""
        self.retiring = False
        self.fd: int | None = None  # registered with the loop while ready
        self.current: Pending | None = None
        self.busy_since = 0.0
        self.busy_s = 0.0
        self.served = 0
        self.restarts = 0
        self.load_s = self.ready_at = 0.0
        self.ewma_s: float | None = None
        self.seats = 1  # requests served at once (an LLM worker's continuous batch has more)


class Dispatcher:
    """Queue, admission and worker I/O on one event loop thread (see the module docstring)."""

    def __init__(self, *, context: str, start_timeout_s: float, request_timeout_s: float | None,
                 max_attempts: int, max_restarts: int, max_queue: int | None, max_queue_wait_s: float | None,
                 no_worker_timeout_s: float, deadline_s: float | None, process_factory: Callable[[WorkerSpec, str], Any] | None = None) -> None:
        self.context = context
        # what runs a worker: a local process, or a Ray actor's handle (clover_rl.serving.ray)
        self.process_factory = process_factory or WorkerProcess
        self.start_timeout_s = start_timeout_s
        self.request_timeout_s = request_timeout_s
        self.max_attempts = max_attempts
        self.max_restarts = max_restarts
        self.max_queue = max_queue
        self.max_queue_wait_s = max_queue_wait_s
        self.no_worker_timeout_s = no_worker_timeout_s
        self.deadline_s = deadline_s  # default deadline of requests that bring none
        self.queue: deque[Pending] = deque()
        self.idle: deque[Worker] = deque()
        self.workers: dict[str, Worker] = {}
        self.records: deque[RequestRecord] = deque(maxlen=2_000_000)
        self.admitted = self.rejected = self.expired = 0
        self.closed = False
        self.draining = False
        self._ids = itertools.count(1)
        self._no_worker_since: float | None = time.perf_counter()
        self._last_refusal_log = -1e9
        self.loop = new_loop()
        self._thread = threading.Thread(target=self._run, name="clover-pool-loop", daemon=True)
        self._tid: int | None = None
        self._thread.start()

    # ------------------------------------------------------------------ threads <-> loop
    def _run(self) -> None:
        self._tid = threading.get_ident()
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self._tick)
        self.loop.run_forever()

    def on_loop(self) -> bool:
        return threading.get_ident() == self._tid

    def post(self, fn: Callable[..., Any], *args: Any) -> bool:
        """Run ``fn(*args)`` on the loop soon; False when the loop has stopped."""
        try:
            self.loop.call_soon_threadsafe(fn, *args)
            return True
        except RuntimeError:
            return False

    def call(self, fn: Callable[..., Any], *args: Any, timeout_s: float = 30.0) -> Any:
        """Run ``fn(*args)`` on the loop and wait for its result."""
        if self.on_loop() or not self._thread.is_alive():
            return fn(*args)
        cf: concurrent.futures.Future = concurrent.futures.Future()

        def run() -> None:
            try:
                cf.set_result(fn(*args))
            except BaseException as e:
                cf.set_exception(e)

        if not self.post(run):
            return fn(*args)
        return cf.result(timeout_s)

    # ------------------------------------------------------------------ requests
    def _pending(self, inputs: dict[str, np.ndarray], future: Any, timeout_s: float | None) -> Pending:
        t = timeout_s if timeout_s is not None else self.deadline_s
        p = Pending(next(self._ids), inputs, future, None)
        if t is not None:
            p.deadline = p.enqueued + t
        return p

    def submit(self, inputs: dict[str, np.ndarray], timeout_s: float | None = None) -> concurrent.futures.Future:
        """Thread-safe: enqueue; the future resolves to InferResult or raises RequestError."""
        p = self._pending(inputs, concurrent.futures.Future(), timeout_s)
        if self.on_loop():
            self._admit(p)
        elif not self.post(self._admit, p):
            settle(p.future, exc=RequestError(503, "server is shutting down"))
        return p.future

    async def submit_async(self, inputs: dict[str, np.ndarray], timeout_s: float | None = None) -> InferResult:
        """From a coroutine: on the pool's loop directly, from any other loop through a future."""
        if not self.on_loop():
            return await asyncio.wrap_future(self.submit(inputs, timeout_s))
        p = self._pending(inputs, self.loop.create_future(), timeout_s)
        self._admit(p)
        return await p.future

    def submit_cb(self, inputs: dict[str, np.ndarray], timeout_s: float | None,
                  fn: Callable[[InferResult | None, BaseException | None], None]) -> Callable[[], None]:
        """(Loop) Enqueue; ``fn(result, None)`` or ``fn(None, RequestError)`` is called once on the
        loop, possibly before this returns (a refusal). Returns a cancel callable (the client left)."""
        reply = Reply(fn)
        self.submit_to(inputs, timeout_s, reply)
        return reply.cancel

    def submit_to(self, inputs: dict[str, np.ndarray], timeout_s: float | None, future: Any) -> None:
        """(Loop) Enqueue a request whose end goes to ``future``: any object with ``done()``,
        ``set_result(InferResult)`` and ``set_exception(RequestError)`` (called on the loop, possibly
        before this returns); once ``done()`` is true the request is skipped (the client left).
        The front end's infer route passes its request object itself (no callback object per request)."""
        self._admit(self._pending(inputs, future, timeout_s))

    def _finish(self, p: Pending, status: int, w: Worker | None, result: InferResult | None = None,
                message: str = "", service_s: float = 0.0, retry_after_s: float | None = None,
                now: float | None = None) -> None:
        if now is None:
            now = time.perf_counter()
        queued = (p.dispatched if p.attempts else now) - p.enqueued
        # tuple.__new__: a NamedTuple's own __new__ is a Python function (a frame per request)
        self.records.append(tuple.__new__(RequestRecord, (status, w.plan.slot_id if w else None,
                                                          w.plan.variant if w else None, now, queued, service_s,
                                                          now - p.enqueued)))
        settle(p.future, result, None if result is not None else RequestError(status, message, retry_after_s))

    def service_rate(self) -> tuple[float, float] | None:
        """(requests/s the ready workers complete: sum of seats / EWMA service s, mean service s)."""
        ready = []
        known = 0.0
        n = 0
        for w in self.workers.values():  # loops, not comprehensions: this runs per request
            if w.state == "ready" and not w.retiring:
                ready.append(w)
                if w.ewma_s:
                    known += w.ewma_s
                    n += 1
        if not n:
            return None
        mean = known / n
        rate = 0.0
        for w in ready:
            rate += w.seats / (w.ewma_s or mean)
        return rate, mean

    def expected_done_s(self) -> float | None:
        """Expected time from now until a request arriving now is answered; None = unknown."""
        est = self.service_rate()
        if est is None:
            return None
        rate, mean = est
        ahead = len(self.queue) + 1 - len(self.idle)
        return max(0, ahead) / rate + mean

    def _refuse(self, p: Pending, message: str, retry_after_s: float | None) -> None:
        self.rejected += 1
        if p.enqueued - self._last_refusal_log > 5.0:  # one line per 5 s, not one per request
            self._last_refusal_log = p.enqueued
            est = self.service_rate()
            log.warning("refusing requests (%d so far): %s; %d queued, %d idle workers, service rate %s",
                        self.rejected, message, len(self.queue), len(self.idle),
                        f"{est[0]:.1f}/s" if est else "unknown")
        self._finish(p, 503, None, message=message, retry_after_s=retry_after_s)

    def _retry_after(self) -> float:
        est = self.service_rate()
        return max(1.0, math.ceil(len(self.queue) / est[0])) if est else 1.0

    def _admit(self, p: Pending) -> None:
        if self.closed or self.draining:
            self._refuse(p, "server is shutting down" if self.closed else "server is draining (stopping)", None)
            return
        if self.max_queue is not None and len(self.queue) >= self.max_queue:
            self._refuse(p, f"overloaded: {len(self.queue)} requests already queued (the limit)", self._retry_after())
            return
        if p.deadline is not None:
            est = self.expected_done_s()
            if est is not None and p.enqueued + est > p.deadline:
                self._refuse(p, f"overloaded: expected answer in {est * 1000:.0f} ms, past the deadline of "
                                f"{(p.deadline - p.enqueued) * 1000:.0f} ms", self._retry_after())
                return
        self.admitted += 1
        self.queue.append(p)
        if self.idle:
            self._dispatch()

    def _expire(self, p: Pending, now: float) -> None:
        self.expired += 1
        self._finish(p, 503, None, message=f"deadline passed after {(now - p.enqueued) * 1000:.0f} ms in the queue")

    def _dispatch(self, now: float | None = None) -> None:
        if now is None:
            now = time.perf_counter()
        while self.idle and self.queue:
            p = self.queue.popleft()
            if p.future.done():  # the client went away (cancelled)
                continue
            if p.deadline is not None and now > p.deadline:
                self._expire(p, now)
                continue
            w = self.idle.popleft()
            w.current = p
            p.dispatched = w.busy_since = now
            p.attempts += 1
            try:
                w.proc.send(p.rid, p.inputs)  # type: ignore[union-attr]
            except WorkerCrashed as e:
                self._crashed(w, str(e))

    def _readable(self, w: Worker) -> None:
        try:
            reply = w.proc.recv()  # type: ignore[union-attr]
        except WorkerCrashed as e:
            self._crashed(w, str(e))
            return
        p = w.current
        if p is None:
            return
        now = time.perf_counter()
        dt = now - w.busy_since
        w.busy_s += dt
        w.current = None
        w.served += 1
        w.ewma_s = dt if w.ewma_s is None else w.ewma_s + EWMA * (dt - w.ewma_s)
        if reply[0] == "done":
            service_s = reply[3]
            self._finish(p, 200, w, tuple.__new__(InferResult, (reply[2], w.plan.slot_id, w.plan.variant,
                                                                p.dispatched - p.enqueued, service_s,
                                                                now - p.enqueued, p.attempts)),
                         service_s=service_s, now=now)
        else:
            self._finish(p, 400, w, message=f"model {w.plan.variant} rejected the request: {reply[2]}",
                         service_s=reply[3], now=now)
        if w.retiring or self.closed:
            self._stop(w)
        else:
            self.idle.append(w)
            if self.queue:
                self._dispatch(now)

    # ------------------------------------------------------------------ worker lifecycle
    def _unwatch(self, w: Worker) -> None:
        if w.fd is not None:
            self.loop.remove_reader(w.fd)
            w.fd = None
        try:
            self.idle.remove(w)
        except ValueError:
            pass

    def add(self, w: Worker) -> None:
        """Register ``w`` and start its process (in a thread); ``w.ready`` is set when it serves."""
        self.workers[w.key] = w
        threading.Thread(target=self._boot, args=(w, True), name=f"clover-start {w.key}", daemon=True).start()

    def _boot(self, w: Worker, first: bool, old: WorkerProcess | None = None) -> None:
        if old is not None:
            old.kill()
        if self._start(w, first):
            if self.post(self._activate, w):
                return
        elif self.post(self._gone, w, "failed"):
            return
        if w.proc is not None:  # the loop has stopped: clean up here
            w.proc.stop()
        w.ready.set()
        w.exited.set()

    def _start(self, w: Worker, first: bool) -> bool:
        """Spawn (or respawn) the worker process and wait until its model is warm (blocking)."""
        failures = 0
        while True:
            w.proc = self.process_factory(w.spec, self.context)
            t0 = time.perf_counter()
            try:
                w.proc.start()
                info = w.proc.wait_ready(self.start_timeout_s)
            except (WorkerStartError, OSError) as e:
                failures += 1
                w.error = str(e)
                if first or failures >= self.max_restarts or w.retiring or self.closed:
                    log.error("%s", e)
                    return False
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
            return True

    def _activate(self, w: Worker) -> None:
        if w.retiring or self.closed:
            self._stop(w)
            return
        w.state = "ready"
        w.fd = w.proc.fileno()  # type: ignore[union-attr]
        self.loop.add_reader(w.fd, self._readable, w)
        self.idle.append(w)
        w.ready.set()
        self._dispatch()

    def _gone(self, w: Worker, state: str = "stopped") -> None:
        self._unwatch(w)
        w.state = state
        self.workers.pop(w.key, None)
        w.ready.set()
        w.exited.set()

    def _stop(self, w: Worker) -> None:
        """Stop an idle worker: its process exits in a thread, then it leaves the pool."""
        self._unwatch(w)
        w.state = "retiring"

        def reap() -> None:
            if w.proc is not None:
                w.proc.stop()
            if not self.post(self._gone, w):
                w.ready.set()
                w.exited.set()

        threading.Thread(target=reap, name=f"clover-stop {w.key}", daemon=True).start()

    def _crashed(self, w: Worker, why: str) -> None:
        self._unwatch(w)
        p, w.current = w.current, None
        if p is not None:
            w.busy_s += time.perf_counter() - w.busy_since
        w.state = "restarting"
        w.restarts += 1
        retry = p is not None and p.attempts < self.max_attempts
        if p is not None:
            if retry:
                self.queue.appendleft(p)  # served next, by whichever worker is free
            else:
                self._finish(p, 500, w, message=f"request crashed {p.attempts} workers (last: {why})")
        log.warning("%s: worker (%s) crashed: %s; restarting%s", w.plan.slot_id, w.plan.variant, why,
                    "" if p is None else ", request " + ("re-queued at the head" if retry else "failed"))
        old = w.proc
        if w.retiring or self.closed:
            self._stop(w)
        else:
            threading.Thread(target=self._boot, args=(w, False, old), name=f"clover-restart {w.key}",
                             daemon=True).start()
        self._dispatch()

    def retire(self, workers: list[Worker]) -> None:
        """(Loop) Workers finish their request in flight, then stop; starting ones stop when up."""
        for w in workers:
            w.retiring = True
            if w.state == "ready" and w.current is None:
                self._stop(w)

    # ------------------------------------------------------------------ monitor
    def _tick(self) -> None:
        now = time.perf_counter()
        if self.idle or any(w.state == "ready" for w in self.workers.values()):
            self._no_worker_since = None
        elif self._no_worker_since is None:
            self._no_worker_since = now
        nws = self._no_worker_since
        wait = self.max_queue_wait_s
        if self.queue and (nws is not None or wait is not None or any(p.deadline for p in self.queue)):
            keep: deque[Pending] = deque()
            for p in self.queue:
                if p.future.done():
                    continue
                if p.deadline is not None and now > p.deadline:
                    self._expire(p, now)
                elif wait is not None and now - p.enqueued > wait:
                    self.expired += 1
                    self._finish(p, 503, None, message=f"queued longer than {wait:g} s")
                elif nws is not None and now - max(p.enqueued, nws) > self.no_worker_timeout_s:
                    self._finish(p, 503, None, message=f"no worker available for {self.no_worker_timeout_s:g} s")
                else:
                    keep.append(p)
            self.queue = keep
        limit = self.request_timeout_s
        if limit is not None:
            for w in list(self.workers.values()):
                if w.current is not None and now - w.busy_since > limit:
                    self._crashed(w, f"no answer within {limit:g} s")
        if not (self.closed and not self.workers):
            self.loop.call_later(TICK_S, self._tick)

    # ------------------------------------------------------------------ shutdown
    def in_flight(self) -> int:
        return sum(w.current is not None for w in self.workers.values())

    def close(self) -> None:
        """(Loop) Refuse new requests, fail queued ones with 503, retire every worker."""
        self.closed = True
        while self.queue:
            p = self.queue.popleft()
            self._finish(p, 503, None, message="server is shutting down")
        self.retire(list(self.workers.values()))

    def stop_loop(self, timeout_s: float = 5.0) -> None:
        self.post(self.loop.stop)
        self._thread.join(timeout_s)
        if not self._thread.is_alive():
            self.loop.close()


__all__ = ["Dispatcher", "InferResult", "Pending", "RequestError", "RequestRecord", "Worker", "new_loop"]
