"""How much load a configuration can serve, and a warning when a requested load is beyond it.

Capacity = sum over the configuration's slices (on every GPU) of 1 / mean service time, from
the profile (``Servers.capacity_rps``): the throughput at which every slice is always busy. A
Poisson load at or above it queues without bound, so p95 grows with the run's length and
requests time out -- figures measured there describe the queue, not the configuration.
"""
from __future__ import annotations

from typing import Any


def capacity_rps(config: Any, profile: Any, service: Any, gpus: int) -> float:
    """Saturation throughput (req/s) of ``config`` on ``gpus`` GPUs under ``profile``."""
    from clover_rl.serving.simulator import build_servers

    return float(build_servers(config, profile, service, gpus).capacity_rps)


def capacity_warning(rate_rps: float, capacity: float, what: str, *, near: float = 0.9) -> str | None:
    """A one-line warning when ``rate_rps`` is at least ``near`` x ``capacity`` (else None).

    ``what`` names the server (``7g:b1 x1 on a100-40gb``)."""
    if capacity <= 0 or rate_rps < near * capacity:
        return None
    ratio = rate_rps / capacity
    if ratio >= 1.0:
        return (f"warning: load {rate_rps:g} req/s is {ratio:.2f}x what {what} can serve ({capacity:.3g} req/s at "
                f"the profile's mean service times): requests queue without bound, so p95 grows with the "
                f"duration and requests time out")
    return (f"warning: load {rate_rps:g} req/s is {100 * ratio:.0f}% of what {what} can serve "
            f"({capacity:.3g} req/s): expect long queues and a high p95")
