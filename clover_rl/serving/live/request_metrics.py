"""The front end's request counters (``clover_requests_total{model,status}``) and latency
histogram (``clover_request_latency_seconds{model}``), kept as plain numbers on the serving loop
and rendered for Prometheus at scrape time.

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
from typing import Any

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily


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


__all__ = ["RequestMetrics"]
