"""Worker pool: FIFO dispatch, crash -> restart with no lost request, reconfiguration under
load with no lost request (CPU make-before-break and simulated-NVML MIG break-before-make),
explicit 503s when no worker can serve."""
from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pytest

from clover_rl.mig.config import parse_configuration
from clover_rl.serving.live.placement import MigPlacement
from clover_rl.serving.live.pool import RequestError, WorkerPool
from clover_rl.serving.live.worker import MIN_SLEEP_S, Throttle, throttle_sleep_s
from tests.support import fake_nvml
from tests.support.live import GPU, noop_service, sum_service

pytestmark = [pytest.mark.live, pytest.mark.timeout(90)]

X = {"INPUT__0": np.zeros((8, 4, 4, 3), np.uint8)}


def cfg(text: str, svc):
    return parse_configuration(text, GPU, svc.variant_names)


def test_throttle_rule() -> None:
    assert throttle_sleep_s(0.01, 7) == 0.0
    assert throttle_sleep_s(0.01, 1) == pytest.approx(0.06)  # 1g: 7x the host's time
    assert throttle_sleep_s(0.01, 3) == pytest.approx(0.01 * (7 / 3 - 1))


def test_throttle_carries_short_sleeps_and_keeps_the_duty_cycle(monkeypatch: pytest.MonkeyPatch) -> None:
    import clover_rl.serving.live.worker as worker

    now = [0.0]
    sleeps: list[float] = []

    def sleep(s: float) -> None:  # a sleep that overshoots by 60 us, like the kernel's timer slack
        sleeps.append(s)
        now[0] += s + 60e-6

    monkeypatch.setattr(worker.time, "sleep", sleep)
    monkeypatch.setattr(worker.time, "perf_counter", lambda: now[0])
    t = Throttle(3)
    for _ in range(1000):  # 20 us of compute per request: owed 26.7 us of sleep each time
        t.after(20e-6)
        now[0] += 20e-6
    owed = 1000 * throttle_sleep_s(20e-6, 3)
    assert len(sleeps) < 1000 / 10 and min(sleeps) >= MIN_SLEEP_S  # no micro-sleeps
    slept = sum(sleeps) + 60e-6 * len(sleeps)
    assert abs(slept - owed) <= MIN_SLEEP_S  # the overshoot is paid back: c/C speed over time
    t7 = Throttle(7)
    t7.after(1.0)
    assert len(sleeps) < 100 and t7.debt_s == 0.0  # a whole GPU never sleeps


def test_fifo_dispatch_and_throttled_service_time() -> None:
    svc = noop_service(delay_ms=10)
    pool = WorkerPool(svc, GPU)
    try:
        rep = pool.reconfigure(cfg("1g:b1", svc))
        assert rep.ok and rep.slices_changed == 1 and set(rep.downtime_s) == {"gpu0/1g.5gb@0"}
        futs = [pool.submit(X) for _ in range(5)]
        done_order: list[int] = []
        for i, f in enumerate(futs):
            f.add_done_callback(lambda _f, i=i: done_order.append(i))
        results = [f.result(10) for f in futs]
        assert done_order == list(range(5))  # one worker, one queue: first in, first out
        assert all(r.slot_id == "gpu0/1g.5gb@0" and r.variant == "b1" for r in results)
        assert results[0].service_s >= 0.010 * 7 * 0.9  # 1g slice: 1/7 of the host's speed
        assert [r.status for r in pool.drain_records()] == [200] * 5
    finally:
        pool.close()


def test_large_inputs_reach_the_worker_intact() -> None:
    svc = sum_service()  # large numeric inputs travel through a shared mapping, small ones pickled
    pool = WorkerPool(svc, GPU)
    try:
        assert pool.reconfigure(cfg("7g:b1", svc)).ok
        rng = np.random.default_rng(0)
        for shape in [(8, 4, 4, 3), (8, 64, 64, 3), (2, 300, 300, 3), (8, 224, 224, 3), (8, 64, 64, 3)]:
            x = rng.integers(0, 256, shape, dtype=np.uint8)
            got = pool.infer({"INPUT__0": x}, 30).outputs["OUTPUT__0"][:, 0]
            np.testing.assert_allclose(got, x.reshape(shape[0], -1).sum(1), rtol=1e-6)
    finally:
        pool.close()


def test_worker_crash_restarts_and_loses_no_request() -> None:
    svc = noop_service(delay_ms=300)
    pool = WorkerPool(svc, GPU)
    try:
        assert pool.reconfigure(cfg("4g:b1,3g:b3", svc)).ok
        futs = [pool.submit(X) for _ in range(6)]
        time.sleep(0.15)  # both workers are now busy with a request each
        victim = next(s for s in pool.snapshot().slots if s.slot_id.startswith("gpu0/4g"))
        os.kill(victim.pid, signal.SIGKILL)
        results = [f.result(30) for f in futs]
        assert len(results) == 6
        assert any(r.attempts == 2 for r in results)  # the in-flight request was retried
        after = next(s for s in pool.snapshot().slots if s.slot_id == victim.slot_id)
        assert after.restarts == 1 and after.pid != victim.pid and after.state == "ready"
        assert pool.infer(X, 10).outputs["OUTPUT__0"].shape == (8, 1)
    finally:
        pool.close()


