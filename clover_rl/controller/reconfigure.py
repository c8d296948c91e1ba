"""Reconfigure: apply a configuration through the plane; on failure (the backend has rolled back,
see ``ServicePlane.apply``) count it, quarantine the target and log it once; the masks that
quarantine implies; an online optimizer's probes."""
from __future__ import annotations

from typing import Any

import numpy as np

from clover_rl.contracts import ProbeResult
from clover_rl.controller.core import ControllerCore
from clover_rl.controller.state import PendingChange
from clover_rl.errors import CloverError, ConfigError
from clover_rl.mig.config import Configuration
from clover_rl.serving.backend import ReconfigReport
from clover_rl.serving.metrics import IntervalMetrics


class ReconfigureMixin(ControllerCore):
    """The reconfiguration half of the ``Controller``."""


    def mask(self) -> np.ndarray:
        """Feasible configurations, minus those quarantined after a failed reconfiguration."""
        m = self.catalog.feasible.copy()
        if self.options.whole_gpu_only:
            whole = self.model.gpu.whole.name
            m &= np.array([all(p == whole for p, _ in c.pairs) for c in self.catalog.configs])
        if self.state is not None:
            idx = self._next_index()
            for a, until in self.state.quarantine.items():
                if idx <= int(until):
                    m[int(a)] = False
        m[self.current] = True  # staying put is always allowed
        return m

    def _safe_apply(self, cfg: Configuration) -> ReconfigReport:
        """``plane.apply`` that never raises for a backend fault."""
        previous = self.plane.configuration
        try:
            return self.plane.apply(cfg)
        except CloverError as e:
            return ReconfigReport(True, previous, previous or cfg, ok=False, message=str(e))
        except Exception as e:
            return ReconfigReport(True, previous, previous or cfg, ok=False,
                                  message=f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")

    def reconfigure(self, target: int, why: str) -> tuple[bool, str]:
        """Apply ``target``; on failure keep serving what the backend restored and quarantine
        ``target``. Returns (applied, message)."""
        st = self.state
        assert st is not None
        previous = self.current
        if target == previous and self.plane.configuration == self.catalog.configs[target]:
            return True, "unchanged"
        st.pending = PendingChange(int(target), self.label(target), previous, self.clock.time(), why)
        self._save()
        rep = self._safe_apply(self.catalog.configs[target])
        now_cfg = self.plane.configuration
        if rep.ok and now_cfg == self.catalog.configs[target]:
            self.current = int(target)
            st.count("reconfigurations")
            self.guard.reset()
            msg = rep.message or "applied"
            ok = True
        else:  # the backend has rolled back (the plane contract); count, quarantine, log once
            ok = False
            st.count("failed_reconfigurations")
            until = self._next_index() + self.options.quarantine_intervals
            st.quarantine[str(int(target))] = until
            prev_cfg = self.catalog.configs[previous]
            if now_cfg == prev_cfg:
                st.count("rollbacks")
            elif now_cfg is not None and now_cfg in self.catalog.index:
                self.current = self.catalog.index[now_cfg]
            kept = "" if now_cfg == prev_cfg else " (the backend could not restore the previous configuration)"
            msg = (f"reconfiguration to {self.label(target)} failed ({rep.message}); serving "
                   f"{self.label(self.current)}{kept}"
                   f"; {self.label(target)} masked for {self.options.quarantine_intervals} interval(s)")
            self._event("rollback", target=int(target), target_config=self.label(target), why=why,
                        message=rep.message, serving=self.label(self.current), quarantined_until=until)
            self._echo(f"[{self._time_str()}] ROLLBACK: {msg}")
        st.pending = None
        self._save()
        return ok, msg

    def probe(self, action: Any) -> ProbeResult:
        """An optimizer's measurement: serve ``action`` for ``probe_s`` and score it.

        Paid for in the interval like in the env. In a dry run nothing is reconfigured: the
        replay model's steady-state estimate stands in for the measurement (``estimated``).
        """
        idx = self.catalog.lookup(action)
        if not self.mask()[idx]:
            raise ConfigError(f"cannot probe {self.label(idx)}: masked ({self.catalog.why_infeasible(idx) or 'quarantined'})")
        probe_s = float(self.scenario.probe_s)
        rate = self.rate()
        if self.options.dry_run:
            m = self.model.steady_state(rate, self.catalog.configs[idx]).interval(probe_s)
        else:
            change = idx != self.current
            ok = self.reconfigure(idx, "probe")[0] if change else True
            if ok:
                m = self.plane.window(probe_s, self.stop_event)
            else:  # could not serve the candidate: it scores as serving nothing (an outage)
                m = IntervalMetrics.nothing_served(probe_s, round(rate * probe_s), timeout_s=self.scenario.timeout_s,
                                                   backend=self.plane.name)
            if change and ok and self.state is not None and self.state.interval is not None:
                self.state.interval.reconfigurations += 1
        return {"metrics": m, "score": self.model.score(m, self.intensity()), "config": self.label(idx), "action": idx}

