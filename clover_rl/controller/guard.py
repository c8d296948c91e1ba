"""The SLA guard: a safety net under any policy, learned or not.

The service's p95 is checked every measurement window (shorter than a control interval, so a
bad decision is caught in minutes, not hours). After ``k`` consecutive windows over the SLA
the guard *triggers*: the controller switches to the safe configuration (BASE unless
configured) at once and keeps it, whatever the policy says, until ``recover`` consecutive
windows are back within the SLA (the guard *releases* and the policy decides again at the
next interval). Windows with too few requests to estimate a p95 are inconclusive and change
neither count; explicit errors (timeouts, 503s) above ``max_error_share`` count as violations.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from clover_rl.errors import ConfigError
from clover_rl.serving.metrics import IntervalMetrics


@dataclass(frozen=True)
class GuardEvent:
    kind: str  # "trigger" | "release"
    reason: str


@dataclass
class _GuardState:
    bad: int = 0  # consecutive windows over the SLA
    good: int = 0  # consecutive windows within it (counted while active)
    active: bool = False
    reason: str = ""
    windows: int = 0
    violations: int = 0


class SlaGuard:
    """Counts consecutive SLA violations per measurement window; see the module docstring."""

    def __init__(self, sla_ms: float, k: int = 3, recover: int | None = None, *, min_requests: int = 5,
                 max_error_share: float = 0.05) -> None:
        if k < 1:
            raise ConfigError(f"--guard-windows must be >= 1, got {k}")
        if recover is not None and recover < 1:
            raise ConfigError(f"--guard-recover must be >= 1, got {recover}")
        if sla_ms <= 0:
            raise ConfigError(f"SLA must be positive, got {sla_ms} ms")
        self.sla_ms = float(sla_ms)
        self.k = int(k)
        self.recover = int(recover if recover is not None else k)
        self.min_requests = int(min_requests)
        self.max_error_share = float(max_error_share)
        self.s = _GuardState()

    @property
    def active(self) -> bool:
        return self.s.active

    @property
    def reason(self) -> str:
        return self.s.reason

    def classify(self, m: IntervalMetrics) -> tuple[bool | None, str]:
        """(violated?, why); None when the window cannot tell."""
        arrived = max(m.arrived, m.served + m.dropped)
        if arrived and m.dropped > self.max_error_share * arrived and m.dropped >= 2:
            return True, f"{m.dropped} of {arrived} requests failed"
        if m.served < self.min_requests:
            return None, f"only {m.served} requests"
        if m.p95_ms > self.sla_ms:
            return True, f"p95 {m.p95_ms:.0f} ms > SLA {self.sla_ms:.0f} ms"
        return False, f"p95 {m.p95_ms:.0f} ms <= SLA {self.sla_ms:.0f} ms"

    def observe(self, m: IntervalMetrics) -> GuardEvent | None:
        """Update with one measurement window; the event it causes, if any."""
        bad, why = self.classify(m)
        s = self.s
        s.windows += 1
        if bad is None:
            return None
        if bad:
            s.violations += 1
            s.bad += 1
            s.good = 0
            if not s.active and s.bad >= self.k:
                s.active = True
                s.reason = f"SLA violated in {s.bad} consecutive windows (last: {why})"
                return GuardEvent("trigger", s.reason)
            return None
        s.bad = 0
        if s.active:
            s.good += 1
            if s.good >= self.recover:
                s.active = False
                s.good = 0
                msg = f"SLA met in {self.recover} consecutive windows (last: {why})"
                s.reason = ""
                return GuardEvent("release", msg)
        return None

    def reset(self) -> None:
        """Forget the counts (e.g. after the configuration changed)."""
        self.s.bad = 0
        self.s.good = 0

    def state(self) -> dict[str, Any]:
        return asdict(self.s)

    def load(self, d: dict[str, Any] | None) -> None:
        if d:
            known = _GuardState.__dataclass_fields__
            self.s = _GuardState(**{k: v for k, v in d.items() if k in known})
