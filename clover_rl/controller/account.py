"""Account: measurement windows watched by the SLA guard, the interval's metrics scored as the
env scores them (``ServiceModel.outcome``), the decision log, TensorBoard, Prometheus, and the
online learner's reward."""
from __future__ import annotations

import logging
from dataclasses import replace

from clover_rl.controller.core import ControllerCore
from clover_rl.controller.state import LastInterval
from clover_rl.scoring import IntervalOutcome
from clover_rl.serving.metrics import IntervalMetrics

log = logging.getLogger("clover_rl.controller")


class AccountMixin(ControllerCore):
    """The accounting half of the ``Controller``."""


    def _on_window(self, m: IntervalMetrics) -> None:
        st = self.state
        assert st is not None
        if m.served:
            self._window_p95 = m.p95_ms
        ev = self.guard.observe(m)
        if ev is None:
            self._save()  # the guard's counts must survive a restart; the state file is small
            return
        if ev.kind == "trigger":
            st.count("guard_triggers")
            action = "none"
            if self.learner is not None:
                note = self.learner.on_guard_trigger()
                if note:
                    st.count("learner_rollbacks")
                    self._event("learner_rollback", note=note)
                    self._echo(f"[{self._time_str()}] LEARNER: {note}")
            if self.current == self.safe_index:
                action = "already serving the safe configuration; nothing safer to switch to"
            elif self.options.dry_run:
                action = f"dry run: would switch to {self.label(self.safe_index)}"
            else:
                ok, msg = self.reconfigure(self.safe_index, "guard")
                action = f"switched to {self.label(self.safe_index)}" if ok else msg
                if ok and st.interval is not None:
                    st.interval.reconfigurations += 1
                    st.interval.action = self.current
                    st.interval.config = self.label(self.current)
            self._event("guard", event="trigger", reason=ev.reason, action=action, config=self.label(self.current),
                        p95_ms=m.p95_ms, sla_ms=self.sla_ms)
            self._echo(f"[{self._time_str()}] SLA GUARD: {ev.reason}; {action}")
        else:
            st.count("guard_releases")
            self._event("guard", event="release", reason=ev.reason, config=self.label(self.current),
                        p95_ms=m.p95_ms, sla_ms=self.sla_ms)
            self._echo(f"[{self._time_str()}] SLA GUARD released: {ev.reason}; the policy decides again next interval")
        self._save()
        self._publish()

    def serve(self, until: float) -> None:
        """Measurement windows until ``until`` (epoch s), the SLA guard watching each."""
        w = self.options.window_s()
        while not self.stop_event.is_set():
            remaining = until - self.clock.time()
            if remaining <= 1e-6:
                return
            m = self.plane.window(min(w, remaining), self.stop_event)
            self._on_window(m)

    def finish_interval(self, partial: bool = False) -> IntervalOutcome | None:
        """Measure the interval, score it as the env does, log, TensorBoard, learn."""
        st = self.state
        assert st is not None and st.interval is not None
        iv = st.interval
        m = self.plane.interval()
        self._measuring = False
        ci = float(iv.ci if iv.ci is not None else self.reading.value if self.reading else 0.0)
        out = self.model.outcome(m, ci, refused=iv.refused, reconfigurations=iv.reconfigurations,
                                 penalties=self.penalties)
        booked: dict[str, float] = {}
        if not partial:  # a full interval is booked as the env books a step (a budget: its spending)
            value, booked = self.objective.book(iv.index, out.carbon_g, out.objective)
            out = replace(out, reward=out.reward + value - out.objective, objective=value)
        prev = st.last.rate_rps if st.last.rate_rps is not None else self.model.mean_rate
        if m.arrived or m.served:
            st.last = LastInterval(out.p95_over_sla, out.accuracy_over_base, out.energy_over_base,
                                   m.arrived / m.duration_s, prev)
        else:  # no traffic: nothing was measured; keep the previous ratios, rate is zero
            st.last = replace(st.last, rate_rps=0.0, prev_rate_rps=prev)
        self.measured_rate = st.last.rate_rps
        if not partial:
            st.count("intervals")
        rec = self._event(
            "interval", index=iv.index, started_at=iv.started_at, ends_at=iv.ends_at, partial=partial,
            config=self.label(self.current), action=self.current, ci=ci, stale=iv.stale,
            source=iv.source, metrics=m.to_dict(), outcome=out.to_dict(), sla_ms=self.sla_ms,
            guard_active=self.guard.active, **({"budget": booked} if booked else {}))
        if self.telemetry is not None:
            self.telemetry.interval(iv.index, ci=ci, metrics=m, outcome=out, sla_ms=self.sla_ms,
                                    config_index=self.current, stale=iv.stale,
                                    guard_active=self.guard.active, wall_time=self.clock.time())
        if self.learner is not None and not partial:
            self.learner.after_interval(out.reward)
        self._last_outcome = out
        self._last_metrics = m
        p95 = f"{m.p95_ms:.0f}" if m.served else "-"
        self._echo(f"[{rec['at']}] #{iv.index} served {m.served}/{m.arrived} on {self.label(self.current)}: "
                   f"p95 {p95}/{self.sla_ms:.0f} ms, acc {m.accuracy:.2f}, {m.energy_j:.0f} J, "
                   f"{out.carbon_g:.3g} gCO2, reward {out.reward:+.4f}" + (" (partial)" if partial else "")
                   + (" [estimated energy]" if m.estimated else ""))
        if not partial:
            st.interval = None
        else:
            iv.partial_logged = True
        self._save()
        self._publish()
        return out

    def _publish(self) -> None:
        st = self.state
        if st is None:
            return
        out = getattr(self, "_last_outcome", None)
        m = getattr(self, "_last_metrics", None)
        r = self.reading
        values = {
            "carbon_intensity": r.value if r else float("nan"),
            "carbon_stale": float(bool(r and r.stale)),
            "configuration_index": float(self.current),
            "configuration": self.label(self.current),
            "policy": self.policy_spec,
            "sla_ms": self.sla_ms,
            "window_p95_ms": self._window_p95,
            "interval_p95_ms": m.p95_ms if m is not None else float("nan"),
            "interval_accuracy": m.accuracy if m is not None else float("nan"),
            "interval_energy_j": m.energy_j if m is not None else float("nan"),
            "interval_carbon_g": out.carbon_g if out is not None else float("nan"),
            "interval_reward": out.reward if out is not None else float("nan"),
            "guard_active": float(self.guard.active),
            "dry_run": float(self.options.dry_run),
            "updated": self.clock.time(),
            "counters": dict(st.counters),
        }
        try:
            self.plane.publish(values)
        except Exception as e:
            log.debug("publish failed: %s", e)


