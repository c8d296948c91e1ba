"""The dispatcher's view of a slice actor: the worker-process interface over a Ray actor.

:class:`~clover_rl.serving.live.dispatch.Dispatcher` drives workers through ``start``,
``wait_ready``, ``send``, ``fileno``/``recv`` (its event loop watches a descriptor),
``stop``/``kill``. :class:`RayWorkerHandle` keeps that interface so the queue, admission
control, deadlines and crash re-queueing are the local plane's, unchanged: ``send`` calls the
actor and, when the reply (or the actor's death) arrives, a byte on a private pipe wakes the
loop; ``recv`` returns the reply or raises ``WorkerCrashed`` (node or actor gone), which puts the
request back at the head of the queue for another slice.
"""
from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from clover_rl.serving.live.worker import WorkerCrashed, WorkerSpec, WorkerStartError


def one_line(e: BaseException) -> str:
    """A Ray error as one line (the cause of a task error, the first line otherwise)."""
    cause = getattr(e, "cause", None)
    if isinstance(cause, BaseException) and cause is not e:
        e = cause
    lines = [x for x in str(e).strip().splitlines() if x.strip()]
    return f"{type(e).__name__}: {lines[0].strip()}" if lines else type(e).__name__


class RayWorkerHandle:
    """One :class:`~.actors.SliceActor` pinned to ``node_id`` (hard node affinity: never moved).

    ``on_death(handle, why)`` is called on the dispatcher's loop when the actor turns out dead,
    before ``WorkerCrashed`` is raised (the pool uses it to stop dispatching to that node).
    """

    def __init__(self, spec: WorkerSpec, node_id: str | None, actor_class: Any,
                 on_death: Callable[[RayWorkerHandle, str], None] | None = None, node_name: str = "") -> None:
        self.spec = spec
        self.node_id = node_id
        self.node_name = node_name
        self.actor_class = actor_class
        self.on_death = on_death
        self.actor: Any = None
        self.info: dict[str, Any] = {}
        self._fut: Future | None = None
        self._r, self._w = os.pipe()
        os.set_blocking(self._r, False)
        self._closed = False
        self._fd_lock = threading.Lock()  # a late wake-up must never write to a reused descriptor

    @property
    def pid(self) -> int | None:
        return self.info.get("pid")

    def alive(self) -> bool:
        return self.actor is not None

    def start(self) -> None:
        if self.node_id is None:
            self.kill()
            raise WorkerStartError(f"worker {self.spec.slot_id} ({self.spec.variant}): its node is lost")
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        self.actor = self.actor_class.options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(self.node_id, soft=False),
            num_cpus=0, max_restarts=0, max_task_retries=0,
        ).remote(self.spec)

    def wait_ready(self, timeout_s: float) -> dict[str, Any]:
        import ray
        from ray.exceptions import GetTimeoutError, RayError

        where = f"worker {self.spec.slot_id} ({self.spec.variant}) on node {self.node_name or self.node_id}"
        try:
            kind, payload = ray.get(self.actor.ready.remote(), timeout=timeout_s)
        except GetTimeoutError:
            self.kill()
            raise WorkerStartError(f"{where} not ready after {timeout_s:.0f} s") from None
        except RayError as e:
            self.kill()
            raise WorkerStartError(f"{where}: {one_line(e)}") from None
        if kind != "ready":
            self.kill()
            raise WorkerStartError(f"{where}: {payload}")
        self.info = dict(payload)
        return self.info

    def fileno(self) -> int:
        return self._r

    def _wake(self, _fut: Future) -> None:
        with self._fd_lock:
            if not self._closed:
                try:
                    os.write(self._w, b"x")
                except OSError:
                    pass

    def send(self, rid: int, inputs: dict[str, Any]) -> None:
        if self.actor is None:
            raise WorkerCrashed("actor gone")
        fut = self.actor.infer.remote(rid, inputs).future()
        self._fut = fut
        fut.add_done_callback(self._wake)

    def recv(self) -> tuple:
        try:
            os.read(self._r, 64)
        except (BlockingIOError, OSError):
            pass
        fut, self._fut = self._fut, None
        if fut is None:
            raise WorkerCrashed("no request in flight")
        try:
            return fut.result(timeout=0)
        except Exception as e:
            why = one_line(e)
            if self.on_death is not None:
                self.on_death(self, why)
            raise WorkerCrashed(why) from None

    def stop(self, timeout_s: float = 5.0) -> None:
        self.kill()

    def kill(self) -> None:
        actor, self.actor = self.actor, None
        if actor is not None:
            try:
                import ray

                ray.kill(actor, no_restart=True)
            except Exception:  # already dead, or Ray is shutting down
                pass
        with self._fd_lock:
            if not self._closed:
                self._closed = True
                for fd in (self._r, self._w):
                    try:
                        os.close(fd)
                    except OSError:
                        pass
