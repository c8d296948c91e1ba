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
