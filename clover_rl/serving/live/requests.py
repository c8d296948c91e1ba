"""A request's life inside the worker pool: what is queued (:class:`Pending`), how its end is
delivered (a future, or a :class:`Reply` callback on the pool's loop), and what it ends as
(:class:`InferResult`, :class:`RequestError`, a :class:`RequestRecord` for interval metrics), and
how the front end saw it (:class:`ServerRecord`).

The records are named tuples, not dataclasses: one of each is made per request on the hot path.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

log = logging.getLogger("clover_rl.serving.live")


class RequestError(Exception):
    """A request that ended without an answer; ``status`` is the HTTP status to send and
    ``retry_after_s`` (refusals under overload) the ``Retry-After`` to advise."""

    def __init__(self, status: int, message: str, retry_after_s: float | None = None):
        super().__init__(message)
        self.status = status
        self.retry_after_s = retry_after_s


class InferResult(NamedTuple):
    outputs: dict[str, np.ndarray]
    slot_id: str
    variant: str
    queue_s: float  # first enqueue to last dispatch
    service_s: float  # worker-reported (includes the CPU throttle)
    latency_s: float  # enqueue to answer, inside the pool
    attempts: int


class RequestRecord(NamedTuple):
    """One finished request (answered, failed, refused or expired), for interval metrics."""

    status: int
    slot_id: str | None
    variant: str | None
    done_at: float  # time.perf_counter()
    queue_s: float
    service_s: float
    latency_s: float


class ServerRecord(NamedTuple):
    """One infer request as the front end saw it (times from ``time.perf_counter()``)."""

    status: int
    done_at: float  # response handed to the HTTP transport
    latency_s: float  # request accepted (route entered) to response sent: the server-side latency
    pool_s: float  # the pool's part (enqueue to answer), NaN when the pool gave no answer

    @property
    def frontend_s(self) -> float:
        """Front-end overhead: server-side latency minus the pool's part (NaN if unanswered)."""
        return self.latency_s - self.pool_s


class Reply:
    """Future-like end of a request that calls ``fn(result, error)`` once, on the pool's loop,
    instead of waking a waiting coroutine: the front end's infer route writes its response from
    it. ``cancel()`` (the client went away) makes the dispatcher skip the request."""

    __slots__ = ("_done", "fn")

    def __init__(self, fn: Callable[[Any, BaseException | None], None]) -> None:
        self.fn = fn
        self._done = False

    def done(self) -> bool:
        return self._done

    def cancel(self) -> None:
        self._done = True

    def _call(self, result: Any, exc: BaseException | None) -> None:
        if self._done:
            return
        self._done = True
        try:
            self.fn(result, exc)
        except Exception:  # a bug in the callback must not stop the dispatcher
            log.exception("request reply callback failed")

    def set_result(self, result: Any) -> None:
        self._call(result, None)

    def set_exception(self, exc: BaseException) -> None:
        self._call(None, exc)


class Pending:
    __slots__ = ("attempts", "deadline", "dispatched", "enqueued", "future", "inputs", "rid")

    def __init__(self, rid: int, inputs: dict[str, np.ndarray], future: Any, deadline: float | None):
        self.rid = rid
        self.inputs = inputs
        self.future = future  # concurrent.futures.Future, asyncio.Future or Reply
        self.enqueued = time.perf_counter()
        self.dispatched = self.enqueued
        self.attempts = 0
        self.deadline = deadline  # perf_counter() time, or None


def settle(fut: Any, result: Any = None, exc: BaseException | None = None) -> None:
    """End ``fut`` with ``result`` or ``exc``, unless it has ended (or been cancelled) already."""
    if fut.done():
        return
    try:
        if exc is not None:
            fut.set_exception(exc)
        else:
            fut.set_result(result)
    except (concurrent.futures.InvalidStateError, asyncio.InvalidStateError):  # cancelled meanwhile
        pass


__all__ = ["InferResult", "Pending", "Reply", "RequestError", "RequestRecord", "ServerRecord", "settle"]
