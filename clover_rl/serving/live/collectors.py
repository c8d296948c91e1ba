"""The front end's Prometheus collectors: :class:`PoolCollector` (the worker pool at scrape time)
and :class:`RequestMetrics`, the request counters (``clover_requests_total{model,status}``) and
latency histogram (``clover_request_latency_seconds{model}``), kept as plain numbers on the
serving loop and rendered at scrape time.

Why not ``prometheus_client.Counter``/``Histogram``: their updates take a lock per value and walk
the buckets in Python -- four calls and three locks per answered request, a few percent of the
front end's CPU per request with a no-op model. Here an answer is one ``bisect`` and two
additions. The exposition is the same as those classes' (names, labels, buckets), less the histogram's
``_created`` series.
Updates come from one thread (the serving loop); a scrape from another thread may see an answer
counted in the buckets but not yet in the sum (the next scrape agrees).
"""
from __future__ import annotations

import math
import time
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
)

from clover_rl.serving.live.energy import EnergyMeter

if TYPE_CHECKING:  # the pool imports workers and numpy; the type is enough here
    from clover_rl.serving.live.pool import WorkerPool


def _le(bound: float) -> str:
    """A bucket bound as prometheus_client writes it (``floatToGoString``)."""
    from prometheus_client.utils import floatToGoString

    return floatToGoString(bound)


class RequestMetrics:
    """A Prometheus collector (``registry.register(...)``) for one model's infer requests."""

    def __init__(self, model: str, buckets: Sequence[float]) -> None:
        self.model = model
        self.bounds = tuple(sorted(float(b) for b in buckets if b != math.inf)) + (math.inf,)
        self.hist = [0] * len(self.bounds)  # answered requests per bucket (not cumulative)
        self.sum_s = 0.0
        self.created = time.time()
        self.other: dict[tuple[str, str], list[float]] = {}  # (model, status) -> [count, created]

    def answered(self, latency_s: float) -> None:
        """One 200 answer after ``latency_s`` seconds (counted in ``status="200"`` too)."""
        self.hist[bisect_left(self.bounds, latency_s)] += 1
        self.sum_s += latency_s

    def count(self, model: str, status: int | str) -> None:
        """One request that ended with ``status`` without a timed answer (refused, bad, unknown)."""
        c = self.other.get((model, str(status)))
        if c is None:
            self.other[model, str(status)] = [1, time.time()]
        else:
            c[0] += 1

    def collect(self) -> Iterator[Any]:
        hist, sum_s = list(self.hist), self.sum_s
        n_ok = sum(hist)
        total = CounterMetricFamily("clover_requests", "Inference requests by final status", labels=["model", "status"])
        counts = dict(self.other)
        ok = counts.pop((self.model, "200"), None)
        if n_ok or ok is not None:
            total.add_metric([self.model, "200"], n_ok + (ok[0] if ok else 0), created=self.created)
        for (model, status), (n, created) in sorted(counts.items()):
            total.add_metric([model, status], n, created=created)
        yield total
        latency = HistogramMetricFamily("clover_request_latency_seconds", "Front-end latency of answered requests",
                                        labels=["model"])
        acc, buckets = 0, []
        for bound, n in zip(self.bounds, hist):
            acc += n
            buckets.append((_le(bound), acc))
        latency.add_metric([self.model], buckets, sum_s)
        yield latency


class PoolCollector:
    """Scrape-time view of the pool: queue, per-slice utilisation, configuration, energy."""

    def __init__(self, pool: WorkerPool, meter: EnergyMeter | None, device: str):
        self.pool = pool
        self.meter = meter
        self.device = device
        self._prev: dict[str, tuple[float, float]] = {}  # slot -> (time, busy_s) at last scrape

    def collect(self) -> Any:
        snap = self.pool.snapshot()
        yield GaugeMetricFamily("clover_queue_length", "Requests waiting in the central queue", value=snap.queue_length)
        yield GaugeMetricFamily("clover_in_flight_requests", "Requests being served by workers", value=snap.in_flight)
        adm = CounterMetricFamily("clover_admission", "Requests admitted to the queue, refused on arrival "
                                  "(overload, draining), or expired in the queue (deadline passed)", labels=["outcome"])
        for outcome, n in self.pool.admission().items():
            adm.add_metric([outcome], n)
        yield adm
        states = GaugeMetricFamily("clover_workers", "Worker processes by state", labels=["state"])
        for st in ("starting", "ready", "restarting", "retiring", "failed"):
            states.add_metric([st], sum(s.state == st for s in snap.slots))
        yield states
        util = GaugeMetricFamily("clover_slice_utilization",
                                 "Busy share of each slice since the previous scrape", labels=["slice", "variant"])
        busy = CounterMetricFamily("clover_slice_busy_seconds", "Time each slice's worker spent serving",
                                   labels=["slice", "variant"])
        served = CounterMetricFamily("clover_slice_requests", "Requests served per slice", labels=["slice", "variant"])
        restarts = CounterMetricFamily("clover_slice_restarts", "Worker restarts after a crash", labels=["slice", "variant"])
        prev = self._prev
        self._prev = {}
        for s in snap.slots:
            key = f"{s.slot_id}|{s.variant}"
            t0, b0 = prev.get(key, (snap.time - s.age_s, 0.0))
            dt = max(1e-6, snap.time - t0)
            util.add_metric([s.slot_id, s.variant], min(1.0, max(0.0, (s.busy_s - b0) / dt)))
            self._prev[key] = (snap.time, s.busy_s)
            busy.add_metric([s.slot_id, s.variant], s.busy_s)
            served.add_metric([s.slot_id, s.variant], s.served)
            restarts.add_metric([s.slot_id, s.variant], s.restarts)
        yield util
        yield busy
        yield served
        yield restarts
        cfg = snap.configuration
        info = InfoMetricFamily("clover_configuration", "The configuration being served")
        info.add_metric([], {
            "service": self.pool.service.name, "gpu": self.pool.gpu.name, "n_gpus": str(self.pool.n_gpus),
            "device": self.device, "configuration": cfg.label() if cfg else "",
        })
        yield info
        if self.meter is not None:
            e = CounterMetricFamily("clover_energy_joules", "Energy of all GPUs (or the CPU host) since start",
                                    labels=["source", "estimated"])
            e.add_metric([self.meter.source, str(self.meter.estimated).lower()], self.meter.read_joules())
            yield e


__all__ = ["PoolCollector", "RequestMetrics"]
