"""The typed base of the ``Controller`` and its decide / reconfigure / account halves: the
attributes the ``Controller`` sets up (declared once, here) and the small helpers every half
uses (labels, console, event log, state save)."""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from clover_rl.carbon.base import CarbonSource
from clover_rl.carbon.forecast import OnlineForecaster
from clover_rl.controller.clock import Clock
from clover_rl.controller.context import DeploymentContext
from clover_rl.controller.guard import SlaGuard
from clover_rl.controller.plane import ServicePlane
from clover_rl.controller.state import BudgetLedger, ControllerState, StateStore
from clover_rl.scoring import IntervalOutcome, Penalties
from clover_rl.serving.metrics import IntervalMetrics

log = logging.getLogger("clover_rl.controller")


@dataclass
class ControllerOptions:
    """How the loop runs (the ``clover-rl deploy`` flags)."""

    interval_s: float = 3600.0
    """Control interval: one decision per interval."""
    duration_s: float | None = None
    """Stop after this long (None: until stopped)."""
    dry_run: bool = False
    """Decide and log, never reconfigure after start-up."""
    guard_windows: int = 3
    """SLA guard: consecutive violating measurement windows that trigger the safe configuration."""
    guard_window_s: float | None = None
    """Length of a measurement window (default: interval / 4, at most 60 s)."""
    guard_recover: int | None = None
    """Consecutive good windows before the guard hands control back (default: guard_windows)."""
    safe_config: str = "base"
    """The guard's safe configuration: ``base`` or a label such as ``7g:b5``."""
    min_window_requests: int = 5
    """Windows with fewer answered requests cannot tell a p95 and are ignored by the guard."""
    quarantine_intervals: int = 3
    """A configuration that failed to apply is masked for this many intervals."""
    probe_s: float | None = None
    """Measurement window of an online optimizer's probe (default: the scenario's probe_s)."""
    seed: int = 0
    learn: bool = False
    """Fine-tune a MaskablePPO policy online (see ``clover_rl.controller.learn``)."""
    learn_every: int = 8
    """Live transitions per PPO update."""
    learn_good_after: int = 4
    """Intervals an updated policy must run without an SLA-guard trigger to count as good."""
    learn_rate: float = 1e-4
    """Fine-tuning learning rate (constant)."""
    whole_gpu_only: bool = False
    """Mask every configuration but whole GPUs (CUDA without MIG mode)."""
    echo: Callable[[str], None] | None = print
    """Console lines (None: quiet)."""
    tensorboard: bool = True

    def window_s(self) -> float:
        if self.guard_window_s is not None:
            return min(self.guard_window_s, self.interval_s)
        return min(60.0, self.interval_s / 4.0)


class ControllerCore(DeploymentContext):
    """What the decide / reconfigure / account halves share (set up by ``Controller.__init__``)."""

    options: ControllerOptions
    clock: Clock
    plane: ServicePlane
    carbon: CarbonSource
    store: StateStore
    state: ControllerState | None
    guard: SlaGuard
    stop_event: threading.Event
    policy: Any
    policy_spec: str
    penalties: Penalties
    safe_index: int
    learner: Any  # OnlineLearner | None
    telemetry: Any  # TensorBoardLog | None
    _forecaster: OnlineForecaster
    _measuring: bool
    _window_p95: float
    _last_outcome: IntervalOutcome | None
    _last_metrics: IntervalMetrics | None

    # ------------------------------------------------------------------ helpers
    def label(self, i: int) -> str:
        return self.catalog.configs[i].label()

    def _echo(self, text: str) -> None:
        if self.options.echo is not None:
            self.options.echo(text)
        log.info("%s", text)

    def _time_str(self, t: float | None = None) -> str:
        t = self.clock.time() if t is None else t
        return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")

    def _event(self, kind: str, **fields: Any) -> dict[str, Any]:
        rec = {"kind": kind, "time": self.clock.time(), "at": self._time_str(), **fields}
        self.store.append(rec)
        return rec

    def _next_index(self) -> int:
        """The index of the interval in progress, else of the next one to decide."""
        iv = self.state.interval if self.state else None
        return iv.index if iv else int(self.state.counters.get("decisions", 0)) if self.state else 0

    def _save(self) -> None:
        assert self.state is not None
        self.state.config_index = self.current
        self.state.config = self.label(self.current)
        self.state.guard = self.guard.state()
        self.state.updated_at = self.clock.time()
        if self.learner is not None:
            self.state.learner = self.learner.state()
        led = self.objective.ledger()
        self.state.budget = None if led is None else BudgetLedger(*led)
        self.store.save(self.state)

    # ------------------------------------------------------------------ provided by the halves
    def reconfigure(self, target: int, why: str) -> tuple[bool, str]:  # reconfigure.py
        raise NotImplementedError

    def _publish(self) -> None:  # account.py
        raise NotImplementedError
