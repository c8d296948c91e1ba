"""Interval metrics of the live LLM plane from front-end records (no processes): tokens as the unit,
the binding TTFT/TPOT latency, failures at the timeout, an interval with nothing served."""
from __future__ import annotations

import pytest

from clover_rl.llm.catalog import load_llm_service
from clover_rl.serving.live.llm_backend import llm_interval_metrics
from clover_rl.serving.live.llm_server import LLMRecord

SVC = load_llm_service("llm")
A, B = "llama-3.2-1b-int4", "llama-3.1-8b-bf16"


def _rec(status: int, ttft_ms: float, tpot_ms: float, out: int, variant: str | None, asked: int = 0) -> LLMRecord:
    return LLMRecord(status, 0.0, ttft_ms / 1000, tpot_ms / 1000, 10, out, variant, asked or out)


def test_tokens_are_the_unit_and_latency_binds_ttft_or_tpot() -> None:
    recs = [_rec(200, 100, 10, 30, A, asked=64), _rec(200, 200, 50, 10, B),
            _rec(503, float("nan"), float("nan"), 0, None, asked=20), _rec(499, 50, 5, 3, A)]
    m = llm_interval_metrics(recs, wall_s=2.0, energy_j=50.0, service=SVC, timeout_s=30.0,
                             estimated=True, ttft_sla_ms=1000, tpot_sla_ms=100)
    assert (m.arrived, m.served, m.dropped) == (60, 40, 20) and m.throughput_rps == 20.0
    assert m.variant_share == {A: 0.75, B: 0.25}
    assert m.accuracy == pytest.approx(0.75 * SVC.variant(A).quality + 0.25 * SVC.variant(B).quality)
    # the refused request waits the timeout in the TTFT distribution; TPOT 50 ms x (1000/100) = 500 ms
    assert m.p99_ms > 20_000 and m.p50_ms == pytest.approx(max(200.0, 30 * 10.0))
    assert m.extra["requests_served"] == 2 and m.extra["tpot_p50_ms"] == pytest.approx(30.0)
    assert m.extra["ttft_p50_ms"] == pytest.approx(200.0)


def test_nothing_served_is_the_shared_outage_interval() -> None:
    m = llm_interval_metrics([_rec(503, float("nan"), float("nan"), 0, None, asked=12)], wall_s=1.0,
                             energy_j=3.0, service=SVC, timeout_s=30.0, estimated=True)
    assert (m.served, m.dropped, m.p95_ms) == (0, 12, 30_000.0)
