"""What one interval of serving produced, whichever backend served it."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

#: Keys of ``IntervalMetrics.extra`` that are counts (summed when windows merge, scaled with time).
EXTRA_COUNTS = frozenset({"requests_served"})


@dataclass(frozen=True)
class IntervalMetrics:
    duration_s: float
    arrived: int
    served: int
    dropped: int  # timed out in the queue (never silently lost: counted here)
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    throughput_rps: float
    energy_j: float  # all GPUs, idle + active
    accuracy: float  # request-weighted over served requests
    utilization: dict[str, float] = field(default_factory=dict)  # per slice id, busy share
    variant_share: dict[str, float] = field(default_factory=dict)  # share of served requests
    estimated: bool = True  # energy/latency from an estimated profile or model
    backend: str = "replay"
    # service-specific figures (LLM services: ttft_/tpot_ p50/p95/p99 ms, requests_served; see
    # clover_rl.llm.replay); merge_metrics mixes percentile triples as the latencies, sums counts
    extra: dict[str, float] = field(default_factory=dict)
    latency: str = "server"  # what p50/p95/p99/mean measure: clover_rl.serving.latency (server | pool | client)

    @classmethod
    def nothing_served(
        cls,
        duration_s: float,
        arrived: int,
        *,
        timeout_s: float,
        energy_j: float = 0.0,
        accuracy: float = 0.0,
        utilization: dict[str, float] | None = None,
        estimated: bool = True,
        backend: str = "replay",
        latency: str = "server",
    ) -> IntervalMetrics:
        """An interval in which no request was answered -- the one constructor every backend,
        plane and controller uses, so an outage scores the same in replay and live.

        Every arrived request counts as dropped. Latencies are ``timeout_s`` in ms when
        requests arrived (a total outage: each request waited at least the timeout, so the
        SLA is violated and the reward penalises it) and 0 when nothing arrived (no traffic:
        nothing to judge). ``accuracy`` is informative only (scoring treats an interval with
        nothing served as accuracy 0). Never NaN: it would poison rewards and merges.
        """
        arrived = int(arrived)
        if arrived < 0 or timeout_s <= 0:
            raise ValueError(f"nothing_served needs arrived >= 0 and timeout_s > 0, got {arrived}, {timeout_s}")
        lat = float(timeout_s) * 1e3 if arrived else 0.0
        return cls(duration_s=max(float(duration_s), 1e-9), arrived=arrived, served=0, dropped=arrived,
                   p50_ms=lat, p95_ms=lat, p99_ms=lat, mean_ms=lat, throughput_rps=0.0,
                   energy_j=float(energy_j), accuracy=float(accuracy), utilization=dict(utilization or {}),
                   estimated=estimated, backend=backend, latency=latency)

    @property
    def energy_per_request_j(self) -> float:
        return self.energy_j / self.served if self.served else float("nan")

    def carbon_g(self, intensity_g_per_kwh: float, pue: float = 1.0) -> float:
        """Carbon = energy x CI x PUE (energy J -> kWh)."""
        return self.energy_j / 3.6e6 * intensity_g_per_kwh * pue

    def to_dict(self) -> dict:
        d = asdict(self)
        d["energy_per_request_j"] = self.energy_per_request_j
        return d


def _cdf_points(p50: float, p95: float, p99: float) -> tuple[list[float], list[float]]:
    """A piecewise-linear latency CDF through the quantiles a summary keeps."""
    xs = [0.0, 0.5 * p50, p50, p95, p99, p99 + 2.0 * max(p99 - p95, 1e-3)]
    ps = [0.0, 0.05, 0.5, 0.95, 0.99, 1.0]
    for i in range(1, len(xs)):
        xs[i] = max(xs[i], xs[i - 1] + 1e-9)
    return xs, ps


def _mixture_quantiles(quantiles: list[tuple[float, float, float]], w) -> tuple[float, float, float]:
    """(p50, p95, p99) of the ``w``-weighted mixture of piecewise-linear CDFs through each
    window's (p50, p95, p99)."""
    import numpy as np

    points = [_cdf_points(*q) for q in quantiles]
    grid = np.linspace(0.0, max(xs[-1] for xs, _ in points), 4001)
    cdf = np.zeros_like(grid)
    for wi, (xs, ps) in zip(w, points):
        cdf += wi * np.interp(grid, xs, ps)
    q50, q95, q99 = (float(np.interp(level, cdf, grid)) for level in (0.5, 0.95, 0.99))
    return q50, q95, q99


