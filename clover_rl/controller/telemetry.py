"""Deployment telemetry: TensorBoard scalars per interval and Prometheus gauges on /metrics.

TensorBoard: one run folder ``STATE/tb`` with ``deploy/*`` tags (step = interval index), flushed
every interval so a live ``tensorboard --logdir STATE/tb`` follows the deployment.

Prometheus: :class:`ControllerCollector` reads the figures the controller last published
(``plane.publish``) at scrape time, so it can sit on the serving front end's registry (one
/metrics for serving and control) even when the control loop runs in another process.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from clover_rl.serving.metrics import IntervalMetrics

#: TensorBoard tag -> what it shows
TAGS = {
    "deploy/carbon_intensity": "grid carbon intensity used for the interval (g/kWh)",
    "deploy/carbon_g": "carbon of the interval (energy x CI x PUE)",
    "deploy/carbon_per_request_g": "carbon per answered request",
    "deploy/energy_j": "energy of the interval",
    "deploy/accuracy": "request-weighted accuracy",
    "deploy/p95_ms": "p95 latency",
    "deploy/sla_ms": "the SLA",
    "deploy/config_index": "configuration index in the action catalog",
    "deploy/reward": "the env's reward for the interval",
    "deploy/objective": "the paper's score",
    "deploy/stale": "1 when the carbon reading was stale",
    "deploy/served": "answered requests",
    "deploy/dropped": "requests ended with an explicit error",
    "deploy/guard_active": "1 while the SLA guard holds the safe configuration",
}


class TensorBoardLog:
    """Per-interval scalars under ``deploy/`` (:data:`TAGS`), flushed at once, through the
    project's one writer (``telemetry.tensorboard.ScalarWriter``)."""

    def __init__(self, logdir: str | Path) -> None:
        from clover_rl.telemetry.tensorboard import ScalarWriter

        self._w = ScalarWriter(logdir, flush_secs=5, max_queue=100)
        self.logdir = self._w.logdir

    def scalar(self, tag: str, value: float, step: int, wall_time: float | None = None) -> None:
        self._w.scalar(tag, value, step, wall_time)

    def interval(self, step: int, *, ci: float, metrics: IntervalMetrics, outcome: Any, sla_ms: float,
                 config_index: int, stale: bool, guard_active: bool, wall_time: float | None = None) -> None:
        m = metrics
        values = {
            "deploy/carbon_intensity": ci, "deploy/carbon_g": outcome.carbon_g,
            "deploy/carbon_per_request_g": outcome.carbon_per_request_g, "deploy/energy_j": m.energy_j,
            "deploy/accuracy": m.accuracy if m.served else float("nan"),
            "deploy/p95_ms": m.p95_ms if m.served else float("nan"), "deploy/sla_ms": sla_ms,
            "deploy/config_index": config_index, "deploy/reward": outcome.reward, "deploy/objective": outcome.objective,
            "deploy/stale": float(stale), "deploy/served": m.served, "deploy/dropped": m.dropped,
            "deploy/guard_active": float(guard_active),
        }
        for tag, v in values.items():
            self.scalar(tag, v, step, wall_time)
        self._w.flush()

    def close(self) -> None:
        self._w.close()


_GAUGES = {
    "carbon_intensity": ("clover_controller_carbon_intensity", "Grid carbon intensity of the current reading (g/kWh)"),
    "carbon_stale": ("clover_controller_carbon_stale", "1 when the carbon reading is stale (source failing)"),
    "configuration_index": ("clover_controller_configuration_index", "Index of the served configuration in the action catalog"),
    "sla_ms": ("clover_controller_sla_ms", "The p95 latency SLA (ms)"),
    "window_p95_ms": ("clover_controller_window_p95_ms", "p95 latency of the last measurement window (ms)"),
    "interval_p95_ms": ("clover_controller_interval_p95_ms", "p95 latency of the last finished interval (ms)"),
    "interval_accuracy": ("clover_controller_interval_accuracy", "Request-weighted accuracy of the last interval"),
    "interval_energy_j": ("clover_controller_interval_energy_joules", "Energy of the last interval (J)"),
    "interval_carbon_g": ("clover_controller_interval_carbon_grams", "Carbon of the last interval (g)"),
    "interval_reward": ("clover_controller_interval_reward", "The env's reward for the last interval"),
    "guard_active": ("clover_controller_guard_active", "1 while the SLA guard holds the safe configuration"),
    "dry_run": ("clover_controller_dry_run", "1 when the controller only logs decisions"),
    "updated": ("clover_controller_last_update_timestamp_seconds", "When the controller last published (epoch s)"),
}


class ControllerCollector:
    """Prometheus collector over ``source()`` -> the controller's last published figures."""

    def __init__(self, source: Callable[[], dict[str, Any]]) -> None:
        self.source = source

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily

        v = self.source() or {}
        up = GaugeMetricFamily("clover_controller_up", "1 once a controller has published figures")
        up.add_metric([], 1.0 if v else 0.0)
        yield up
        if not v:
            return
        for key, (name, doc) in _GAUGES.items():
            x = v.get(key)
            if isinstance(x, (int, float)) and math.isfinite(float(x)):
                yield GaugeMetricFamily(name, doc, value=float(x))
        info = InfoMetricFamily("clover_controller", "The controller's policy and served configuration")
        info.add_metric([], {"policy": str(v.get("policy", "")), "configuration": str(v.get("configuration", ""))})
        yield info
        events = CounterMetricFamily("clover_controller_events", "Controller events since the deployment began",
                                     labels=["event"])
        for k, n in sorted((v.get("counters") or {}).items()):
            events.add_metric([k], float(n))
        yield events


def register_collector(registry: Any, source: Callable[[], dict[str, Any]]) -> ControllerCollector:
    c = ControllerCollector(source)
    registry.register(c)
    return c
