"""Overload: admission control (bounded queue, deadlines, refusals with Retry-After), requests
whose deadline passed never reaching a worker, SIGTERM-style drain, and what the controller's
SLA guard sees of refusals."""
from __future__ import annotations

import time

import httpx
import numpy as np
import pytest

from clover_rl.controller.guard import SlaGuard
from clover_rl.controller.plane import LivePlane
from clover_rl.mig.config import parse_configuration
from clover_rl.serving.live.backend import LiveBackend
from clover_rl.serving.live.loadgen import LoadProcess
from clover_rl.serving.live.pool import RequestError, WorkerPool
from tests.support.live import GPU, noop_service

pytestmark = [pytest.mark.live, pytest.mark.timeout(120)]

X = {"INPUT__0": np.zeros((1, 4, 4, 3), np.uint8)}


def cfg(text: str, svc):
    return parse_configuration(text, GPU, svc.variant_names)


def _outcome(f, timeout_s: float) -> tuple[int, RequestError | None]:
    try:
        f.result(timeout_s)
        return 200, None
    except RequestError as e:
        return e.status, e


def test_deadlines_refuse_at_once_and_expired_requests_never_reach_a_worker() -> None:
    svc = noop_service(delay_ms=100)  # one 7g worker: ~10 req/s
    pool = WorkerPool(svc, GPU, deadline_s=0.35)
    try:
        assert pool.reconfigure(cfg("7g:b1", svc)).ok
        pool.infer(X, 10)  # the service rate is known from here on
        pool.drain_records()
        t0 = time.perf_counter()
        futs = [pool.submit(X) for _ in range(12)]
        late = pool.submit(X, timeout_s=5.0)  # a client deadline beyond the default is honoured
        outcomes = [_outcome(f, 5) for f in futs]
        assert _outcome(late, 10)[0] == 200
        statuses = [s for s, _ in outcomes]
        assert set(statuses) == {200, 503} and 2 <= statuses.count(200) <= 5
        assert time.perf_counter() - t0 < 0.35 + 0.2 + 1.0  # everyone answered within the deadline (+ the late one)
        refused = [e for s, e in outcomes if s == 503]
        assert all(e.retry_after_s and e.retry_after_s >= 1 for e in refused if "overloaded" in str(e))
        adm = pool.admission()
        assert adm["admitted"] + adm["rejected"] == 13 + 1 and adm["rejected"] >= 1
        recs = pool.drain_records()
        served = [r for r in recs if r.slot_id is not None]
        assert len(served) == statuses.count(200) + 1  # no worker time spent on refused/expired requests
        assert all(r.status == 503 and r.slot_id is None for r in recs if r.status != 200)
        # a client deadline that has passed while queued: answered 503 at once, never served
        pool.deadline_s = None
        blockers = [pool.submit(X) for _ in range(3)]
        short = pool.submit(X, timeout_s=0.05)
        s, e = _outcome(short, 2)
        assert s == 503 and ("deadline passed" in str(e) or "past the deadline" in str(e))
        assert all(_outcome(f, 5)[0] == 200 for f in blockers)
    finally:
        pool.close()


def test_bounded_queue_and_drain_answers_everything_accepted() -> None:
    svc = noop_service(delay_ms=60)
    pool = WorkerPool(svc, GPU, max_queue=3)
    try:
        assert pool.reconfigure(cfg("7g:b1", svc)).ok
        futs = [pool.submit(X) for _ in range(8)]  # 1 in flight + 3 queued; the rest refused
        time.sleep(0.02)
        left = pool.drain(5.0)  # SIGTERM: stop admitting, finish what was accepted
        assert left == 0 and pool.draining
        outcomes = [_outcome(f, 1) for f in futs]
        assert [s for s, _ in outcomes].count(200) == 4
        assert all("queued (the limit)" in str(e) for s, e in outcomes if s == 503)
        s, e = _outcome(pool.submit(X), 1)
        assert s == 503 and "draining" in str(e)
    finally:
        pool.close()


def test_three_times_capacity_every_request_answered_within_deadline_plus_1s() -> None:
    svc = noop_service(delay_ms=100)  # 7g:b1 -> one worker, ~10 req/s
    deadline = 0.5
    load = LoadProcess()  # the client in its own process, as clients are
    with LiveBackend(svc, GPU, deadline_s=deadline) as b:
        assert b.apply(cfg("7g:b1", svc)).ok
        plane = LivePlane(b)
        try:
            res = load.run(b.url, svc, 10.0, 30.0, seed=1, timeout_s=deadline + 1.0, image_size=8)
        finally:
            load.close()
        window = plane.measure_window()
        counts = res.status_counts
        assert set(counts) <= {200, 503}, counts  # no client timeout (deadline + 1 s), no connection error
        assert counts.get(200, 0) > 40 and counts.get(503, 0) > 100, counts
        assert res.latencies_ms.max() < (deadline + 1.0) * 1000
        # the refused requests are SLA failures for the controller, not a quiet interval
        assert window.dropped >= counts[503] and window.served == counts[200]
        guard = SlaGuard(sla_ms=1000.0, k=1)
        assert guard.classify(window)[0] is True and guard.observe(window) is not None
        text = httpx.get(f"{b.url}/metrics").text
        assert 'clover_admission_total{outcome="rejected"}' in text
        r = httpx.post(f"{b.url}/v2/models/efficientnet/infer", headers={"X-Request-Timeout-Ms": "0.001"},
                       json={"inputs": [{"name": "INPUT__0", "shape": [1, 1, 1, 3], "datatype": "UINT8",
                                         "data": [0, 0, 0]}]})
        assert r.status_code == 503 and "deadline" in r.json()["error"]
        assert int(r.headers["retry-after"]) >= 1
