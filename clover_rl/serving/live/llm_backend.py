"""``LLMLiveBackend``: the Backend protocol over the live LLM plane, in real time, in the units of
the LLM replay backend (``clover_rl/llm/replay.py``) so the env, policies and scoring see the same
quantities from either:

- unit of work = output tokens: ``arrived`` = tokens requested by the interval's requests,
  ``served`` = tokens generated for answered requests, ``dropped`` = the rest, ``throughput_rps``
  = tokens/s, ``accuracy`` = token-weighted quality of the variants that answered;
- TTFT and TPOT p50/p95/p99 (ms, server-side: front end accepted -> first token; (last - first)
  / (tokens - 1)) in ``IntervalMetrics.extra`` (the replay's keys), plus ``requests_served``;
  a refused or failed request counts in the TTFT distribution at the timeout, as an outage
  does in replay;
- the SLA-judged latency (``p50_ms``/``p95_ms``/``p99_ms``) is the binding one,
  ``max(TTFT_q, TPOT_q x ttft_sla / tpot_sla)`` (``clover_rl.llm.replay.rebind``) when both SLAs
  are set (``set_slas``), else TTFT;
- energy from the plane's meter (labelled estimated on the CPU).

``run(seconds, rate_rps)`` offers Poisson load at ``rate_rps`` *requests*/s through the OpenAI
endpoint (:mod:`.llm_load`; lengths from the fitted ``lengths`` distribution x ``length_scale``).
"""
from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

import numpy as np

from clover_rl.errors import BackendError, ConfigError
from clover_rl.llm.catalog import LLMServiceSpec
from clover_rl.llm.lengths import TokenLengths, load_fitted
from clover_rl.llm.replay import rebind
from clover_rl.mig.catalog import GpuModel
from clover_rl.mig.config import Configuration
from clover_rl.serving.backend import ReconfigReport
from clover_rl.serving.live.llm_load import LLMLoadResult, run_llm_load
from clover_rl.serving.live.llm_plane import LLMPlane
from clover_rl.serving.live.llm_server import LLMRecord
from clover_rl.serving.live.realtime import RealTimeBackend
from clover_rl.serving.metrics import IntervalMetrics


def _q(x: np.ndarray) -> tuple[float, float, float]:
    return tuple(float(v) for v in np.percentile(x, [50, 95, 99])) if x.size else (0.0, 0.0, 0.0)  # type: ignore[return-value]


def llm_interval_metrics(records: list[LLMRecord], wall_s: float, energy_j: float,
                         service: LLMServiceSpec, *, timeout_s: float, estimated: bool,
                         utilization: dict[str, float] | None = None, ttft_sla_ms: float | None = None,
                         tpot_sla_ms: float | None = None) -> IntervalMetrics:
    """One interval from the front end's generation records (see the module docstring). A
    request the client abandoned (499) counts nowhere; an answered one arrived with the tokens it
    got (it may stop at EOS before ``max_tokens``), a failed one with its ``max_tokens``."""
    ok = [r for r in records if r.status == 200]
    failed = [r for r in records if r.status not in (200, 499)]
    served = sum(r.output_tokens for r in ok)
    arrived = served + sum(max(r.max_tokens, r.output_tokens) for r in failed)
    if not ok:
        return IntervalMetrics.nothing_served(wall_s, arrived, timeout_s=timeout_s, energy_j=energy_j,
                                              utilization=utilization, estimated=estimated, backend="live")
    ttft = np.array([r.ttft_s * 1000.0 for r in ok] + [timeout_s * 1000.0] * len(failed))
    tpot = np.array([r.tpot_s * 1000.0 for r in ok if r.output_tokens > 1 and r.tpot_s == r.tpot_s])
    t50, t95, t99 = _q(ttft)
    o50, o95, o99 = _q(tpot)
    by_variant: dict[str, int] = defaultdict(int)
    for r in ok:
        by_variant[r.variant or ""] += r.output_tokens
    quality = sum(service.variant(v).quality * n for v, n in by_variant.items() if v) / max(1, served)
    extra = {"ttft_p50_ms": t50, "ttft_p95_ms": t95, "ttft_p99_ms": t99, "tpot_p50_ms": o50,
             "tpot_p95_ms": o95, "tpot_p99_ms": o99, "requests_served": float(len(ok))}
    wall = max(float(wall_s), 1e-9)
    m = IntervalMetrics(duration_s=wall, arrived=arrived, served=served, dropped=arrived - served,
                        p50_ms=t50, p95_ms=t95, p99_ms=t99, mean_ms=float(ttft.mean()),
                        throughput_rps=served / wall, energy_j=energy_j, accuracy=quality,
                        utilization=dict(utilization or {}),
                        variant_share={v: n / served for v, n in sorted(by_variant.items()) if served},
                        estimated=estimated, backend="live", extra=extra)
    return rebind(m, ttft_sla_ms, tpot_sla_ms) if ttft_sla_ms and tpot_sla_ms else m


