"""The LLM worker pool: the vision pool's queue, admission control, deadlines, crash recovery and
reconfiguration (:mod:`.pool`, :mod:`.dispatch`), with workers that hold many requests at once.

What differs from one-request-per-worker dispatch:

- a worker has ``seats`` (its continuous batch); the dispatcher's ``idle`` list holds workers
  with a free seat and the next queued request goes to the one with the fewest sequences;
- replies stream: every iteration's tokens go to each request's :class:`TokenStream` (an
  ``asyncio.Queue`` on the pool's loop, which the HTTP front end shares), and the request ends
  with an :class:`LLMResult` (usage counts, finish reason, times) or a ``RequestError``;
- a request's deadline (the client's, else the pool's) bounds its *time to first token*:
  admission refuses (503 + ``Retry-After``) when the expected wait for a seat plus a prefill
  lands past it, and a queued request whose deadline passes is expired (503), as in
  ``dispatch``. Expected wait = ``max(0, queued + 1 - free seats) / rate + ttft`` with
  ``rate = sum over ready workers of seats / s_i`` (``s_i``: EWMA of dispatch-to-finish times)
  and ``ttft`` an EWMA of dispatch-to-first-token times;
- a worker crash re-queues (at the head) its requests that had no token yet and fails (500)
  those already streaming (their tokens cannot be taken back); a worker that sends nothing for
  ``request_timeout_s`` while holding requests counts as crashed;
- a client that goes away cancels its request (``("cancel", id)`` to the worker; status 499).
"""
from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass
from typing import Any

from clover_rl.errors import ConfigError
from clover_rl.serving.live.dispatch import EWMA, Dispatcher, Pending, RequestError, Worker
from clover_rl.serving.live.llm_worker import ENGINES, GenRequest, LLMWorkerSpec
from clover_rl.serving.live.pool import WorkerPool

CLIENT_CLOSED = 499  # nginx's "client closed request"


@dataclass(frozen=True)
class TokenChunk:
    """Tokens of one iteration for one request; ``prompt_tokens`` on the first chunk only."""

    tokens: list[int]
    text: str
    finish_reason: str | None
    prompt_tokens: int | None
    at: float  # time.perf_counter() when the pool received it


@dataclass(frozen=True)
class LLMResult:
    """A finished generation (times in seconds)."""

    slot_id: str
    variant: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str
    queue_s: float  # enqueue to dispatch
    ttft_s: float  # enqueue to first token, inside the pool
    latency_s: float  # enqueue to the last token
    attempts: int


