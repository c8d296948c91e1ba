"""Workloads: arrival processes, request-rate traces and per-request traces."""
from clover_rl.workload.arrivals import as_rng, nonhomogeneous_arrivals, poisson_arrivals
from clover_rl.workload.build import detect_format, workload_from_config
from clover_rl.workload.rate_trace import RateTrace, load_rate_trace
from clover_rl.workload.request_trace import RequestReplay, RequestTimes, load_request_times
from clover_rl.workload.workload import (
    ConstantRate,
    DiurnalRate,
    TraceRate,
    Workload,
    random_scale,
)

__all__ = [
    "ConstantRate", "DiurnalRate", "RateTrace", "RequestReplay", "RequestTimes", "TraceRate",
    "Workload", "as_rng", "detect_format", "load_rate_trace", "load_request_times",
    "nonhomogeneous_arrivals", "poisson_arrivals", "random_scale", "workload_from_config",
]