class LLMLiveBackend(RealTimeBackend):
    """Real LLM serving under offered load (see the module docstring). Extra keyword arguments
    go to :class:`~.llm_plane.LLMPlane` (engine, max_batch, cpu_scale, pool timeouts), or pass a
    running ``plane`` (which ``close`` then closes too)."""

    def __init__(self, service: LLMServiceSpec, gpu: GpuModel, n_gpus: int = 1, device: str = "cpu", port: int = 0,
                 seed: int = 0, *, lengths: str | TokenLengths = "conv", length_scale: float = 0.1, max_prompt: int = 256,
                 max_output: int = 64, request_timeout_s: float = 60.0, ttft_sla_ms: float | None = None,
                 tpot_sla_ms: float | None = None, plane: LLMPlane | None = None, **plane_options: Any):
        self.lengths = load_fitted(lengths) if isinstance(lengths, str) else lengths
        if not 0 < length_scale <= 1:
            raise ConfigError(f"length_scale must be in (0, 1], got {length_scale}")
        self.service, self.gpu, self.seed = service, gpu, seed
        self.length_scale, self.max_prompt, self.max_output = length_scale, max_prompt, max_output
        self.request_timeout_s = request_timeout_s
        self.ttft_sla_ms, self.tpot_sla_ms = ttft_sla_ms, tpot_sla_ms
        self.plane = plane or LLMPlane(service, gpu, n_gpus, device, port, **plane_options)
        self.last_load: LLMLoadResult | None = None

    @property
    def url(self) -> str:
        return self.plane.url

    @property
    def pool(self) -> Any:
        return self.plane.pool

    @property
    def meter(self) -> Any:
        return self.plane.meter

    @property
    def device(self) -> str:
        return self.plane.device

    @property
    def frontend(self) -> Any:
        return self.plane.frontend

    def set_slas(self, ttft_sla_ms: float, tpot_sla_ms: float) -> None:
        self.ttft_sla_ms, self.tpot_sla_ms = ttft_sla_ms, tpot_sla_ms

    def apply(self, configuration: Configuration) -> ReconfigReport:
        self._check_open()
        return self.plane.apply(configuration)

    def run(self, seconds: float, rate_rps: float) -> IntervalMetrics:
        """Offer Poisson load at ``rate_rps`` requests/s for ``seconds``; measure the interval."""
        self._check_open()
        if self.plane.configuration is None:
            raise BackendError("LLM live backend has no configuration yet; call apply() first")
        records = self.plane.frontend.app.state.llm_records
        records.clear()
        seed = self._next_load_seed()
        busy0 = {s.slot_id: s.busy_s for s in self.pool.snapshot().slots}
        e0 = self.plane.meter.read_joules()
        t0 = time.perf_counter()
        res = run_llm_load(self.url, seconds, rate_rps, self.lengths, seed=seed,
                           model=self.service.name, length_scale=self.length_scale, max_prompt=self.max_prompt,
                           max_output=self.max_output, timeout_s=self.request_timeout_s)
        wall = time.perf_counter() - t0
        energy = self.plane.meter.read_joules() - e0
        util = {s.slot_id: min(1.0, max(0.0, (s.busy_s - busy0.get(s.slot_id, 0.0)) / wall))
                for s in self.pool.snapshot().slots}
        self.last_load = res
        return llm_interval_metrics(list(records), wall, energy, self.service,
                                    timeout_s=self.outage_timeout_s, estimated=self.plane.meter.estimated,
                                    utilization=util, ttft_sla_ms=self.ttft_sla_ms, tpot_sla_ms=self.tpot_sla_ms)

    def _shutdown(self) -> None:
        self.plane.close()
