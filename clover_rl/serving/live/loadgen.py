"""Open-loop load generator speaking KServe v2 over HTTP (async httpx).

Arrivals are Poisson at ``rate_rps`` or follow a piecewise-constant rate trace (thinning); each
request is sent at its scheduled time whether or not earlier ones were answered (open loop), and
its latency is measured from the *scheduled* time, so client-side queueing is not hidden
(no coordinated omission). Inputs are synthetic tensors of the service's request shape, sent
with the binary tensor extension (as ``tritonclient`` does).
"""
from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from clover_rl.errors import ConfigError
from clover_rl.services import ServiceSpec
from clover_rl.serving.live.codec import HEADER, encode_request
from clover_rl.serving.live.models import synthetic_inputs
from clover_rl.workload.arrivals import nonhomogeneous_arrivals, poisson_arrivals
from clover_rl.workload.workload import Workload

TIMEOUT = 0  # status recorded for a client-side timeout
CONNECT_ERROR = -1  # status recorded when the server could not be reached


@dataclass(frozen=True)
class LoadResult:
    sent: int
    answered: int  # HTTP 200
    errors: int  # everything else, timeouts and unanswered included
    status_counts: dict[int, int]
    latencies_ms: np.ndarray  # answered requests, from scheduled send time
    duration_s: float  # first arrival to last answer
    offered_s: float  # the arrival window
    variants: dict[str, int] = field(default_factory=dict)  # answered, by serving variant
    service_ms: np.ndarray = field(default_factory=lambda: np.zeros(0))  # worker-reported
    sent_s: np.ndarray = field(default_factory=lambda: np.zeros(0))  # answered: scheduled send, s from start

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms.size else float("nan")

    @property
    def p50_ms(self) -> float:
        return self.percentile(50)

    @property
    def p95_ms(self) -> float:
        return self.percentile(95)

    @property
    def p99_ms(self) -> float:
        return self.percentile(99)

    @property
    def mean_ms(self) -> float:
        return float(self.latencies_ms.mean()) if self.latencies_ms.size else float("nan")

    def summary(self) -> str:
        return (f"sent {self.sent}, answered {self.answered}, errors {self.errors} "
                f"(by status {dict(sorted(self.status_counts.items()))}); latency ms p50 {self.p50_ms:.2f} "
                f"p95 {self.p95_ms:.2f} p99 {self.p99_ms:.2f} mean {self.mean_ms:.2f}")


