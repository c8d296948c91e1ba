"""The service the controller drives, seen as a *plane*: apply a configuration, let time pass,
and report what the service itself measured.

A plane differs from a :class:`~clover_rl.serving.backend.Backend` in one way that matters for
deployment: it does not generate load. The live plane measures the requests that real clients
sent through the front end (latency inside the service, status, serving variant) and the energy
meter; the replay plane simulates the scenario's workload so the loop can be unit-tested under
a fake clock.

- :class:`ReplayPlane` -- any Backend (normally ``ReplayBackend``) + a fake clock: instant.
- :class:`LivePlane` -- a ``LiveBackend``'s worker pool and meter, in real time.
- ``RemotePlane`` (``clover_rl.controller.supervisor``) -- a live plane in another process.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, Protocol, runtime_checkable

from clover_rl.controller.clock import Clock, SystemClock
from clover_rl.mig.config import Configuration
from clover_rl.services import ServiceSpec
from clover_rl.serving.backend import Backend, ReconfigReport
from clover_rl.serving.latency import POOL, percentiles_ms
from clover_rl.serving.metrics import IntervalMetrics, merge_metrics
from clover_rl.serving.simulator import DEFAULT_TIMEOUT_S

log = logging.getLogger("clover_rl.controller")


@runtime_checkable
class ServicePlane(Protocol):
    name: str

    @property
    def configuration(self) -> Configuration | None: ...

    def apply(self, configuration: Configuration) -> ReconfigReport:
        """Reconfigure. Failure semantics are the Backend contract's
        (:mod:`clover_rl.serving.backend`): a fault is reported (``ok=False``), never raised,
        and the *backend* owns rollback -- it has restored the previous configuration (or the
        report's ``current`` says what serves instead). Planes adapt, never re-apply; the
        controller counts, quarantines and logs the failure once, and never re-applies either."""

    def begin_interval(self) -> None:
        """Start accumulating a new control interval's measurements."""

    def window(self, seconds: float, stop: threading.Event | None = None) -> IntervalMetrics:
        """Let ``seconds`` pass while serving; the measurements of just that window."""

    def interval(self) -> IntervalMetrics:
        """Everything measured since :meth:`begin_interval`."""

    def publish(self, values: dict[str, Any]) -> None:
        """Controller figures for the plane's /metrics (no-op where there is none)."""

    def close(self) -> None: ...


def metrics_from_records(records: Sequence[Any], wall_s: float, energy_j: float, service: ServiceSpec,
                         *, timeout_s: float, estimated: bool, backend: str = "live") -> IntervalMetrics:
    """Interval metrics from the pool's finished-request records (status, variant, latency).

    Latency is :data:`clover_rl.serving.latency.POOL` (enqueue at the pool to answer), exact
    percentiles over the window's requests. Accuracy is the request-weighted catalog accuracy of the variants that
    answered. Every non-200 record counts as dropped (an explicit error, never a silent loss);
    with none answered the interval is :meth:`IntervalMetrics.nothing_served` at ``timeout_s``.
    """
    ok = [r for r in records if r.status == 200]
    by_variant = Counter(r.variant for r in ok if r.variant)
    n = sum(by_variant.values())
    acc = sum(service.variant(v).accuracy * c for v, c in by_variant.items()) / n if n else 0.0
    busy: dict[str, float] = defaultdict(float)
    for r in records:
        if r.slot_id is not None:
            busy[r.slot_id] += r.service_s
    wall = max(float(wall_s), 1e-9)
    util = {k: min(1.0, v / wall) for k, v in sorted(busy.items())}
    if not ok:  # an outage scores as in replay: every request charged ``timeout_s``
        return IntervalMetrics.nothing_served(wall, len(records), timeout_s=timeout_s, energy_j=float(energy_j),
                                              utilization=util, estimated=estimated, backend=backend, latency=POOL)
    p50, p95, p99, mean = percentiles_ms(r.latency_s for r in ok)
    return IntervalMetrics(
        duration_s=wall, arrived=len(records), served=len(ok), dropped=len(records) - len(ok),
        p50_ms=p50, p95_ms=p95, p99_ms=p99, mean_ms=mean, latency=POOL,
        throughput_rps=len(ok) / wall, energy_j=float(energy_j), accuracy=float(acc),
        utilization=util,
        variant_share={v: c / n for v, c in sorted(by_variant.items())} if n else {},
        estimated=estimated, backend=backend,
    )


class ReplayPlane:
    """A Backend driven as a plane: ``window`` simulates the scenario load and advances ``clock``.

    ``rate_rps`` is a number or a callable of the epoch time (a diurnal workload).
    """

    def __init__(self, backend: Backend, clock: Clock, rate_rps: float | Callable[[float], float],
                 timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.backend = backend
        self.timeout_s = timeout_s
        self.clock = clock
        self.rate_rps = rate_rps
        self.name = f"replay:{backend.name}"
        self.published: dict[str, Any] = {}
        self._windows: list[IntervalMetrics] = []
        self._start = clock.time()

    @property
    def configuration(self) -> Configuration | None:
        return self.backend.configuration

    def apply(self, configuration: Configuration) -> ReconfigReport:
        return self.backend.apply(configuration)

    def rate(self) -> float:
        r = self.rate_rps
        return float(r(self.clock.time()) if callable(r) else r)

    def begin_interval(self) -> None:
        self._windows = []
        self._start = self.clock.time()

    def window(self, seconds: float, stop: threading.Event | None = None) -> IntervalMetrics:
        m = self.backend.run(max(seconds, 1e-3), self.rate())
        self.clock.sleep(seconds)
        self._windows.append(m)
        return m

    def interval(self) -> IntervalMetrics:
        if not self._windows:  # no time has passed: nothing arrived
            return IntervalMetrics.nothing_served(self.clock.time() - self._start, 0, timeout_s=self.timeout_s,
                                                  backend=self.name)
        merged = merge_metrics(self._windows)
        w0 = self._windows[0]
        if all(w.served and (w.p50_ms, w.p95_ms, w.p99_ms) == (w0.p50_ms, w0.p95_ms, w0.p99_ms) for w in self._windows):
            # one steady state throughout: its quantiles are exact (the merge only approximates them)
            merged = replace(merged, p50_ms=w0.p50_ms, p95_ms=w0.p95_ms, p99_ms=w0.p99_ms, mean_ms=w0.mean_ms)
        return merged

    def publish(self, values: dict[str, Any]) -> None:
        self.published = dict(values)

    def close(self) -> None:
        self.backend.close()


class LivePlane:
    """A ``LiveBackend`` as a plane: measures what its front end served, never drives load.

    Thread-safe: the supervisor's RPC thread and the front end's metrics scrape may call it
    concurrently with the pool serving requests.
    """

    def __init__(self, backend: Any, clock: Clock | None = None, energy_model: Any = None,
                 timeout_s: float | None = None, deadline_factor: float | None = None) -> None:
        self.backend = backend
        # latency charged to unanswered requests (the scenario's timeout_s for parity with replay)
        self.timeout_s = float(timeout_s if timeout_s is not None else backend.outage_timeout_s)
        self.deadline_factor = deadline_factor  # requests' default deadline = factor x the published SLA
        self.energy_model = energy_model  # e.g. ProfileEnergyModel for emulated models; None: the meter
        self.pool = backend.pool
        self.meter = backend.meter
        self.service: ServiceSpec = backend.service
        self.clock = clock or SystemClock()
        self.name = f"live:{backend.device}"
        self.published: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._interval_records: list[Any] = []
        self._interval_t0 = time.perf_counter()
        self._interval_e0 = self.meter.read_joules()
        self._window_t0 = self._interval_t0
        self._window_e0 = self._interval_e0
        self.pool.drain_records()

    @property
    def estimated(self) -> bool:
        return bool(self.energy_model.estimated if self.energy_model is not None else self.meter.estimated)

    def _energy(self, records: Sequence[Any], wall_s: float, meter_j: float) -> float:
        if self.energy_model is not None:
            return self.energy_model.energy_j(records, wall_s)
        return meter_j

    @property
    def configuration(self) -> Configuration | None:
        return self.pool.configuration

    def apply(self, configuration: Configuration) -> ReconfigReport:
        """``LiveBackend.apply``: it restores the previous configuration itself on failure."""
        return self.backend.apply(configuration)

    def begin_interval(self) -> None:
        with self._lock:
            self._collect()
            self._interval_records = []
            self._interval_t0 = self._window_t0 = time.perf_counter()
            self._interval_e0 = self._window_e0 = self.meter.read_joules()

    def _collect(self) -> list[Any]:
        new = self.pool.drain_records()
        self._interval_records.extend(new)
        return new

    def measure_window(self) -> IntervalMetrics:
        """Requests finished and energy used since the previous window (no waiting)."""
        with self._lock:
            recs = self._collect()
            t, e = time.perf_counter(), self.meter.read_joules()
            m = metrics_from_records(recs, t - self._window_t0,
                                     self._energy(recs, t - self._window_t0, e - self._window_e0), self.service,
                                     timeout_s=self.timeout_s, estimated=self.estimated)
            self._window_t0, self._window_e0 = t, e
            return m

    def window(self, seconds: float, stop: threading.Event | None = None) -> IntervalMetrics:
        self.clock.sleep(seconds, stop)
        return self.measure_window()

    def interval(self) -> IntervalMetrics:
        with self._lock:
            self._collect()
            t, e = time.perf_counter(), self.meter.read_joules()
            wall = t - self._interval_t0
            return metrics_from_records(self._interval_records, wall,
                                        self._energy(self._interval_records, wall, e - self._interval_e0),
                                        self.service, timeout_s=self.timeout_s, estimated=self.estimated)

    def publish(self, values: dict[str, Any]) -> None:
        self.published = dict(values)
        sla = values.get("sla_ms")
        if self.deadline_factor and isinstance(sla, (int, float)) and sla > 0:
            self.pool.deadline_s = self.deadline_factor * float(sla) / 1000.0

    def close(self) -> None:
        self.backend.close()
