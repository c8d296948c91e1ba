"""The Backend protocol: what the env, agents, evaluation and deployment drive.

Two implementations: ``ReplayBackend`` (profile + simulator, instant, seeded) and
``LiveBackend`` (real worker processes, real time). Callers never know which one they have.

Failure semantics (the contract every implementation keeps):

- ``apply`` never raises for a backend fault (a MIG/NVML error, a worker that does not come
  up): it returns ``ReconfigReport(ok=False, message=...)`` and ``configuration`` (and the
  report's ``current``) then says what is *actually* served: the previous configuration,
  restored by the backend itself if need be -- the backend is the one level that owns
  rollback; planes and the controller never re-apply. Callers count no reconfiguration for a
  failed apply. Misuse (a closed backend, a configuration for another
  GPU) still raises ``BackendError`` / ``ConfigError``.
- ``run`` always returns metrics; an interval in which nothing was answered is
  :meth:`IntervalMetrics.nothing_served` (latency = the timeout, never 0 or NaN).
- Latency figures are defined once, in :mod:`clover_rl.serving.latency`: a Backend's are
  ``server`` (front end in -> response out: queue + service + front end), the controller's
  live plane measures ``pool`` (enqueue -> answer), a load generator's ``client`` figures are
  reported beside them; ``IntervalMetrics.latency`` names which.
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

    def reseed(self, seed: int | None) -> None:
        """Restart the backend's random streams (the env calls this on reset; no-op when live)."""

    def settle(self) -> None:
        """Forget pending reconfiguration downtime: an episode starts from a running service."""

    def close(self) -> None: ...
