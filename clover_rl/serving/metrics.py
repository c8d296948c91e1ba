"""What one interval of serving produced, whichever backend served it."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field


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
                   estimated=estimated, backend=backend)

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


def _cdf_points(m: IntervalMetrics) -> tuple[list[float], list[float]]:
    """A piecewise-linear latency CDF through the quantiles a summary keeps."""
    xs = [0.0, 0.5 * m.p50_ms, m.p50_ms, m.p95_ms, m.p99_ms, m.p99_ms + 2.0 * max(m.p99_ms - m.p95_ms, 1e-3)]
    ps = [0.0, 0.05, 0.5, 0.95, 0.99, 1.0]
    for i in range(1, len(xs)):
        xs[i] = max(xs[i], xs[i - 1] + 1e-9)
    return xs, ps


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
    grid_hi = max(_cdf_points(p)[0][-1] for p in parts)
    grid = np.linspace(0.0, grid_hi, 4001)
    cdf = np.zeros_like(grid)
    for wi, p in zip(w, parts):
        xs, ps = _cdf_points(p)
        cdf += wi * np.interp(grid, xs, ps)

    def q(level: float) -> float:
        return float(np.interp(level, cdf, grid))

    util: dict[str, float] = {}
    for p in parts:
        for k, u in p.utilization.items():
            util[k] = util.get(k, 0.0) + u * p.duration_s / dur
    share: dict[str, float] = {}
    for wi, p in zip(w, parts):
        for k, s in p.variant_share.items():
            share[k] = share.get(k, 0.0) + s * wi
    return IntervalMetrics(
        duration_s=dur,
        arrived=sum(p.arrived for p in parts),
        served=served,
        dropped=sum(p.dropped for p in parts),
        p50_ms=q(0.5),
        p95_ms=q(0.95),
        p99_ms=q(0.99),
        mean_ms=float(sum(wi * p.mean_ms for wi, p in zip(w, parts))),
        throughput_rps=served / dur,
        energy_j=sum(p.energy_j for p in parts),
        accuracy=float(sum(wi * p.accuracy for wi, p in zip(w, parts))),
        utilization=util,
        variant_share=share,
        estimated=any(p.estimated for p in parts),
        backend=parts[0].backend,
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
    )
