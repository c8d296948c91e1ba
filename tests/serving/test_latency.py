"""One definition per latency figure, named on every interval's metrics."""
from __future__ import annotations

import pytest

from clover_rl.serving.latency import KINDS, percentiles_ms
from clover_rl.serving.metrics import IntervalMetrics, merge_metrics, scale_metrics


def test_percentiles_are_exact_in_ms():
    p50, p95, p99, mean = percentiles_ms([i / 1000.0 for i in range(1, 101)])  # 1..100 ms
    assert (p50, p95, p99, mean) == pytest.approx((50.5, 95.05, 99.01, 50.5))
    assert percentiles_ms([]) == (0.0, 0.0, 0.0, 0.0)


def test_metrics_name_their_latency_and_keep_it_through_merge_and_scale():
    m = IntervalMetrics(60.0, 10, 10, 0, 5.0, 9.0, 9.5, 6.0, 1 / 6, 100.0, 80.0, latency="pool")
    assert m.latency in KINDS and IntervalMetrics.nothing_served(1.0, 0, timeout_s=1.0).latency == "server"
    assert merge_metrics([m, m]).latency == "pool" and scale_metrics(m, 30.0).latency == "pool"
    assert m.to_dict()["latency"] == "pool"