def trace_arrivals(trace: Sequence[tuple[float, float]], seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Non-homogeneous Poisson arrivals for a piecewise-constant ``[(t_start_s, rate_rps), ...]``."""
    if not trace:
        raise ConfigError("rate trace is empty")
    ts = np.asarray([t for t, _ in trace], dtype=float)
    rs = np.asarray([r for _, r in trace], dtype=float)
    if ts[0] != 0 or np.any(np.diff(ts) <= 0) or np.any(rs < 0):
        raise ConfigError("rate trace must start at t=0, increase in time and have non-negative rates")
    return nonhomogeneous_arrivals(lambda t: rs[np.searchsorted(ts, t, side="right") - 1], seconds, rng,
                                   max_rate=float(rs.max()))


def build_bodies(service: ServiceSpec, seed: int = 0, n: int = 4, image_size: int | None = None,
                 binary: bool = True) -> list[tuple[bytes, dict[str, str]]]:
    """A few distinct synthetic request bodies (cycled by the generator) and their headers."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        body, hl = encode_request(synthetic_inputs(service, rng, image_size), binary=binary, binary_output=binary)
        headers = {"Content-Type": "application/octet-stream" if hl is not None else "application/json"}
        if hl is not None:
            headers[HEADER] = str(hl)
        out.append((body, headers))
    return out


def _response_params(resp: object) -> dict:
    content = resp.content  # type: ignore[attr-defined]
    hl = resp.headers.get(HEADER)  # type: ignore[attr-defined]
    try:
        head = json.loads(content[: int(hl)] if hl else content)
        return head.get("parameters") or {}
    except (ValueError, TypeError):
        return {}


async def run_load_async(
    url: str,
    service: ServiceSpec,
    seconds: float,
    rate_rps: float | None = None,
    *,
    trace: Sequence[tuple[float, float]] | Workload | None = None,
    seed: int = 0,
    timeout_s: float = 60.0,
    drain_timeout_s: float | None = None,
    image_size: int | None = None,
    binary: bool = True,
    model: str | None = None,
) -> LoadResult:
    """Offer load for ``seconds``, then wait (up to ``drain_timeout_s``) for the answers."""
    import httpx

    rng = np.random.default_rng(seed)
    if isinstance(trace, Workload):  # a scenario workload: its arrivals from t = 0
        arrivals = trace.arrivals(0.0, seconds, rng)
    elif trace is not None:
        arrivals = trace_arrivals(trace, seconds, rng)
    elif rate_rps is not None:
        arrivals = poisson_arrivals(rate_rps, seconds, rng)
    else:
        raise ConfigError("give rate_rps or a rate trace")
    bodies = build_bodies(service, seed, image_size=image_size, binary=binary)
    endpoint = f"{url.rstrip('/')}/v2/models/{model or service.name}/infer"
    statuses: list[int] = []
    lat: list[float] = []
    lat_at: list[float] = []
    svc_ms: list[float] = []
    variants: Counter[str] = Counter()
    last_done = [0.0]
    limits = httpx.Limits(max_connections=1024, max_keepalive_connections=256)
    async with httpx.AsyncClient(limits=limits, timeout=timeout_s) as client:

        async def one(i: int, t_sched: float) -> None:
            body, headers = bodies[i % len(bodies)]
            try:
                r = await client.post(endpoint, content=body, headers=headers)
                status = r.status_code
            except httpx.TimeoutException:
                status = TIMEOUT
            except httpx.TransportError:
                status = CONNECT_ERROR
            now = time.perf_counter()
            last_done[0] = max(last_done[0], now)
            statuses.append(status)
            if status == 200:
                lat.append((now - t_sched) * 1000.0)
                lat_at.append(t_sched - t0)
                p = _response_params(r)
                if "variant" in p:
                    variants[str(p["variant"])] += 1
                if "service_ms" in p:
                    svc_ms.append(float(p["service_ms"]))

        t0 = time.perf_counter()
        tasks = []
        for i, a in enumerate(arrivals):
            delay = t0 + a - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i, t0 + a)))
        rest = t0 + seconds - time.perf_counter()
        if rest > 0:
            await asyncio.sleep(rest)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=drain_timeout_s if drain_timeout_s is not None else timeout_s)
            for t in pending:
                t.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
    unanswered = len(arrivals) - len(statuses)
    counts = Counter(statuses)
    if unanswered:
        counts[TIMEOUT] += unanswered
    answered = counts.get(200, 0)
    end = max(last_done[0], t0 + seconds)
    return LoadResult(
        sent=len(arrivals), answered=answered, errors=len(arrivals) - answered, status_counts=dict(counts),
        latencies_ms=np.asarray(lat), duration_s=end - t0, offered_s=seconds, variants=dict(variants),
        service_ms=np.asarray(svc_ms), sent_s=np.asarray(lat_at),
    )


def run_load(url: str, service: ServiceSpec, seconds: float, rate_rps: float | None = None, **kwargs: object) -> LoadResult:
    """Blocking wrapper of :func:`run_load_async` (its own event loop)."""
    return asyncio.run(run_load_async(url, service, seconds, rate_rps, **kwargs))  # type: ignore[arg-type]


def _loadgen_main(conn: Any) -> None:
    """Child process: run load requests from the pipe until told to stop."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        url, service, seconds, rate, kwargs = msg
        try:
            conn.send(("ok", run_load(url, service, seconds, rate, **kwargs)))
        except Exception as e:
            conn.send(("error", f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"))


class LoadProcess:
    """The load generator in its own process, so the client's work does not compete with the
    in-process front end for the GIL (which would inflate the latencies being measured)."""

    def __init__(self) -> None:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_loadgen_main, args=(child,), daemon=True, name="clover-loadgen")
        self.proc.start()
        child.close()

    def run(self, url: str, service: ServiceSpec, seconds: float, rate_rps: float | None = None,
            **kwargs: Any) -> LoadResult:
        from multiprocessing.connection import wait

        from clover_rl.errors import BackendError

        self.conn.send((url, service, seconds, rate_rps, kwargs))
        limit = seconds + float(kwargs.get("drain_timeout_s") or kwargs.get("timeout_s") or 60.0) + 120.0
        ready = wait([self.conn, self.proc.sentinel], limit)
        if self.conn not in ready:
            self.close()
            raise BackendError(f"load generator process {'hung' if not ready else 'died'} during a {seconds:g} s run")
        status, payload = self.conn.recv()
        if status != "ok":
            raise BackendError(f"load generator failed: {payload}")
        return payload

    def close(self) -> None:
        try:
            self.conn.send(None)
        except (OSError, ValueError):
            pass
        self.proc.join(5.0)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(2.0)
        self.conn.close()
