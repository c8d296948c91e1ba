"""Deployment pieces for LLM services (issue 16 item 5): the live plane and the steady load.

- :class:`LLMLivePlane`: :class:`~.plane.LivePlane` over an
  :class:`~clover_rl.serving.live.llm_backend.LLMLiveBackend`, measuring the front end's
  generation records in the LLM replay backend's units (output tokens, TTFT/TPOT, the binding
  latency against the scenario's TTFT and TPOT SLAs) instead of the pool's request records.
- :class:`LLMSteadyLoad`: ``deploy --load`` for LLM services, :class:`~.load.SteadyLoad`'s open-loop
  arrivals posting OpenAI completions whose prompt/output lengths come from the scenario's
  fitted distribution, scaled for the CPU stand-ins.
"""
from __future__ import annotations

import json
from typing import Any

import numpy as np

from clover_rl.controller.load import SteadyLoad
from clover_rl.controller.plane import LivePlane
from clover_rl.serving.live.llm_backend import llm_interval_metrics
from clover_rl.serving.live.llm_load import draw_lengths
from clover_rl.serving.live.llm_tokens import BOS
from clover_rl.serving.metrics import IntervalMetrics


class LLMLivePlane(LivePlane):
    """See the module docstring; ``ttft_sla_ms``/``tpot_sla_ms`` make the binding latency."""

    def __init__(self, backend: Any, *, ttft_sla_ms: float | None = None, tpot_sla_ms: float | None = None,
                 **kwargs: Any) -> None:
        self.ttft_sla_ms, self.tpot_sla_ms = ttft_sla_ms, tpot_sla_ms
        self._records = backend.frontend.app.state.llm_records
        super().__init__(backend, **kwargs)
        self._records.clear()
        self._window_busy = self._interval_busy = self._busy()

    def _busy(self) -> dict[str, float]:
        return {s.slot_id: s.busy_s for s in self.pool.snapshot().slots}

    def _util(self, since: dict[str, float], wall_s: float) -> dict[str, float]:
        now = self._busy()
        return {k: min(1.0, max(0.0, (b - since.get(k, 0.0)) / max(wall_s, 1e-9))) for k, b in sorted(now.items())}

    def begin_interval(self) -> None:
        super().begin_interval()
        self._window_busy = self._interval_busy = self._busy()

    def _collect(self) -> list[Any]:
        self.pool.drain_records()  # the pool's per-request records are not the LLM figures
        new = []
        while True:
            try:
                new.append(self._records.popleft())
            except IndexError:
                break
        self._interval_records.extend(new)
        return new

    def _llm_metrics(self, records: list[Any], wall_s: float, energy_j: float,
                     busy_since: dict[str, float]) -> IntervalMetrics:
        return llm_interval_metrics(records, wall_s, energy_j, self.service, timeout_s=self.timeout_s,
                                    estimated=self.estimated, utilization=self._util(busy_since, wall_s),
                                    ttft_sla_ms=self.ttft_sla_ms, tpot_sla_ms=self.tpot_sla_ms)

    def measure_window(self) -> IntervalMetrics:
        import time

        with self._lock:
            recs = self._collect()
            t, e = time.perf_counter(), self.meter.read_joules()
            m = self._llm_metrics(recs, t - self._window_t0, e - self._window_e0, self._window_busy)
            self._window_t0, self._window_e0, self._window_busy = t, e, self._busy()
            return m

    def interval(self) -> IntervalMetrics:
        import time

        with self._lock:
            self._collect()
            t, e = time.perf_counter(), self.meter.read_joules()
            return self._llm_metrics(self._interval_records, t - self._interval_t0, e - self._interval_e0,
                                     self._interval_busy)


class LLMSteadyLoad(SteadyLoad):
    """``deploy --load`` for an LLM service: OpenAI completions with fitted lengths x ``length_scale``
    (capped at ``max_prompt``/``max_output`` tokens), prompts as byte-token ids, ``ignore_eos``."""

    def __init__(self, url: str, service: Any, rate_rps: Any, lengths: Any, *, length_scale: float = 0.1,
                 max_prompt: int = 256, max_output: int = 64, n_bodies: int = 256, **kwargs: Any) -> None:
        super().__init__(url, service, rate_rps, **kwargs)
        self.lengths, self.length_scale = lengths, length_scale
        self.max_prompt, self.max_output, self.n_bodies = max_prompt, max_output, n_bodies

    def requests(self) -> tuple[str, list[tuple[bytes, dict[str, str]]]]:
        rng = np.random.default_rng(self.seed)
        p, o = draw_lengths(self.lengths, self.n_bodies, rng, self.length_scale, self.max_prompt, self.max_output)
        bodies = []
        for n_prompt, n_out in zip(p, o):
            prompt = [BOS, *rng.integers(32, 127, int(n_prompt) - 1).tolist()]
            body = {"model": self.service.name, "prompt": prompt, "max_tokens": int(n_out), "temperature": 0,
                    "ignore_eos": True}
            bodies.append((json.dumps(body).encode(), {"content-type": "application/json"}))
        return f"{self.url}/v1/completions", bodies


def llm_serving(scenario: Any, settings: Any, gpu: Any, placement: Any, pool_options: dict[str, Any],
                deadline_factor: float | None) -> tuple[Any, LLMLivePlane]:
    """The backend and plane of an LLM scenario's deployment: the LLM plane (tiny engine on the
    CPU, vLLM on GPUs) with its TTFT/TPOT SLAs from the scenario's service model."""
    from clover_rl.errors import ConfigError
    from clover_rl.service_model import ServiceModel
    from clover_rl.serving.live.llm_backend import LLMLiveBackend

    if settings.models != "real":
        raise ConfigError("--models emulated is for request services; an LLM service runs its engines")
    model = ServiceModel(scenario)
    svc = scenario.service_spec()
    max_batch = 8 if settings.device == "cpu" else svc.llm.max_batch  # CPU stand-ins: a small batch
    backend = LLMLiveBackend(svc.spec, gpu, scenario.gpus, settings.device, settings.port, host=settings.host,
                             cpu_scale=settings.cpu_scale, cpu_threads=settings.cpu_threads, placement=placement,
                             max_batch=max_batch, lengths=svc.llm.token_lengths(), ttft_sla_ms=model.sla_ms,
                             tpot_sla_ms=model.tpot_sla_ms, **pool_options)
    plane = LLMLivePlane(backend, ttft_sla_ms=model.sla_ms, tpot_sla_ms=model.tpot_sla_ms,
                         timeout_s=scenario.timeout_s, deadline_factor=deadline_factor)
    return backend, plane
