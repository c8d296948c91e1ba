"""The Backend protocol: what the env, agents, evaluation and deployment drive.

Two implementations: ``ReplayBackend`` (profile + simulator, instant, seeded) and
``LiveBackend`` (real worker processes, real time). Callers never know which one they have.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from clover_rl.mig.config import Configuration
from clover_rl.serving.metrics import IntervalMetrics


@dataclass(frozen=True)
class ReconfigReport:
    changed: bool
    previous: Configuration | None
    current: Configuration
    downtime_s: dict[str, float] = field(default_factory=dict)  # per slice id: unavailable time
    slices_changed: int = 0
    ok: bool = True
    message: str = ""


@runtime_checkable
class Backend(Protocol):
    name: str

    @property
    def configuration(self) -> Configuration | None: ...

    def apply(self, configuration: Configuration) -> ReconfigReport:
        """Reconfigure every GPU to ``configuration``; the downtime is paid in the next run."""

    def run(self, seconds: float, rate_rps: float) -> IntervalMetrics:
        """Serve the current configuration for ``seconds`` at ``rate_rps`` mean arrivals."""

    def probe(self, configuration: Configuration, seconds: float, rate_rps: float) -> IntervalMetrics:
        """Apply ``configuration`` and serve a short window (an optimizer's measurement)."""

    def close(self) -> None: ...
