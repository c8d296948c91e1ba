"""Steady background load for demonstrations and fault-injection runs (``deploy --load RPS``).

Unlike ``serving.live.loadgen.run_load`` (one measured window, then it waits for every answer),
this keeps offering open-loop Poisson arrivals until stopped, so a deployment sees traffic
across control intervals, reconfigurations and faults. It only counts: what the controller
measures comes from the service itself. ``lost`` is a request that got no HTTP answer at all
(connection refused or reset, client timeout) -- the figure a fault-tolerant service keeps at 0.
"""
from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from clover_rl.errors import ConfigError
from clover_rl.services import ServiceSpec
from clover_rl.workload.workload import ConstantRate, Workload


@dataclass
class LoadTotals:
    sent: int = 0
    answered: int = 0  # any HTTP status
    ok: int = 0  # HTTP 200
    status: Counter = field(default_factory=Counter)  # HTTP status -> count
    lost: int = 0  # no HTTP answer
    lost_reasons: Counter = field(default_factory=Counter)

    @property
    def in_flight(self) -> int:
        return self.sent - self.answered - self.lost

    def line(self) -> str:
        errs = {k: v for k, v in sorted(self.status.items()) if k != 200}
        return (f"sent={self.sent} answered={self.answered} lost={self.lost}"
                + (f" (ok {self.ok}, explicit errors {dict(errs)})" if errs else f" (ok {self.ok})"))


class SteadyLoad:
    """Arrivals of a workload (Poisson at ``rate_rps``, or any :class:`Workload`: a diurnal
    cycle, a rate trace, a recorded per-request trace) against a KServe v2 endpoint, in a
    background thread; the workload's ``t = 0`` is when the load starts."""

    CHUNK_S = 60.0  # arrivals are drawn a minute at a time

    def __init__(self, url: str, service: ServiceSpec, rate_rps: float | Workload, *, seed: int = 0,
                 timeout_s: float = 180.0, image_size: int | None = None) -> None:
        if isinstance(rate_rps, Workload):
            self.workload: Workload = rate_rps
        elif not rate_rps > 0:
            raise ConfigError(f"--load must be a positive request rate, got {rate_rps}")
        else:
            self.workload = ConstantRate(float(rate_rps))
        self.url = url.rstrip("/")
        self.service = service
        self.rate = self.workload.nominal_rate()
        self.seed = seed
        self.timeout_s = timeout_s
        self.image_size = image_size
        self.totals = LoadTotals()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._drain_s = timeout_s

    def start(self) -> SteadyLoad:
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), name="clover-load", daemon=True)
        self._thread.start()
        return self

    def snapshot(self) -> LoadTotals:
        with self._lock:
            return LoadTotals(self.totals.sent, self.totals.answered, self.totals.ok, Counter(self.totals.status),
                              self.totals.lost, Counter(self.totals.lost_reasons))

    def stop(self, drain_timeout_s: float | None = None) -> LoadTotals:
        """Stop sending, wait for the answers still due, return the totals."""
        if drain_timeout_s is not None:
            self._drain_s = drain_timeout_s
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self._drain_s + 10)
        return self.snapshot()

    def requests(self) -> tuple[str, list[tuple[bytes, dict[str, str]]]]:
        """(endpoint, request bodies with their headers), cycled through by the arrivals (LLM
        services override it: OpenAI completions)."""
        from clover_rl.serving.live.loadgen import build_bodies

        bodies = build_bodies(self.service, self.seed, image_size=self.image_size)
        return f"{self.url}/v2/models/{self.service.name}/infer", bodies

    async def _main(self) -> None:
        import httpx

        endpoint, bodies = self.requests()
        rng = np.random.default_rng(self.seed)
        tasks: set[asyncio.Task] = set()
        limits = httpx.Limits(max_connections=512, max_keepalive_connections=64)
        async with httpx.AsyncClient(limits=limits, timeout=self.timeout_s) as client:

            async def one(i: int) -> None:
                body, headers = bodies[i % len(bodies)]
                try:
                    r = await client.post(endpoint, content=body, headers=headers)
                except httpx.TimeoutException:
                    self._lost("client timeout")
                    return
                except httpx.TransportError as e:
                    self._lost(type(e).__name__)
                    return
                with self._lock:
                    self.totals.answered += 1
                    self.totals.status[r.status_code] += 1
                    self.totals.ok += int(r.status_code == 200)

            t_start = time.perf_counter()
            chunk_t0, pending_arrivals = 0.0, np.empty(0)
            i = 0
            while not self._stop.is_set():
                if pending_arrivals.size == 0:  # next minute's arrivals (a quiet minute: wait it out)
                    pending_arrivals = chunk_t0 + self.workload.arrivals(chunk_t0, self.CHUNK_S, rng)
                    chunk_t0 += self.CHUNK_S
                    if pending_arrivals.size == 0:
                        while not self._stop.is_set() and (d := t_start + chunk_t0 - time.perf_counter()) > 0:
                            await asyncio.sleep(min(d, 0.25))
                        continue
                t_next, pending_arrivals = t_start + float(pending_arrivals[0]), pending_arrivals[1:]
                while not self._stop.is_set() and (delay := t_next - time.perf_counter()) > 0:
                    await asyncio.sleep(min(delay, 0.25))  # short naps: stop promptly
                if self._stop.is_set():
                    break
                with self._lock:
                    self.totals.sent += 1
                t = asyncio.create_task(one(i))
                tasks.add(t)
                t.add_done_callback(tasks.discard)
                i += 1
            if tasks:
                _, pending = await asyncio.wait(set(tasks), timeout=self._drain_s)
                for t in pending:
                    t.cancel()
                if pending:
                    await asyncio.gather(*pending, return_exceptions=True)
                    for _ in pending:
                        self._lost("unanswered at stop")

    def _lost(self, why: str) -> None:
        with self._lock:
            self.totals.lost += 1
            self.totals.lost_reasons[why] += 1
