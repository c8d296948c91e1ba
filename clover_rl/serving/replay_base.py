"""What the two replay backends share (vision :class:`~clover_rl.serving.replay.ReplayBackend`
and :class:`~clover_rl.llm.replay.LLMReplayBackend`): the switching-downtime rule, the pending
downtime a reconfiguration leaves for the next runs, and the Backend protocol's bookkeeping."""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from clover_rl.errors import BackendError, ConfigError
from clover_rl.mig.config import Configuration
from clover_rl.serving.backend import ReconfigReport
from clover_rl.serving.metrics import IntervalMetrics


def switch_cost(old: str | None, variant: str, *, first: bool, enabled: bool, load_s: Callable[[str], float],
                partition_s: float, make_before_break_s: float | None = None) -> float:
    """Downtime (s) of a slice that served ``old`` (None: a new placement) and now serves
    ``variant``: none for the first configuration, an unchanged slice or when reconfiguration is
    free (``enabled`` False); ``make_before_break_s`` when new workers start beside the old ones;
    else the model load ``load_s(variant)``, plus the MIG re-partition ``partition_s`` for a new placement."""
    if first or old == variant or not enabled:
        return 0.0
    if make_before_break_s is not None:
        return make_before_break_s
    return load_s(variant) + (partition_s if old is None else 0.0)


class ReplayBookkeeping:
    """Configuration, pending downtime and open/closed state of a replay backend. A subclass
    sets ``gpu`` and implements ``apply`` (ending in :meth:`_commit`) and ``run`` (ending in
    :meth:`_elapse`)."""

    name = "replay"
    gpu: Any
    _config: Configuration | None = None
    _pending: dict[str, float]
    _closed: bool = False

    @property
    def configuration(self) -> Configuration | None:
        return self._config

    @property
    def pending_downtime_s(self) -> dict[str, float]:
        """Downtime per slice id that the next run will pay."""
        return dict(self._pending)

    def _alive(self) -> None:
        if self._closed:
            raise BackendError("replay backend is closed")

    def _check_config(self, config: Configuration) -> None:
        if not isinstance(config, Configuration):
            raise ConfigError(f"expected a Configuration, got {type(config).__name__}")
        if config.gpu != self.gpu.name:
            raise ConfigError(f"configuration {config.label()} is for GPU {config.gpu!r}, backend for {self.gpu.name!r}")

    def _commit(self, configuration: Configuration, costs: Iterable[tuple[str, float]]) -> ReconfigReport:
        """Serve ``configuration`` from now on; ``costs``: (slice id, switching downtime s) of every
        slice. A kept slice id inherits the downtime it still owed; the report lists each slice's."""
        owed = self._pending
        if not owed:  # the usual case (downtime is paid within an interval): one pass, no sums
            downtime = dict(costs)
            pending = {sid: c for sid, c in downtime.items() if c > 0}
            changed = len(pending)  # slice ids are unique
        else:
            pending, downtime, changed = {}, {}, 0
            for sid, c in costs:
                changed += c > 0
                d = c + owed.get(sid, 0.0)
                downtime[sid] = d
                if d > 0:
                    pending[sid] = d
        prev, self._config, self._pending = self._config, configuration, pending
        worst = max(downtime.values(), default=0.0)
        return ReconfigReport(changed=prev != configuration, previous=prev, current=configuration,
                              downtime_s=downtime, slices_changed=changed, ok=True,
                              message=(f"{changed} slice(s) reconfigured, up to {worst:.1f} s downtime"
                                       if changed else "no slice changed"))

    def _elapse(self, seconds: float) -> None:
        """``seconds`` of serving paid off that much of every slice's pending downtime."""
        self._pending = {sid: d - seconds for sid, d in self._pending.items() if d > seconds}

    def apply(self, configuration: Configuration) -> ReconfigReport:
        raise NotImplementedError

    def run(self, seconds: float, rate_rps: float) -> IntervalMetrics:
        raise NotImplementedError

    def probe(self, configuration: Configuration, seconds: float, rate_rps: float) -> IntervalMetrics:
        """Apply ``configuration`` (it stays applied) and serve a short window."""
        self.apply(configuration)
        return self.run(seconds, rate_rps)

    def settle(self) -> None:
        """Forget pending downtime: the env's reset starts an episode from a running service."""
        self._pending = {}

    def close(self) -> None:
        self._closed = True

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