def _steady_load(pool: WorkerPool, stop: threading.Event, futs: list, rate: float) -> None:
    while not stop.is_set():
        futs.append(pool.submit(X))
        time.sleep(1.0 / rate)


def test_reconfiguration_under_load_loses_no_request() -> None:
    svc = noop_service(delay_ms=5)
    pool = WorkerPool(svc, GPU, max_queue_wait_s=None)
    futs: list = []
    stop = threading.Event()
    try:
        assert pool.reconfigure(cfg("4g:b1,3g:b3", svc)).ok
        t = threading.Thread(target=_steady_load, args=(pool, stop, futs, 100.0))
        t.start()
        time.sleep(0.3)
        pid_3g = next(s.pid for s in pool.snapshot().slots if s.slot_id == "gpu0/3g.20gb@4")
        rep = pool.reconfigure(cfg("4g:b5,3g:b3", svc))  # only the 4g slice changes
        assert rep.ok and rep.slices_changed == 1 and rep.downtime_s == {"gpu0/4g.20gb@0": 0.0}
        assert next(s.pid for s in pool.snapshot().slots if s.slot_id == "gpu0/3g.20gb@4") == pid_3g
        rep = pool.reconfigure(cfg("2g:b1,2g:b1,3g:b7", svc))
        assert rep.ok and pool.configuration.label() == "3g:b7,2g:b1,2g:b1"
        time.sleep(0.3)
        stop.set()
        t.join()
        results = [f.result(20) for f in futs]
        variants = {r.variant for r in results}
        assert {"b1", "b3", "b5", "b7"} <= variants
        assert sorted(s.slot_id for s in pool.snapshot().slots) == ["gpu0/2g.10gb@0", "gpu0/2g.10gb@2", "gpu0/3g.20gb@4"]
    finally:
        stop.set()
        pool.close()


def test_mig_break_before_make_with_simulated_nvml() -> None:
    fake = fake_nvml.FakeNvml()
    svc = noop_service(delay_ms=5)
    pool = WorkerPool(svc, GPU, placement=MigPlacement(GPU, nvml=fake), max_queue_wait_s=None)
    futs: list = []
    stop = threading.Event()
    try:
        assert pool.reconfigure(cfg("4g:b1,3g:b3", svc)).ok
        assert sorted((start, name) for name, start, _ in fake.layout()) == [(0, "4g.20gb"), (4, "3g.20gb")]
        devices = {s.slot_id: s.device for s in pool.snapshot().slots}
        assert all(d.startswith("cuda:MIG-") for d in devices.values())
        t = threading.Thread(target=_steady_load, args=(pool, stop, futs, 100.0))
        t.start()
        time.sleep(0.2)
        rep = pool.reconfigure(cfg("4g:b1,2g:b3,1g:b3", svc))  # 3g@4 -> 2g@4 + 1g@6; 4g kept
        assert rep.ok and rep.slices_changed == 2 and rep.downtime_s["gpu0/2g.10gb@4"] > 0
        after = {s.slot_id: s.device for s in pool.snapshot().slots}
        assert after["gpu0/4g.20gb@0"] == devices["gpu0/4g.20gb@0"]  # same MIG UUID, same worker
        assert sorted((start, name) for name, start, _ in fake.layout()) == [(0, "4g.20gb"), (4, "2g.10gb"), (6, "1g.5gb")]
        time.sleep(0.2)
        stop.set()
        t.join()
        assert len([f.result(20) for f in futs]) == len(futs)
    finally:
        stop.set()
        pool.close()


def test_no_worker_answers_503_and_failed_reconfiguration_keeps_previous() -> None:
    svc = noop_service()
    d = svc.model_dump()
    d["variants"][-1]["source"] = {"kind": "python", "name": "no_such_module_xyz:build"}
    from clover_rl.services import ServiceSpec

    broken = ServiceSpec.model_validate(d)
    pool = WorkerPool(broken, GPU, no_worker_timeout_s=0.3)
    try:
        f = pool.submit(X)
        with pytest.raises(RequestError, match="no worker available") as e:
            f.result(5)
        assert e.value.status == 503
        assert pool.reconfigure(cfg("7g:b1", broken)).ok
        rep = pool.reconfigure(cfg("7g:b7", broken))
        assert not rep.ok and "no_such_module_xyz" in rep.message and "\n" not in rep.message
        assert pool.configuration.label() == "7g:b1"
        assert pool.infer(X, 10).variant == "b1"
    finally:
        pool.close()
    with pytest.raises(RequestError, match="shutting down"):
        pool.infer(X, 1)