def merge_metrics(parts: list[IntervalMetrics]) -> IntervalMetrics:
    """Combine consecutive windows (e.g. an optimizer's probes + the rest of the hour) into one.

    Counts, energy and busy time add up; accuracy and shares are request-weighted; latency
    percentiles come from the request-weighted mixture of each window's piecewise-linear CDF
    (an approximation: windows keep only p50/p95/p99, not raw latencies).
    """
    import numpy as np

    parts = [p for p in parts if p.duration_s > 0]
    if not parts:
        raise ValueError("nothing to merge")
    if len(parts) == 1:
        return parts[0]
    dur = sum(p.duration_s for p in parts)
    served = sum(p.served for p in parts)
    w = np.array([p.served for p in parts], dtype=float)
    w = w / w.sum() if w.sum() > 0 else np.full(len(parts), 1.0 / len(parts))
    q50, q95, q99 = _mixture_quantiles([(p.p50_ms, p.p95_ms, p.p99_ms) for p in parts], w)

    util: dict[str, float] = {}
    for p in parts:
        for k, u in p.utilization.items():
            util[k] = util.get(k, 0.0) + u * p.duration_s / dur
    share: dict[str, float] = {}
    for wi, p in zip(w, parts):
        for k, s in p.variant_share.items():
            share[k] = share.get(k, 0.0) + s * wi
    extra: dict[str, float] = {}
    for wi, p in zip(w, parts):
        for k, x in p.extra.items():
            extra[k] = extra.get(k, 0.0) + (x if k in EXTRA_COUNTS else x * wi)
    for name in {k[:-7] for k in extra if k.endswith("_p95_ms")}:  # percentile triples: as the latencies
        keys = [f"{name}_p{q}_ms" for q in (50, 95, 99)]
        if all(k in p.extra for p in parts for k in keys):
            extra.update(zip(keys, _mixture_quantiles([tuple(p.extra[k] for k in keys) for p in parts], w)))
    return IntervalMetrics(
        duration_s=dur,
        arrived=sum(p.arrived for p in parts),
        served=served,
        dropped=sum(p.dropped for p in parts),
        p50_ms=q50,
        p95_ms=q95,
        p99_ms=q99,
        mean_ms=float(sum(wi * p.mean_ms for wi, p in zip(w, parts))),
        throughput_rps=served / dur,
        energy_j=sum(p.energy_j for p in parts),
        accuracy=float(sum(wi * p.accuracy for wi, p in zip(w, parts))),
        utilization=util,
        variant_share=share,
        estimated=any(p.estimated for p in parts),
        backend=parts[0].backend,
        extra=extra,
        latency=parts[0].latency,
    )


def scale_metrics(m: IntervalMetrics, duration_s: float) -> IntervalMetrics:
    """The same steady state observed for a different length of time (counts and energy scale)."""
    f = duration_s / m.duration_s
    return IntervalMetrics(
        duration_s=duration_s, arrived=int(round(m.arrived * f)), served=int(round(m.served * f)),
        dropped=int(round(m.dropped * f)), p50_ms=m.p50_ms, p95_ms=m.p95_ms, p99_ms=m.p99_ms,
        mean_ms=m.mean_ms, throughput_rps=m.throughput_rps, energy_j=m.energy_j * f,
        accuracy=m.accuracy, utilization=dict(m.utilization), variant_share=dict(m.variant_share),
        estimated=m.estimated, backend=m.backend,
        extra={k: x * f if k in EXTRA_COUNTS else x for k, x in m.extra.items()}, latency=m.latency,
    )
