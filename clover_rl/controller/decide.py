"""Decide: read the carbon intensity, observe exactly as the env does, ask the policy (masked,
overridden by the SLA guard, refused when masked), apply through ``reconfigure``, log why."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from clover_rl.carbon.base import CarbonReading
from clover_rl.controller.core import ControllerCore
from clover_rl.controller.state import (
    CarbonSnapshot,
    IntervalRecord,
    LastInterval,
)
from clover_rl.errors import BackendError
from clover_rl.service_model import LastRatios


@dataclass
class Decision:
    index: int
    action: int
    source: str  # policy | guard | refused | fallback
    reasons: list[str] = field(default_factory=list)
    policy_action: int | None = None
    refused: bool = False


class DecideMixin(ControllerCore):
    """The decision half of the ``Controller`` (one interval's choice)."""


    def _read_carbon(self) -> CarbonReading:
        st = self.state
        assert st is not None
        now = self.clock.now()
        horizon = self.scenario.carbon.forecast_hours
        try:
            r = self.carbon.read(now, horizon)
            if not (isinstance(r.value, (int, float)) and math.isfinite(r.value) and r.value >= 0):
                raise BackendError(f"{getattr(self.carbon, 'name', 'carbon source')}: unusable value {r.value!r}")
            r = self._forecaster.complete(r, horizon)
        except Exception as e:
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            last = self.reading
            if last is not None:
                r = CarbonReading(last.value, last.time, last.source or getattr(self.carbon, "name", "?"), True,
                                  last.forecast, f"carbon source failed ({msg}); holding the last value")
            else:
                ref = float(self.scenario.objective.reference_intensity)
                r = CarbonReading(ref, now, getattr(self.carbon, "name", "?"), True, (),
                                  f"carbon source failed before any good value ({msg}); using the reference "
                                  f"{ref:g} g/kWh")
            st.count("carbon_errors")
        if r.stale:
            st.count("stale_readings")
        self.reading = r
        st.carbon = CarbonSnapshot(r.value, r.time.isoformat() if r.time else None, r.source, r.stale,
                                   list(r.forecast), r.message, self.clock.time())
        return r

    def observation(self, r: CarbonReading) -> np.ndarray:
        """The env's observation for the coming interval, from live readings."""
        last = self.state.last if self.state else LastInterval()
        t = r.time if r.time is not None else self.clock.now()
        rate = self.measured_rate if self.measured_rate is not None else self.model.mean_rate
        prev = last.prev_rate_rps if last.prev_rate_rps is not None else rate
        ratios = LastRatios(*(1.0 if v is None else float(v) for v in
                              (last.p95_over_sla, last.accuracy_over_base, last.energy_over_base)))
        budget_left, window_left = self.objective.features(self._next_index())
        return self.model.observe(ci_now=r.value, forecast=r.forecast, rate_rps=rate, last=ratios,
                                  config_index=self.current, hour_of_day=t.hour + t.minute / 60.0 + t.second / 3600.0,
                                  rate_trend=(rate - prev) / self.model.mean_rate, budget_left=budget_left,
                                  window_left=window_left)

    def decide(self) -> Decision:
        """Read carbon, observe, ask the policy (masked), apply, log, persist."""
        st = self.state
        assert st is not None
        now = self.clock.time()
        prev = st.interval
        index = prev.index + 1 if prev else int(st.counters.get("decisions", 0))
        start = prev.ends_at if prev and 0 <= now - prev.ends_at < self.options.interval_s else now
        start_cfg = self.current
        st.interval = IntervalRecord(index, start, start + self.options.interval_s)
        self.plane.begin_interval()  # probes made while deciding count in this interval, as in the env
        self._measuring = True
        # expired quarantines
        st.quarantine = {a: u for a, u in st.quarantine.items() if int(u) >= index}
        r = self._read_carbon()
        obs = self.observation(r)
        if self.learner is not None:
            note = self.learner.before_decision(obs)
            if note:
                st.count("learner_updates")
                self._event("learner_update", index=index, note=note)
                self._echo(f"[{self._time_str()}] LEARNER: {note}")
        mask = self.mask()
        d = Decision(index, self.current, "policy")
        extra: dict[str, Any] = {}
        if self.guard.active:
            d.source = "guard"
            d.action = self.safe_index
            d.reasons.append(f"SLA guard holds the safe configuration ({self.guard.reason})")
        else:
            info = {"action_mask": mask, "ci": r.value, "stale": r.stale, "time": r.time.isoformat() if r.time else None,
                    "rate_rps": self.rate(), "sla_ms": self.sla_ms, "config": self.label(self.current)}
            try:
                if self.learner is not None and self.learner.active:
                    a = int(self.learner.act(obs, mask))
                else:
                    a = int(self.policy.act(obs, info))
                d.policy_action = a
                if not 0 <= a < len(self.catalog) or not mask[a]:
                    why = (self.catalog.why_infeasible(a) if 0 <= a < len(self.catalog) else "out of range") or "quarantined"
                    d.refused = True
                    d.source = "refused"
                    d.reasons.append(f"policy chose {self.label(a) if 0 <= a < len(self.catalog) else a}: masked ({why}); "
                                     "keeping the current configuration")
                    st.count("refused_actions")
                else:
                    d.action = a
            except Exception as e:
                d.source = "fallback"
                d.reasons.append(f"policy failed ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
                                 "keeping the current configuration")
                st.count("policy_errors")
            ld = getattr(self.policy, "last_decision", None)
            if isinstance(ld, dict) and ld:
                extra = {k: v for k, v in ld.items() if isinstance(v, (str, int, float, bool)) or v is None}
                if ld.get("reason"):
                    d.reasons.append(str(ld["reason"]))
            if d.source == "policy" and not d.reasons:
                d.reasons.append(self._policy_note(obs, d.action, mask))
        if r.stale:
            d.reasons.append(f"carbon reading stale: {r.message}")
        elif r.message:
            d.reasons.append(r.message)
        previous = start_cfg
        reconfigs = st.interval.reconfigurations
        applied, msg = False, "unchanged"
        if d.action != self.current:
            if self.options.dry_run:
                msg = f"dry run: would reconfigure {self.label(self.current)} -> {self.label(d.action)}"
            else:
                applied, msg = self.reconfigure(d.action, d.source)
                reconfigs += int(applied)
        if self.learner is not None:
            self.learner.after_decision(executed=self.current, chosen=d.policy_action, source=d.source)
        st.count("decisions")
        iv = st.interval
        iv.ci, iv.stale, iv.forecast = r.value, r.stale, list(r.forecast)
        iv.action, iv.config, iv.decided = self.current, self.label(self.current), d.action
        iv.policy_action, iv.source, iv.refused, iv.reconfigurations = d.policy_action, d.source, d.refused, reconfigs
        self._save()
        rec = self._event(
            "decision", index=index, ci=r.value, stale=r.stale, carbon_source=r.source,
            carbon_time=r.time.isoformat() if r.time else None, carbon_message=r.message, forecast=list(r.forecast),
            previous=self.label(previous), config=self.label(self.current), action=self.current,
            decided=self.label(d.action), policy_action=d.policy_action, source=d.source, refused=d.refused,
            applied=applied, dry_run=self.options.dry_run, message=msg, reasons=d.reasons,
            rate_rps=self.rate(), observation=[round(float(x), 5) for x in obs], policy=extra,
            ends_at=st.interval.ends_at)
        change = (f"{self.label(previous)} -> {self.label(self.current)}" if self.current != previous
                  else f"keep {self.label(self.current)}")
        if self.options.dry_run and d.action != previous:
            change = f"keep {self.label(previous)} (dry run; policy: {self.label(d.action)})"
        self._echo(f"[{rec['at']}] #{index} CI {r.value:.0f} g/kWh{' (STALE)' if r.stale else ''} -> {change} "
                   f"[{d.source}] {'; '.join(d.reasons[:2])}")
        self._publish()
        return d

    def _policy_note(self, obs: np.ndarray, action: int, mask: np.ndarray) -> str:
        """Why, for policies that do not say: a trained policy's probability of its choice."""
        name = getattr(self.policy, "name", self.policy_spec)
        if self.learner is not None and self.learner.active:
            return f"{name}: sampled by the online learner"
        model = getattr(self.policy, "model", None)
        if model is None:
            return f"{name}: its choice"
        try:
            from clover_rl.agents.sb3 import MaskedPredictor

            o = self.policy.normalize(obs) if hasattr(self.policy, "normalize") else obs
            pred = MaskedPredictor(model)
            sc = pred.scores(np.asarray(o, dtype=np.float32)[None])
            if sc is None or pred.algo == "dqn":
                return f"{name}: greedy masked choice"
            z = np.where(mask, sc[0], -np.inf)
            p = np.exp(z - z.max())
            return f"{name}: greedy masked choice (probability {p[action] / p.sum():.2f})"
        except Exception:
            return f"{name}: greedy masked choice"

