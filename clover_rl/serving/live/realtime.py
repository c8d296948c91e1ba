"""What every real-time backend shares (vision ``LiveBackend``, ``LLMLiveBackend``, ``LLMPlane``):
starting and stopping the front end over a worker pool, ``apply`` with rollback owned here
(the Backend contract in :mod:`clover_rl.serving.backend`), and the protocol's bookkeeping
(``probe``, ``reseed``, ``settle``, the outage latency, open/closed)."""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from clover_rl.errors import BackendError, CloverError
from clover_rl.mig.config import Configuration
from clover_rl.serving.backend import ReconfigReport
from clover_rl.serving.live.energy import EnergyMeter, default_meter
from clover_rl.serving.live.pool import WorkerPool
from clover_rl.serving.live.server import FrontEnd
from clover_rl.serving.metrics import IntervalMetrics

log = logging.getLogger("clover_rl.serving.live")


def start_front_end(pool: WorkerPool, make_app: Callable[[EnergyMeter], Any], meter: EnergyMeter | None,
                    device: str, n_gpus: int, host: str, port: int) -> tuple[EnergyMeter, FrontEnd]:
    """The energy meter (``meter``, else the device's default over the pool's workers) and the
    started front end serving ``make_app(meter)``; on any failure the pool is closed first, so a
    half-built plane leaves no worker behind."""
    try:
        meter = meter or default_meter(device, range(n_gpus), pids=pool.worker_pids)
        return meter, FrontEnd(make_app(meter), host, port, loop=pool.loop).start()
    except BaseException:
        pool.close()
        raise


def stop_front_end(frontend: FrontEnd, pool: WorkerPool, meter: EnergyMeter) -> None:
    """Stop the front end, then the workers and the meter (those even if the front end fails)."""
    try:
        frontend.stop()
    finally:
        pool.close()
        meter.close()


def apply_or_restore(pool: WorkerPool, configuration: Configuration) -> ReconfigReport:
    """Reconfigure ``pool`` (blocks until new workers are warm). A fault is reported, never raised;
    when the pool fails part-way (break-before-make retired the old workers, or new ones did not
    come up) the previous configuration is brought back here, once -- the one level that owns
    rollback -- and the report's ``current`` says what serves after it."""
    previous = pool.configuration
    try:
        report = pool.reconfigure(configuration)
    except CloverError as e:
        report = ReconfigReport(True, previous, previous or configuration, ok=False, message=str(e))
    if not report.ok and previous is not None:
        report = _restore(pool, previous, report)
    if not report.ok:
        log.error("live reconfiguration failed: %s", report.message)
    return report


def _restore(pool: WorkerPool, previous: Configuration, failed: ReconfigReport) -> ReconfigReport:
    try:
        back = pool.reconfigure(previous)
    except CloverError as e:
        return replace(failed, current=pool.configuration or previous, message=f"{failed.message}; restore failed: {e}")
    if not (back.changed or back.slices_changed):
        return failed  # make-before-break kept the previous workers serving
    log.warning("reconfiguration to %s failed part-way; restored %s", failed.current.label(), previous.label())
    return replace(failed, current=pool.configuration or previous,
                   message=f"{failed.message}; restored {previous.label()}"
                   + ("" if back.ok else f" (restore incomplete: {back.message})"))


class RealTimeBackend:
    """The Backend protocol's bookkeeping for a backend over a live worker ``pool``. A subclass
    sets ``pool``, ``seed`` and ``request_timeout_s`` and implements ``run`` and ``_shutdown``."""

    name = "live"
    pool: Any
    seed: int
    request_timeout_s: float
    _runs: int = 0
    _closed: bool = False

    @property
    def configuration(self) -> Configuration | None:
        return self.pool.configuration

    @property
    def outage_timeout_s(self) -> float:
        """The latency an unanswered request is charged: whichever gives up first, the pool's queue
        timeout (the scenario's ``timeout_s`` when the env or the deployment built the backend) or
        the client's request timeout."""
        wait = self.pool.max_queue_wait_s
        return min(float(self.request_timeout_s), float(wait) if wait is not None else float("inf"))

    def run(self, seconds: float, rate_rps: float) -> IntervalMetrics:
        raise NotImplementedError

    def probe(self, configuration: Configuration, seconds: float, rate_rps: float) -> IntervalMetrics:
        self.apply(configuration)  # type: ignore[attr-defined]
        return self.run(seconds, rate_rps)

    def reseed(self, seed: int | None) -> None:
        """The load generator's seed for the following runs (real service times stay real)."""
        self.seed = int(seed or 0)
        self._runs = 0

    def settle(self) -> None:
        """Nothing to forget: a live reconfiguration has finished when ``apply`` returns."""

    def _next_load_seed(self) -> int:
        """A fresh load-generator seed per run, reproducible from ``seed``."""
        self._runs += 1
        return self.seed * 100_003 + self._runs

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._shutdown()

    def _shutdown(self) -> None:
        raise NotImplementedError

    def _check_open(self) -> None:
        if self._closed:
            raise BackendError(f"{type(self).__name__} is closed")

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
