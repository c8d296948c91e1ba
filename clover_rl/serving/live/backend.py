"""``LiveBackend``: the Backend protocol over real worker processes, in real time.

``apply`` reconfigures the worker pool through the placement provider (real MIG instances on
``device="cuda"``, emulated slices on ``device="cpu"``); ``run`` drives the open-loop load
generator against the in-process KServe front end and turns what the front end measured
(latency), what the client saw (status) and what the meter read (energy) into
:class:`IntervalMetrics`. Latency is server-side -- request accepted by the front end to
response sent, the definition the replay backend uses too; the client-side latency stays in
``last_load`` (the load generator's :class:`LoadResult`). Accuracy is the request-weighted
catalog accuracy of the variants that answered.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any

from clover_rl.errors import BackendError, ConfigError
from clover_rl.mig.catalog import GpuModel, get_gpu
from clover_rl.mig.config import Configuration
from clover_rl.services import ServiceSpec, load_service
from clover_rl.serving.backend import ReconfigReport
from clover_rl.serving.latency import CLIENT, SERVER, percentiles_ms
from clover_rl.serving.live.energy import EnergyMeter
from clover_rl.serving.live.loadgen import LoadProcess, LoadResult, run_load
from clover_rl.serving.live.placement import PlacementProvider, check_device, default_placement
from clover_rl.serving.live.pool import RequestRecord, WorkerPool
from clover_rl.serving.live.realtime import (
    RealTimeBackend,
    apply_or_restore,
    start_front_end,
    stop_front_end,
)
from clover_rl.serving.live.server import ServerRecord, create_app
from clover_rl.serving.metrics import IntervalMetrics


class LiveBackend(RealTimeBackend):
    """Real serving: worker processes per slice, KServe v2 front end, measured energy.

    ``cpu_scale`` (CPU mode only) shrinks each variant's input resolution / sequence length so
    emulated slices answer in reasonable time; ``cpu_threads`` is the torch threads per worker.
    ``loadgen="process"`` runs the load generator in its own process (clean latencies);
    ``"thread"`` runs it in the caller's process (no extra process).
    Extra keyword arguments go to :class:`WorkerPool` (timeouts, warm-up, throttle).
    """

    def __init__(
        self,
        service: ServiceSpec | str,
        gpu: GpuModel | str,
        n_gpus: int = 1,
        device: str = "cpu",
        port: int = 0,
        seed: int = 0,
        cpu_scale: float = 1.0,
        *,
        host: str = "127.0.0.1",
        cpu_threads: int = 1,
        placement: PlacementProvider | None = None,
        meter: EnergyMeter | None = None,
        image_size: int | None = None,
        request_timeout_s: float = 60.0,
        loadgen: str = "process",
        pool_class: Callable[..., WorkerPool] = WorkerPool,
        **pool_options: Any,
    ):
        check_device(device)
        if loadgen not in ("process", "thread"):
            raise ConfigError(f"unknown loadgen mode {loadgen!r} (expected process or thread)")
        if not (isinstance(cpu_scale, (int, float)) and 0 < cpu_scale <= 1):
            raise ConfigError(f"--cpu-scale must be in (0, 1], got {cpu_scale!r}")  # before any worker
        self.loadgen = loadgen
        self._load_proc: LoadProcess | None = None
        self.service = load_service(service) if isinstance(service, str) else service
        self.gpu = get_gpu(gpu) if isinstance(gpu, str) else gpu
        self.n_gpus = n_gpus
        self.device = device
        self.seed = seed
        self.image_size = image_size
        self.request_timeout_s = request_timeout_s
        self.last_load: LoadResult | None = None
        self.last_records: list[RequestRecord] = []
        self.last_server: list[ServerRecord] = []
        self.pool = pool_class(  # a fleet scenario: fleet.rolling.RollingPool (a configuration per GPU)
            self.service, self.gpu, n_gpus, placement or default_placement(device, self.gpu),
            input_scale=cpu_scale if device == "cpu" else 1.0, cpu_threads=cpu_threads, **pool_options,
        )
        self.meter, self.frontend = start_front_end(
            self.pool, lambda m: create_app(self.pool, m, device=device), meter, device, n_gpus, host, port)

    # ------------------------------------------------------------------ protocol
    @property
    def url(self) -> str:
        return self.frontend.url

    def apply(self, configuration: Configuration) -> ReconfigReport:
        """Reconfigure every GPU to ``configuration``; rollback as :func:`.realtime.apply_or_restore`."""
        self._check_open()
        return apply_or_restore(self.pool, configuration)

    def run(self, seconds: float, rate_rps: float) -> IntervalMetrics:
        """Offer Poisson load at ``rate_rps`` for ``seconds`` and measure the interval."""
        self._check_open()
        if self.pool.configuration is None:
            raise BackendError("live backend has no configuration yet; call apply() first")
        if seconds <= 0 or rate_rps < 0:
            raise ConfigError(f"run needs seconds > 0 and rate >= 0, got {seconds} s at {rate_rps} req/s")
        self.pool.drain_records()
        self.frontend.app.state.server_records.clear()
        seed = self._next_load_seed()
        e0 = self.meter.read_joules()
        t0 = time.perf_counter()
        res = self._load(seconds, rate_rps, seed)
        wall = time.perf_counter() - t0
        energy = self.meter.read_joules() - e0
        records = self.pool.drain_records()
        server = list(self.frontend.app.state.server_records)
        self.last_load, self.last_records, self.last_server = res, records, server
        return self._metrics(res, records, server, wall, energy)

    def _shutdown(self) -> None:
        if self._load_proc is not None:
            self._load_proc.close()
        stop_front_end(self.frontend, self.pool, self.meter)

    # ------------------------------------------------------------------ helpers
    def _load(self, seconds: float, rate_rps: float, seed: int) -> LoadResult:
        kwargs = {"seed": seed, "timeout_s": self.request_timeout_s, "image_size": self.image_size}
        if self.loadgen == "process":
            if self._load_proc is None:
                self._load_proc = LoadProcess()
            return self._load_proc.run(self.url, self.service, seconds, rate_rps, **kwargs)

        def go() -> LoadResult:
            return run_load(self.url, self.service, seconds, rate_rps, **kwargs)

        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return go()
        with concurrent.futures.ThreadPoolExecutor(1) as ex:  # called from async code: own loop
            return ex.submit(go).result()

    def _metrics(self, res: LoadResult, records: list[RequestRecord], server: list[ServerRecord], wall: float,
                 energy: float) -> IntervalMetrics:
        served = res.answered
        lat = [r.latency_s for r in server if r.status == 200]
        kind = SERVER if lat else CLIENT  # no server record (never expected once answered): the client's
        p50, p95, p99, mean = percentiles_ms(lat) if lat else (res.p50_ms, res.p95_ms, res.p99_ms, res.mean_ms)
        client = {"client_p50_ms": res.p50_ms, "client_p95_ms": res.p95_ms, "client_p99_ms": res.p99_ms}
        by_variant = Counter(res.variants) if res.variants else Counter(r.variant for r in records if r.status == 200)
        n = sum(by_variant.values())
        busy: dict[str, float] = defaultdict(float)
        for s in self.pool.snapshot().slots:
            busy[s.slot_id] += 0.0
        for r in records:
            if r.slot_id is not None:
                busy[r.slot_id] += r.service_s
        util = {k: min(1.0, v / wall) for k, v in sorted(busy.items())} if wall > 0 else {}
        if not served:  # the shared outage interval: the longest allowed wait as every latency
            return IntervalMetrics.nothing_served(wall, res.sent, timeout_s=self.outage_timeout_s, energy_j=energy,
                                                  accuracy=self.service.variants[0].accuracy, utilization=util,
                                                  estimated=self.meter.estimated, backend=self.name)
        # (nothing answered: no client latency to report beside the timeout)
        acc = (sum(self.service.variant(v).accuracy * c for v, c in by_variant.items()) / n if n
               else self.service.variants[0].accuracy)
        return IntervalMetrics(
            duration_s=wall,
            arrived=res.sent,
            served=served,
            dropped=res.errors,
            p50_ms=p50,
            p95_ms=p95,
            p99_ms=p99,
            mean_ms=mean,
            throughput_rps=served / wall if wall > 0 else 0.0,
            energy_j=energy,
            accuracy=acc,
            utilization=util,
            variant_share={v: c / n for v, c in sorted(by_variant.items())} if n else {},
            estimated=self.meter.estimated,
            backend=self.name,
            extra=client,
            latency=kind,
        )
