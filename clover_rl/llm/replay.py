"""``LLMReplayBackend``: the Backend protocol for ``kind: llm`` services, on the LLM simulator.

Same contract as :class:`clover_rl.serving.replay.ReplayBackend` (apply / run / probe /
settle / reseed / close, ``steady_state`` and ``capacity_rps`` for tables); what differs:

* **Unit of work: output tokens.** ``IntervalMetrics.arrived/served/dropped`` count output
  tokens (requested / generated / lost with dropped requests), ``throughput_rps`` is tokens/s,
  ``accuracy`` is token-weighted quality, so ``energy_per_request_j`` is energy per token and the
  objectives score carbon per token. ``run(seconds, rate_rps)`` takes the *request* rate.
* **Latency.** TTFT and TPOT percentiles are in ``IntervalMetrics.extra`` (``ttft_p50_ms``,
  ``ttft_p95_ms``, ``ttft_p99_ms`` and the same for ``tpot``). The latency the SLA judges
  (``p50_ms``/``p95_ms``/``p99_ms``/``mean_ms``) is the binding one in TTFT milliseconds:
  ``max(TTFT_q, TPOT_q x ttft_sla / tpot_sla)``, so ``p95_ms > ttft_sla`` exactly when the
  TTFT p95 exceeds its SLA or the TPOT p95 exceeds its own (one scoring implementation).
* **Routing.** A configuration's requests are split over its slices in proportion to each
  slice's saturation throughput, so every slice runs at the same utilisation
  ``rho = rate / capacity``; each slice's figures come from its cached steady state at
  ``rho`` rounded up to a 5% grid (:mod:`clover_rl.llm.steady`); token counts and energy use the
  true rate. Over capacity (``rho > 1``) the excess share ``1 - 1/rho`` is dropped.
* **Dropped requests** (over capacity, a KV footprint larger than the slice, a slice down for
  reconfiguration) count in the TTFT distribution at the queue timeout, as an outage does.
* **Energy** = every GPU's idle power over the interval + each slice's active energy per
  token (from its steady state) x the tokens it generated.
* **Reconfiguration** (downtime paid by the next run, as in the request replay): a slice whose
  variant changed reloads it (``engine_start_s + weight bytes / load_bytes_per_s``); a new
  placement adds ``partition_change_s``; the first apply and an unchanged slice pay nothing.
  A slice down for ``d`` s of an interval of ``T`` s loses the share ``d / T`` of its requests.
All figures are estimated (physics profiles, :mod:`clover_rl.llm.physics`).
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace

import numpy as np

from clover_rl.errors import BackendError, ConfigError, positive_number
from clover_rl.llm.physics import slice_profile
from clover_rl.llm.service import LLMService
from clover_rl.llm.steady import LEVELS, Requests, SliceModel, rho_grid, weighted_quantiles
from clover_rl.mig.catalog import GpuModel
from clover_rl.mig.config import Configuration
from clover_rl.serving.backend import ReconfigReport
from clover_rl.serving.metrics import IntervalMetrics
from clover_rl.serving.replay_base import ReplayBookkeeping, switch_cost
from clover_rl.serving.slots import slice_id, slot_assignment

Slices = tuple[tuple[str, str, str], ...]  # (slice id, profile, variant) on every GPU
_QUANTILES = (0.5, 0.95, 0.99)


def rebind(m: IntervalMetrics, ttft_sla_ms: float, tpot_sla_ms: float) -> IntervalMetrics:
    """``m`` with its SLA-judged latencies recomputed from its TTFT/TPOT percentiles
    (``max(TTFT_q, TPOT_q x ttft_sla / tpot_sla)``), e.g. after merging windows; unchanged
    when it carries none (an interval with nothing served)."""
    e = m.extra
    if not all(f"{n}_p{q}_ms" in e for n in ("ttft", "tpot") for q in (50, 95, 99)):
        return m
    k = ttft_sla_ms / tpot_sla_ms
    p50, p95, p99 = (max(e[f"ttft_p{q}_ms"], e[f"tpot_p{q}_ms"] * k) for q in (50, 95, 99))
    return replace(m, p50_ms=p50, p95_ms=p95, p99_ms=p99)


class LLMSteadyView:
    """A configuration's steady state at one rate (what ``ReplayBackend.steady_state`` gives)."""

    def __init__(self, backend: LLMReplayBackend, slices: Slices, rate_rps: float) -> None:
        self._b, self._slices, self.rate_rps = backend, slices, float(rate_rps)

    def interval(self, seconds: float) -> IntervalMetrics:
        return self._b._metrics(self._slices, self.rate_rps, seconds, {})

    @property
    def variant_share(self) -> dict[str, float]:
        return self.interval(3600.0).variant_share


