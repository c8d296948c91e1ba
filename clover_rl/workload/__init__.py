"""Workloads: arrival processes and request-rate traces."""
from clover_rl.workload.arrivals import as_rng, nonhomogeneous_arrivals, poisson_arrivals
from clover_rl.workload.rate_trace import RateTrace, load_rate_trace
from clover_rl.workload.workload import (
    ConstantRate,
    DiurnalRate,
    TraceRate,
    Workload,
    random_scale,
    workload_from_config,
)

__all__ = [
    "ConstantRate", "DiurnalRate", "RateTrace", "TraceRate", "Workload", "as_rng",
    "load_rate_trace", "nonhomogeneous_arrivals", "poisson_arrivals", "random_scale",
    "workload_from_config",
]