class TokenStream:
    """A generation as it happens: iterate for :class:`TokenChunk` s, then :class:`LLMResult`;
    raises ``RequestError`` if refused or failed. Future-like (``done``, ``set_result``,
    ``set_exception``) so the dispatcher finishes it like any request; loop-bound."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue = asyncio.Queue()
        self._done = False
        self.cancel_cb: Any = None  # set by the dispatcher: tells the worker to stop generating

    def done(self) -> bool:
        return self._done

    def set_result(self, result: LLMResult) -> None:
        self._done = True
        self.queue.put_nowait(result)

    def set_exception(self, exc: BaseException) -> None:
        self._done = True
        self.queue.put_nowait(exc)

    def push(self, chunk: TokenChunk) -> None:
        if not self._done:
            self.queue.put_nowait(chunk)

    def cancel(self) -> None:
        """The client went away: stop queueing/generating this request."""
        if not self._done:
            self._done = True
            if self.cancel_cb is not None:
                self.cancel_cb()

    async def next(self) -> TokenChunk | LLMResult:
        item = await self.queue.get()
        if isinstance(item, BaseException):
            raise item
        return item


class LLMWorker(Worker):
    """A worker with a continuous batch: ``seqs`` maps request id -> Pending."""

    def __init__(self, key: str, plan: Any, spec: LLMWorkerSpec):
        super().__init__(key, plan, spec)
        self.seats = spec.seats
        self.seqs: dict[int, Pending] = {}
        self.first_at: dict[int, float] = {}
        self.tokens: dict[int, int] = {}
        self.prompt: dict[int, int] = {}
        self.heard_at = 0.0
        self.ewma_ttft_s: float | None = None


class LLMDispatcher(Dispatcher):
    """Many requests per worker, streamed replies (see the module docstring)."""

    workers: dict[str, LLMWorker]  # type: ignore[assignment]

    def submit_stream(self, req: GenRequest, timeout_s: float | None = None) -> TokenStream:
        """(Loop) Admit ``req``; its stream yields chunks, then the result or a RequestError."""
        stream = TokenStream()
        p = self._pending(req, stream, timeout_s)  # type: ignore[arg-type]
        stream.cancel_cb = lambda: self._cancel(p)
        self._admit(p)
        return stream

    # ------------------------------------------------------------------ capacity
    # service_rate: the base Dispatcher's (seats / EWMA per ready worker)
    def expected_done_s(self) -> float | None:
        """Expected time until a request arriving now gets its first token; None = unknown."""
        ready = [w for w in self.workers.values() if w.state == "ready" and not w.retiring]
        ttfts = [w.ewma_ttft_s for w in ready if w.ewma_ttft_s]
        est = self.service_rate()
        if not ttfts or est is None:
            return None
        free = sum(max(0, w.seats - len(w.seqs)) for w in ready)
        ahead = len(self.queue) + 1 - free
        return max(0, ahead) / est[0] + sum(ttfts) / len(ttfts)

    def in_flight(self) -> int:
        return sum(len(w.seqs) for w in self.workers.values())

    # ------------------------------------------------------------------ dispatch
    def _dispatch(self) -> None:
        now = time.perf_counter()
        while self.idle and self.queue:
            p = self.queue.popleft()
            if p.future.done():
                continue
            if p.deadline is not None and now > p.deadline:
                self._expire(p, now)
                continue
            w: LLMWorker = min(self.idle, key=lambda x: len(x.seqs))  # type: ignore[arg-type,assignment]
            if not w.seqs:
                w.busy_since = w.heard_at = now
            w.seqs[p.rid] = p
            if len(w.seqs) >= w.seats:
                self.idle.remove(w)
            p.dispatched = now
            p.attempts += 1
            try:
                w.proc.conn.send(("gen", p.rid, p.inputs))  # type: ignore[union-attr]
            except (OSError, ValueError) as e:
                self._crashed(w, f"send failed: {e}")

    def _cancel(self, p: Pending) -> None:
        now = time.perf_counter()
        for w in self.workers.values():
            if p.rid in w.seqs:  # generating: tell the worker, free the seat
                self._drop(w, p.rid)
                try:
                    w.proc.conn.send(("cancel", p.rid))  # type: ignore[union-attr]
                except (OSError, ValueError):
                    pass
                self._finish(p, CLIENT_CLOSED, w, message="client closed the request")
                self._freed(w)
                return
        if p.deadline is None or now <= p.deadline:  # still queued: _dispatch skips it
            self._finish(p, CLIENT_CLOSED, None, message="client closed the request")

    def _drop(self, w: LLMWorker, rid: int) -> Pending | None:
        w.first_at.pop(rid, None)
        w.tokens.pop(rid, None)
        w.prompt.pop(rid, None)
        return w.seqs.pop(rid, None)

    def _freed(self, w: LLMWorker) -> None:
        """After sequences ended: retire an empty retiring worker, else offer its free seats."""
        if w.retiring or self.closed:
            if not w.seqs and w.state == "ready":
                self._stop(w)
            return
        if w.state == "ready" and len(w.seqs) < w.seats and w not in self.idle:
            self.idle.append(w)
        self._dispatch()

    def _readable(self, w: LLMWorker) -> None:  # type: ignore[override]
        try:
            reply = w.proc.recv()  # type: ignore[union-attr]
        except Exception as e:  # WorkerCrashed: EOF
            self._crashed(w, str(e))
            return
        now = time.perf_counter()
        w.heard_at = now
        if reply[0] == "fail":
            p = self._drop(w, reply[1])
            if p is not None:
                self._finish(p, 400, w, message=f"model {w.plan.variant} rejected the request: {reply[2]}")
            self._freed(w)
            return
        if reply[0] != "step":
            return
        _, _kind, events, _compute_s, service_s = reply
        w.busy_s += service_s
        for rid, tokens, text, finish, prompt_tokens in events:
            p = w.seqs.get(rid)
            if p is None:
                continue  # cancelled meanwhile
            if prompt_tokens is not None:
                w.prompt[rid] = prompt_tokens
                w.first_at[rid] = now
                ttft = now - p.dispatched
                w.ewma_ttft_s = ttft if w.ewma_ttft_s is None else w.ewma_ttft_s + EWMA * (ttft - w.ewma_ttft_s)
            w.tokens[rid] = w.tokens.get(rid, 0) + len(tokens)
            p.future.push(TokenChunk(tokens, text, finish, prompt_tokens, now))  # type: ignore[union-attr]
            if finish is not None:
                first = w.first_at.get(rid, now)
                res = LLMResult(w.plan.slot_id, w.plan.variant, w.prompt.get(rid, 0), w.tokens.get(rid, 0), finish,
                                p.dispatched - p.enqueued, first - p.enqueued, now - p.enqueued, p.attempts)
                self._drop(w, rid)
                w.served += 1
                dt = now - p.dispatched
                w.ewma_s = dt if w.ewma_s is None else w.ewma_s + EWMA * (dt - w.ewma_s)
                self._finish(p, 200, w, res, service_s=dt)
        self._freed(w)

    # ------------------------------------------------------------------ faults and lifecycle
    def _crashed(self, w: LLMWorker, why: str) -> None:  # type: ignore[override]
        requeue = []
        for rid, p in list(w.seqs.items()):
            started = rid in w.first_at
            self._drop(w, rid)
            if not started and p.attempts < self.max_attempts:
                requeue.append(p)
            elif started:
                self._finish(p, 500, w, message=f"worker crashed while generating ({why})")
            else:
                self._finish(p, 500, w, message=f"request crashed {p.attempts} workers (last: {why})")
        self.queue.extendleft(reversed(requeue))
        w.current = None
        super()._crashed(w, why)

    def retire(self, workers: list[Worker]) -> None:
        for w in workers:
            w.retiring = True
            if w in self.idle:
                self.idle.remove(w)
            if w.state == "ready" and not w.seqs:  # type: ignore[attr-defined]
                self._stop(w)

    def _tick(self) -> None:
        limit = self.request_timeout_s
        if limit is not None:
            now = time.perf_counter()
            for w in list(self.workers.values()):
                if w.seqs and w.state == "ready" and now - w.heard_at > limit:
                    self._crashed(w, f"no token within {limit:g} s")
        super()._tick()


class LLMWorkerPool(WorkerPool):
    """:class:`WorkerPool` of LLM workers: ``max_batch`` seats per whole GPU, ``engine`` tiny
    (CPU stand-in) or vllm; ``input_scale`` scales the tiny model's size."""

    dispatcher_class = LLMDispatcher
    worker_class = LLMWorker
    spec_class = LLMWorkerSpec

    def __init__(self, *args: Any, max_batch: int = 8, engine: str = "tiny", model_path: str | None = None,
                 **kwargs: Any):
        if max_batch < 1:
            raise ConfigError(f"max_batch must be >= 1, got {max_batch}")
        if engine not in ENGINES:
            raise ConfigError(f"unknown LLM engine {engine!r} (known: {', '.join(ENGINES)})")
        super().__init__(*args, **kwargs)
        self.spec_options = {"max_batch": max_batch, "engine": engine, "model_path": model_path}

    def generate(self, req: GenRequest, timeout_s: float | None = None) -> TokenStream:
        """(On :attr:`loop`) start a generation; see :class:`TokenStream`."""
        d: LLMDispatcher = self._d  # type: ignore[assignment]
        return d.submit_stream(req, timeout_s)

    def submit(self, inputs: Any, timeout_s: float | None = None) -> Any:
        raise RequestError(400, "an LLM pool takes generations (generate), not tensors")

    def seats(self) -> int:
        return sum(w.seats for w in self._d.workers.values() if w.state == "ready")  # type: ignore[attr-defined]


def retry_after(e: RequestError) -> int | None:
    return None if e.retry_after_s is None else max(1, math.ceil(e.retry_after_s))


__all__ = ["LLMDispatcher", "LLMResult", "LLMWorkerPool", "TokenChunk", "TokenStream", "retry_after"]