class LLMReplayBackend(ReplayBookkeeping):
    """Steady-state LLM replay of ``n_gpus`` identical GPUs sharing one configuration."""

    def __init__(self, service: LLMService, gpu: GpuModel, n_gpus: int, requests: Requests, *,
                 timeout_s: float = 30.0, reconfiguration: bool = True,
                 ttft_sla_ms: float | None = None, tpot_sla_ms: float | None = None) -> None:
        if isinstance(n_gpus, bool) or not isinstance(n_gpus, (int, np.integer)) or n_gpus < 1:
            raise ConfigError(f"n_gpus must be a positive integer, got {n_gpus!r}")
        self.service, self.gpu, self.n_gpus, self.requests = service, gpu, int(n_gpus), requests
        self.timeout_s = positive_number("timeout_s", timeout_s)
        self.reconfiguration = bool(reconfiguration)
        self.tokens_per_request = requests.tokens_per_request
        self.ttft_sla_ms, self.tpot_sla_ms = ttft_sla_ms, tpot_sla_ms
        self._models: dict[tuple[str, str], SliceModel] = {}
        self._slices_cache: dict[tuple, Slices] = {}
        self._config: Configuration | None = None
        self._assignment: tuple = ()
        self._slices: Slices = ()
        self._pending: dict[str, float] = {}
        self._closed = False

    # ------------------------------------------------------------------ model
    def set_slas(self, ttft_sla_ms: float, tpot_sla_ms: float) -> None:
        """The SLAs the binding latency is normalised by (see the module docstring)."""
        self.ttft_sla_ms, self.tpot_sla_ms = positive_number("ttft_sla_ms", ttft_sla_ms), \
            positive_number("tpot_sla_ms", tpot_sla_ms)

    def slice_model(self, profile: str, variant: str) -> SliceModel:
        key = (profile, variant)
        m = self._models.get(key)
        if m is None:
            v = self.service.variant(variant).spec
            m = SliceModel(slice_profile(v, self.gpu, self.gpu.profile(profile)), self.requests,
                           max_batch=self.service.llm.max_batch)
            self._models[key] = m
        return m

    def _slices_of(self, config: Configuration, assignment: tuple) -> Slices:
        key = (config, assignment)
        s = self._slices_cache.get(key)
        if s is None:
            s = tuple((slice_id(g, slc), slc.profile, v) for g in range(self.n_gpus) for slc, v in assignment)
            self._slices_cache[key] = s
        return s

    def _metrics(self, slices: Slices, rate: float, seconds: float, down: Mapping[str, float]) -> IntervalMetrics:
        seconds = positive_number("seconds", seconds)
        models = [self.slice_model(p, v) for _, p, v in slices]
        caps = [m.capacity_rps for m in models]
        total = float(sum(caps))
        arrived_req = rate * seconds
        arrived_tok = int(round(arrived_req * self.tokens_per_request))
        idle_j = self.gpu.idle_w * self.n_gpus * seconds
        if total <= 0:
            return IntervalMetrics.nothing_served(seconds, arrived_tok, timeout_s=self.timeout_s, energy_j=idle_j)
        rho = rate / total
        st_rho = rho_grid(min(rho, 1.0))
        keep = 1.0 / rho if rho > 1.0 else 1.0
        served_req = tokens = active_j = quality_tok = 0.0
        tt_v, tt_w, tp_v, tp_w, means = [], [], [], [], [0.0, 0.0]
        share: dict[str, float] = {}
        util: dict[str, float] = {}
        for (sid, _, variant), m, cap in zip(slices, models, caps):
            if cap <= 0:
                util[sid] = 0.0
                continue
            st = m.steady(st_rho)
            up = max(0.0, seconds - float(down.get(sid, 0.0))) / seconds
            srv = arrived_req * cap / total * up * keep * st.admitted
            tok = srv * st.tokens_per_request
            served_req += srv
            tokens += tok
            active_j += st.active_j_per_token * tok
            quality_tok += m.profile.quality * tok
            share[variant] = share.get(variant, 0.0) + tok
            util[sid] = float(st.busy * up)
            if srv > 0:
                tt_v.append(st.ttft_q_ms)
                tt_w.append(np.full(LEVELS.size, srv / LEVELS.size))
                tp_v.append(st.tpot_q_ms)
                tp_w.append(np.full(LEVELS.size, srv / LEVELS.size))
                means[0] += st.ttft_mean_ms * srv
                means[1] += st.tpot_mean_ms * srv
        if tokens <= 0:
            return IntervalMetrics.nothing_served(seconds, arrived_tok, timeout_s=self.timeout_s,
                                                  energy_j=idle_j, utilization=util)
        dropped_req = max(0.0, arrived_req - served_req)
        timeout_ms = self.timeout_s * 1e3
        ttft = weighted_quantiles(np.concatenate(tt_v + [[timeout_ms]]),
                                  np.concatenate(tt_w + [[dropped_req]]), _QUANTILES)
        tpot = weighted_quantiles(np.concatenate(tp_v), np.concatenate(tp_w), _QUANTILES)
        ttft_mean = (means[0] + timeout_ms * dropped_req) / (served_req + dropped_req)
        tpot_mean = means[1] / served_req
        k = (self.ttft_sla_ms / self.tpot_sla_ms) if self.ttft_sla_ms and self.tpot_sla_ms else 1.0
        bind = [max(a, b * k) for a, b in zip(ttft, tpot)]
        served = int(round(tokens))
        return IntervalMetrics(
            duration_s=seconds, arrived=max(arrived_tok, served), served=served,
            dropped=max(0, arrived_tok - served), p50_ms=bind[0], p95_ms=bind[1], p99_ms=bind[2],
            mean_ms=float(max(ttft_mean, tpot_mean * k)), throughput_rps=float(tokens / seconds),
            energy_j=float(idle_j + active_j), accuracy=float(quality_tok / tokens), utilization=util,
            variant_share={v: float(t / tokens) for v, t in share.items()}, estimated=True, backend=self.name,
            extra={"ttft_p50_ms": ttft[0], "ttft_p95_ms": ttft[1], "ttft_p99_ms": ttft[2],
                   "tpot_p50_ms": tpot[0], "tpot_p95_ms": tpot[1], "tpot_p99_ms": tpot[2],
                   "requests_served": float(served_req)},
        )

    # ------------------------------------------------------------------ protocol
    def load_s(self, variant: str) -> float:
        """Seconds to (re)start a slice's engine with ``variant`` (assumed figures, see LLMScenarioSpec)."""
        llm = self.service.llm
        return llm.engine_start_s + self.service.variant(variant).spec.weight_bytes / llm.load_bytes_per_s

    def apply(self, configuration: Configuration) -> ReconfigReport:
        """Switch every GPU to ``configuration``; the downtime is paid by the next run."""
        self._alive()
        self._check_config(configuration)
        first = self._config is None
        previous = {(s.profile, s.start): v for s, v in self._assignment}
        assignment = slot_assignment(configuration, self.gpu, previous)
        for _slc, v in assignment:
            self.service.variant(v)  # ConfigError for a variant the scenario does not serve
        costs = [(slice_id(g, slc), switch_cost(previous.get((slc.profile, slc.start)), v, first=first,
                                                enabled=self.reconfiguration, load_s=self.load_s,
                                                partition_s=self.service.llm.partition_change_s))
                 for g in range(self.n_gpus) for slc, v in assignment]
        self._assignment = assignment
        self._slices = self._slices_of(configuration, assignment)
        return self._commit(configuration, costs)

    def run(self, seconds: float, rate_rps: float) -> IntervalMetrics:
        """Serve the current configuration for ``seconds`` at ``rate_rps`` requests/s."""
        self._alive()
        if self._config is None:
            raise BackendError("no configuration applied to the replay backend; call apply() first")
        seconds = positive_number("seconds", seconds)
        rate = positive_number("rate_rps", rate_rps)
        m = self._metrics(self._slices, rate, seconds, self._pending)
        self._elapse(seconds)
        return m

    def reseed(self, seed: int | None) -> None:
        """No-op: steady-state replay is deterministic (common random numbers)."""

    def close(self) -> None:
        super().close()
        self._slices_cache.clear()

    # ------------------------------------------------------------------ tables
    def slices(self, configuration: Configuration) -> Slices:
        self._check_config(configuration)
        return self._slices_of(configuration, slot_assignment(configuration, self.gpu))

    def capacity_rps(self, configuration: Configuration | None = None) -> float:
        """Saturation throughput (requests/s) of all GPUs."""
        slices = self._slices if configuration is None else self.slices(configuration)
        return float(sum(self.slice_model(p, v).capacity_rps for _, p, v in slices))

    def steady_state(self, rate_rps: float, configuration: Configuration | None = None) -> LLMSteadyView:
        if configuration is None and self._config is None:
            raise BackendError("no configuration applied to the replay backend; call apply() first")
        slices = self._slices if configuration is None else self.slices(configuration)
        if not math.isfinite(rate_rps) or rate_rps <= 0:
            raise ConfigError(f"rate_rps must be > 0, got {rate_rps!r}")
        return LLMSteadyView(self, slices, rate_rps)
